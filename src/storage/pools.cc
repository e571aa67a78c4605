#include "storage/pools.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/process.h"
#include "base/units.h"

namespace pampa {
namespace {

nlohmann::json PoolJson(const PoolInfo& p) { return {{"name", p.name}, {"type", p.type}, {"path", p.path}}; }

PoolInfo PoolFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  PoolInfo p;
  if (!j.is_object()) return p;
  p.name = j.value("name", "");
  p.type = j.value("type", "dir");
  p.path = j.value("path", "");
  DiskSpace space = SpaceOf(p.path);
  p.capacity = space.capacity;
  p.available = space.available;
  return p;
}

}  // namespace

Storage::Storage(Store& store, std::vector<std::string> allowed_dirs, std::string local_prefix)
    : store_(store), local_prefix_(std::move(local_prefix)), allowed_dirs_(std::move(allowed_dirs)) {}

namespace {
constexpr const char* kSharedPrefix = "pools/";
}

Result<std::string> Storage::PoolKey(const std::string& name) {
  std::string shared = kSharedPrefix + name;
  if (local_prefix_ != kSharedPrefix) {
    PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get(shared));
    if (v) return shared;
  }
  return local_prefix_ + name;
}

Status Storage::EnsurePool(const std::string& name, const std::string& path) {
  PAMPA_ASSIGN_OR_RETURN(std::string key, PoolKey(name));
  auto existing = store_.Get(key);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return MakeDirs(PoolFromJson(**existing).path, 0700);
  return CreatePool(name, path);
}

Status Storage::CreatePool(const std::string& name, const std::string& path, const std::string& type) {
  PAMPA_RETURN_IF_ERROR(ValidateName("pool", name));
  if (type != "dir" && type != "shared") {
    return Status::Invalid("pool type '" + type +
                           "' is unknown (use dir, or shared for a directory every host reaches)");
  }
  if (path.empty() || path[0] != '/') {
    return Status::Invalid("pool path '" + path + "' must be an absolute directory path");
  }
  if (path.find_first_of(",\n") != std::string::npos) {
    return Status::Invalid("pool path '" + path + "' may not contain commas or newlines");
  }
  PAMPA_ASSIGN_OR_RETURN(auto pools, ListPools());
  for (const PoolInfo& p : pools) {
    if (p.name == name) return Status::Conflict("pool '" + name + "' already exists");
    if (p.path == path) return Status::Conflict("directory " + path + " is already used by pool '" + p.name + "'");
  }
  PoolInfo p{name, type, path};
  PAMPA_RETURN_IF_ERROR(MakeDirs(path, 0700));
  Status st = store_.Create((type == "shared" ? kSharedPrefix : local_prefix_) + name, PoolJson(p).dump());
  if (st.code() == ErrorCode::kConflict) return Status::Conflict("pool '" + name + "' already exists");
  return st;
}

Result<std::vector<PoolInfo>> Storage::ListPools() {
  std::map<std::string, PoolInfo> by_name;
  for (const std::string& prefix : {local_prefix_, std::string(kSharedPrefix)}) {
    PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List(prefix));
    for (auto& [k, v] : kvs) {
      PoolInfo p = PoolFromJson(v);
      by_name[p.name] = p;  // a shared pool wins over a local one of its name
    }
  }
  std::vector<PoolInfo> out;
  for (auto& [name, p] : by_name) out.push_back(p);
  return out;
}

Result<PoolInfo> Storage::GetPool(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("pool", name));
  PAMPA_ASSIGN_OR_RETURN(std::string key, PoolKey(name));
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get(key));
  if (!v) return Status::NotFound("pool '" + name + "' does not exist (see: pampa pool list)");
  return PoolFromJson(*v);
}

Status Storage::DeletePool(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto pool, GetPool(name));
  PAMPA_ASSIGN_OR_RETURN(auto vols, ListVolumes(name));
  if (!vols.empty()) {
    return Status::Conflict("pool '" + name + "' still holds " + std::to_string(vols.size()) +
                            " volume(s); delete them first (pampa volume list " + name + ")");
  }
  PAMPA_ASSIGN_OR_RETURN(std::string key, PoolKey(name));
  return store_.Delete(key);
}

namespace {

Result<uint64_t> Qcow2VirtualSize(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("cannot open " + path);
  unsigned char h[32];
  ssize_t n = pread(fd, h, sizeof h, 0);
  close(fd);
  if (n != static_cast<ssize_t>(sizeof h) || h[0] != 'Q' || h[1] != 'F' || h[2] != 'I' || h[3] != 0xfb) {
    return Status::Invalid(path + " has no qcow2 header");
  }
  uint64_t size = 0;
  for (int i = 24; i < 32; ++i) size = (size << 8) | h[i];
  return size;
}

}  // namespace

Result<VolumeInfo> Storage::FindVolume(const PoolInfo& pool, const std::string& name, bool inspect) {
  for (const char* fmt : {"qcow2", "raw"}) {
    std::string path = pool.path + "/" + name + "." + fmt;
    if (!Exists(path)) continue;
    VolumeInfo v{pool.name, name, fmt, path};
    std::error_code ec;
    v.virtual_size = std::filesystem::file_size(path, ec);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) v.allocated = static_cast<uint64_t>(st.st_blocks) * 512;
    if (v.format == "qcow2" && inspect) {
      // The header says the size (bytes 24..31, big-endian): no qemu-img per
      // volume, so a listing stays a few milliseconds while disks are busy.
      auto size = Qcow2VirtualSize(path);
      if (!size.ok()) {
        auto info = InspectImage(path);
        if (info.ok()) size = info->virtual_size;
      }
      if (size.ok()) v.virtual_size = *size;
    }
    return v;
  }
  return Status::NotFound("volume '" + name + "' does not exist in pool '" + pool.name + "'");
}

Result<std::vector<VolumeInfo>> Storage::ListVolumes(const std::string& pool_name) {
  PAMPA_ASSIGN_OR_RETURN(auto pool, GetPool(pool_name));
  std::vector<VolumeInfo> out;
  std::error_code ec;
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(pool.path, ec)) {
    auto fn = e.path().filename().string();
    auto dot = fn.rfind('.');
    if (dot == std::string::npos) continue;
    std::string ext = fn.substr(dot + 1), base = fn.substr(0, dot);
    if ((ext == "qcow2" || ext == "raw") && ValidateName("volume", base).ok()) names.push_back(base);
  }
  std::sort(names.begin(), names.end());
  for (auto& n : names) {
    auto v = FindVolume(pool, n);
    if (v.ok()) out.push_back(*v);
  }
  return out;
}

Result<VolumeInfo> Storage::GetVolume(const std::string& pool, const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("volume", name));
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  return FindVolume(p, name);
}

Result<VolumeInfo> Storage::LocateVolume(const std::string& pool, const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("volume", name));
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  return FindVolume(p, name, false);
}

Status Storage::CheckNewVolume(const PoolInfo& pool, const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("volume", name));
  if (FindVolume(pool, name).ok()) {
    return Status::Conflict("volume '" + name + "' already exists in pool '" + pool.name + "'");
  }
  return Status::Ok();
}

Result<VolumeInfo> Storage::CreateVolume(const std::string& pool, const std::string& name, uint64_t size,
                                         const std::string& format, bool preallocate) {
  if (format != "qcow2" && format != "raw") {
    return Status::Invalid("volume format '" + format + "' is not supported (use qcow2 or raw)");
  }
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  MutexLock lock(&mu_);
  PAMPA_RETURN_IF_ERROR(CheckNewVolume(p, name));
  std::string path = p.path + "/" + name + "." + format;
  std::string tmp = path + ".creating";
  std::vector<std::string> argv = {"qemu-img", "create", "-q", "-f", format};
  if (preallocate && format == "qcow2") argv.insert(argv.end(), {"-o", "preallocation=metadata"});
  argv.insert(argv.end(), {tmp, std::to_string(size)});
  auto r = RunChecked(argv);
  if (!r.ok()) {
    unlink(tmp.c_str());
    return r.status().Context("creating volume " + name);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return Status::Internal("cannot create " + path);
  return FindVolume(p, name);
}

Result<uint64_t> Storage::ResizeVolume(const std::string& pool, const std::string& name, const std::string& size) {
  PAMPA_ASSIGN_OR_RETURN(auto v, GetVolume(pool, name));
  PAMPA_ASSIGN_OR_RETURN(uint64_t want, ParseNewDiskSize(size, v.virtual_size));
  if (want == v.virtual_size) return want;
  PAMPA_RETURN_IF_ERROR(RunChecked({"qemu-img", "resize", "-q", "-f", v.format, v.path, std::to_string(want)})
                            .status()
                            .Context("resizing volume " + name));
  return want;
}

int Storage::RemoveUnfinished() {
  auto pools = ListPools();
  if (!pools.ok()) return 0;
  int removed = 0;
  for (auto& pool : *pools) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(pool.path, ec)) {
      if (e.path().extension() == ".creating" && unlink(e.path().c_str()) == 0) ++removed;
    }
  }
  return removed;
}

Status Storage::DeleteVolume(const std::string& pool, const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto v, GetVolume(pool, name));
  if (unlink(v.path.c_str()) != 0) return Status::Internal("cannot delete " + v.path);
  return Status::Ok();
}

Result<std::string> Storage::CheckOutsidePath(const std::string& what, const std::string& path) const {
  if (path.empty() || path[0] != '/') {
    return Status::Invalid(what + " path '" + path + "' must be absolute");
  }
  PAMPA_ASSIGN_OR_RETURN(auto canon, CanonicalPath(path));
  for (const auto& dir : allowed_dirs_) {
    auto d = CanonicalPath(dir);
    if (d.ok() && PathWithin(canon, *d)) {
      if (!std::filesystem::is_regular_file(canon))
        return Status::Invalid(what + " '" + path + "' is not a regular file");
      return canon;
    }
  }
  std::string dirs;
  for (const auto& d : allowed_dirs_) dirs += (dirs.empty() ? "" : ", ") + d;
  return Status::Invalid(what + " '" + path + "' is outside the directories pampad may read from (" + dirs +
                         "); copy it there or start pampad with --allow-path DIR");
}

Result<ImageInfo> Storage::CheckImportImage(const std::string& src) {
  PAMPA_ASSIGN_OR_RETURN(auto canon, CheckOutsidePath("disk image", src));
  PAMPA_ASSIGN_OR_RETURN(auto info, InspectImage(canon));
  PAMPA_RETURN_IF_ERROR(ValidateImportImage(src, info));
  return info;
}

Result<std::string> Storage::IncomingVolumeFile(const std::string& pool, const std::string& name,
                                                const std::string& format, uint64_t length) {
  if (format != "qcow2" && format != "raw") return Status::Invalid("volume format must be qcow2 or raw");
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  if (p.type == "shared") return Status::Invalid("pool '" + pool + "' is shared: its volumes need no moving");
  if (p.available < length) {
    return Status::Invalid("pool '" + pool + "' has " + FormatSize(p.available) + " free, too little for " +
                           FormatSize(length));
  }
  MutexLock lock(&mu_);
  PAMPA_RETURN_IF_ERROR(CheckNewVolume(p, name));
  return p.path + "/" + name + "." + format + ".creating";
}

Result<VolumeInfo> Storage::PlaceIncomingVolume(const std::string& pool, const std::string& name,
                                                const std::string& format, const std::string& file) {
  auto refuse = [&](const Status& st) {
    unlink(file.c_str());
    return st;
  };
  auto p = GetPool(pool);
  if (!p.ok()) return refuse(p.status());
  auto info = InspectImage(file);
  if (!info.ok()) return refuse(info.status().Context("the volume that came in"));
  if (info->format != format || !info->backing_file.empty()) {
    return refuse(Status::Invalid("the volume that came in is " + info->format +
                                  (info->backing_file.empty() ? "" : " with a backing file") + ", not " + format));
  }
  MutexLock lock(&mu_);
  if (Status st = CheckNewVolume(*p, name); !st.ok()) return refuse(st);
  std::string path = p->path + "/" + name + "." + format;
  if (rename(file.c_str(), path.c_str()) != 0) return refuse(Status::Internal("cannot create " + path));
  return FindVolume(*p, name);
}

Result<VolumeInfo> Storage::ImportVolume(const std::string& pool, const std::string& name, const std::string& src,
                                         const ProgressFn& progress, const std::atomic<bool>* cancel) {
  PAMPA_ASSIGN_OR_RETURN(auto canon, CheckOutsidePath("disk image", src));
  PAMPA_ASSIGN_OR_RETURN(auto info, CheckImportImage(src));
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  return ConvertInto(p, name, canon, info.format, progress, cancel);
}

Result<VolumeInfo> Storage::ImportVolumeSlice(const std::string& pool, const std::string& name, const std::string& src,
                                              uint64_t offset, uint64_t length, const std::string& format,
                                              const std::string& label, const ProgressFn& progress,
                                              const std::atomic<bool>* cancel) {
  PAMPA_ASSIGN_OR_RETURN(auto canon, CheckOutsidePath("disk image", src));
  nlohmann::json slice = {
      {"driver", "raw"}, {"offset", offset}, {"size", length}, {"file", {{"driver", "file"}, {"filename", canon}}}};
  std::string image = "json:" + nlohmann::json{{"file", slice}}.dump();
  auto info = InspectImage(image);
  if (!info.ok()) return Status::Invalid(label + " cannot be read as a disk image: " + info.status().message());
  if (info->format != format) {
    return Status::Invalid(label + " holds " + (info->format == "raw" ? std::string("no image header") : info->format) +
                           ", not a " + format + " image");
  }
  PAMPA_RETURN_IF_ERROR(ValidateImportImage(label, *info));
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  return ConvertInto(p, name, image, format, progress, cancel);
}

Result<VolumeInfo> Storage::CopyVolume(const std::string& src_pool, const std::string& src, const std::string& pool,
                                       const std::string& name, const std::string& snapshot, const ProgressFn& progress,
                                       const std::atomic<bool>* cancel) {
  PAMPA_ASSIGN_OR_RETURN(auto from, LocateVolume(src_pool, src));
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  return ConvertInto(p, name, from.path, from.format, progress, cancel, snapshot);
}

Result<VolumeInfo> Storage::ConvertInto(const PoolInfo& p, const std::string& name, const std::string& src,
                                        const std::string& src_format, const ProgressFn& progress,
                                        const std::atomic<bool>* cancel, const std::string& snapshot) {
  return MakeQcow2Volume(p, name, [&](const std::string& tmp) {
    return ConvertImage(src, src_format, tmp, "qcow2", progress, cancel, snapshot);
  });
}

Result<VolumeInfo> Storage::CreateLinkedVolume(const std::string& pool, const std::string& base,
                                               const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto from, LocateVolume(pool, base));
  if (from.format != "qcow2") {
    return Status::Invalid("volume " + base + " is " + from.format + "; a linked clone needs a qcow2 base");
  }
  PAMPA_ASSIGN_OR_RETURN(auto p, GetPool(pool));
  return MakeQcow2Volume(p, name, [&](const std::string& tmp) {
    return RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", from.path, tmp})
        .status()
        .Context("creating linked volume " + name);
  });
}

Result<VolumeInfo> Storage::MakeQcow2Volume(const PoolInfo& p, const std::string& name,
                                            const std::function<Status(const std::string& tmp)>& make) {
  std::string dst;
  {
    MutexLock lock(&mu_);
    PAMPA_RETURN_IF_ERROR(CheckNewVolume(p, name));
    dst = p.path + "/" + name + ".qcow2";
  }
  // Made under a name no listing shows, then renamed: a pampad killed
  // mid-way leaves only a .creating file, which the next start removes.
  std::string tmp = dst + ".creating";
  Status st = make(tmp);
  if (st.ok() && rename(tmp.c_str(), dst.c_str()) != 0) st = Status::Internal("cannot create " + dst);
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  return FindVolume(p, name);
}

}  // namespace pampa
