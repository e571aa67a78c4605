#include "jobs/vm_import.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>

#include "backup/disk_transfer.h"
#include "backup/tar_reader.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "jobs/ovf.h"
#include "jobs/p2v.h"
#include "jobs/xva.h"

namespace pampa {
namespace {

using json = nlohmann::json;

// The intent the new VM is held under: an import that does not finish leaves nothing.
constexpr const char* kIntent = "import";

Result<Fd> OpenArchive(const std::string& path, uint64_t* size) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::Unavailable("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Status::Unavailable("cannot stat " + path + ": " + std::strerror(errno));
  *size = static_cast<uint64_t>(st.st_size);
  posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return fd;
}

}  // namespace

// What an export holds, as read (and checked) before the task starts.
struct VmImports::Plan {
  std::string path;    // the archive, canonical
  uint64_t bytes = 0;  // its size
  bool xva = false;
  std::string label;  // the VM's name in the export
  int cpus = 1;
  uint64_t memory_mib = 0;
  std::string firmware = "bios";
  std::vector<XvaDisk> xva_disks;
  struct OvaDisk {
    std::string member;  // the VMDK's name in the archive; "" for a blank disk
    uint64_t offset = 0, length = 0;
    uint64_t capacity = 0;
  };
  std::vector<OvaDisk> ova_disks;
  std::map<std::string, OvaDigest> manifest;  // the OVA's .mf, when it has one
  std::vector<std::string> macs;              // one per NIC; "" for a new one
  size_t disks() const { return xva ? xva_disks.size() : ova_disks.size(); }
  // What an XvaVm and an OvfVm both say.
  template <typename Described>
  void TakeHardware(const Described& vm) {
    label = vm.label;
    cpus = vm.cpus;
    memory_mib = vm.memory_mib;
    firmware = vm.firmware;
    for (auto& nic : vm.nics) macs.push_back(nic.mac);
  }
};

VmImports::VmImports(VmManager& vms, Storage& storage, Networks& networks, Tasks& tasks, EventBus& events)
    : vms_(vms), storage_(storage), networks_(networks), tasks_(tasks), events_(events) {}

Result<VmImports::Plan> VmImports::ReadXva(const std::string& path) {
  Plan plan;
  plan.path = path;
  plan.xva = true;
  PAMPA_ASSIGN_OR_RETURN(Fd fd, OpenArchive(path, &plan.bytes));
  TarReader tar(fd.get(), "the file");
  auto vm = ReadXvaHeader(tar);
  if (!vm.ok()) return vm.status().Context(path);
  plan.TakeHardware(*vm);
  plan.xva_disks = vm->disks;
  return plan;
}

Result<VmImports::Plan> VmImports::ReadOva(const std::string& path) {
  Plan plan;
  plan.path = path;
  PAMPA_ASSIGN_OR_RETURN(Fd fd, OpenArchive(path, &plan.bytes));
  // One pass over the headers (the data is skipped by seeking): the
  // descriptor's text, and where each member's data lies.
  TarReader tar(fd.get(), "the file");
  std::map<std::string, TarReader::Member> members;
  std::string ovf_name, ovf;
  for (;;) {
    auto next = tar.Next();
    if (!next.ok()) return Status::Invalid(path + ": not an OVA: " + next.status().message());
    const auto& m = *next;
    if (!m) break;
    if (!m->regular()) continue;
    if (m->name.ends_with(".mf")) {
      if (m->size > (1u << 20)) return Status::Invalid(m->name + " in " + path + " is too large for a manifest");
      std::string text(m->size, '\0');
      PAMPA_RETURN_IF_ERROR(tar.Read(text.data(), text.size()).Context(path));
      auto manifest = ParseOvaManifest(text);
      if (!manifest.ok()) return manifest.status().Context(path + ": " + m->name);
      plan.manifest = *manifest;
    }
    if (m->name.ends_with(".ovf")) {
      if (!ovf_name.empty()) return Status::Invalid(path + " holds two OVF descriptors: " + ovf_name + ", " + m->name);
      if (m->size > (16u << 20)) return Status::Invalid(m->name + " in " + path + " is too large for a descriptor");
      ovf_name = m->name;
      ovf.resize(m->size);
      PAMPA_RETURN_IF_ERROR(tar.Read(ovf.data(), ovf.size()).Context(path));
    }
    members[m->name] = *m;
  }
  if (ovf_name.empty()) return Status::Invalid(path + " holds no .ovf descriptor: not an OVA");
  // What the manifest lists must be there, and the descriptor as it was made.
  for (auto& [file, digest] : plan.manifest) {
    if (!members.count(file)) {
      return Status::Invalid(path + ": its manifest lists '" + file + "', which the archive does not contain");
    }
    if (file != ovf_name) continue;
    OvaHasher hasher(digest.algorithm);
    hasher.Update(ovf.data(), ovf.size());
    if (hasher.HexDigest() != digest.hex) {
      return Status::Invalid(path + ": " + ovf_name + " does not match the " + digest.algorithm +
                             " in its manifest: the package is damaged or was changed");
    }
  }
  auto vm = ParseOvf(ovf);
  if (!vm.ok()) return vm.status().Context(path);
  plan.TakeHardware(*vm);
  for (auto& d : vm->disks) {
    Plan::OvaDisk disk;
    disk.capacity = d.capacity;
    if (!d.file.empty()) {
      auto m = members.find(d.file);
      if (m == members.end()) {
        return Status::Invalid(path + ": the OVF's disk '" + d.id + "' is in file '" + d.file +
                               "', which the archive does not contain");
      }
      disk.member = d.file;
      disk.offset = m->second.offset;
      disk.length = m->second.size;
    }
    plan.ova_disks.push_back(disk);
  }
  return plan;
}

Result<std::string> VmImports::Import(const ImportRequest& req) {
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", req.name));
  if (req.name.size() > 56) return Status::Invalid("vm name too long to name its disks; use at most 56 characters");
  if (!req.from_host.empty()) {
    if (!req.xva.empty() || !req.ova.empty()) return Status::Invalid("import from a server or from a file, not both");
    return req.second_pass ? SecondPass(req) : ImportFromHost(req);
  }
  if (req.second_pass || !req.host_disks.empty())
    return Status::Invalid("--disk and --second-pass go with --from-host");
  if (req.xva.empty() == req.ova.empty()) return Status::Invalid("give the export to import: an XVA or an OVA file");
  bool xva = !req.xva.empty();
  PAMPA_ASSIGN_OR_RETURN(std::string path,
                         storage_.CheckOutsidePath(xva ? "XVA file" : "OVA file", xva ? req.xva : req.ova));
  PAMPA_RETURN_IF_ERROR(storage_.GetPool(req.pool).status());
  if (vms_.Show(req.name).ok()) return Status::Conflict("vm '" + req.name + "' already exists; pick another name");
  PAMPA_ASSIGN_OR_RETURN(Plan plan, xva ? ReadXva(path) : ReadOva(path));
  if (!plan.macs.empty()) PAMPA_RETURN_IF_ERROR(networks_.Get(req.network).status());
  if (req.bus == DiskBus::kSata && plan.disks() > kMaxSataDisks) {
    return Status::Invalid("the export has " + std::to_string(plan.disks()) + " disks and a VM has at most " +
                           std::to_string(kMaxSataDisks) + " sata disks; use --bus scsi or virtio");
  }

  VmSpec spec;
  spec.name = req.name;
  spec.uuid = NewUuid();
  spec.cpus = plan.cpus;
  spec.memory_mib = plan.memory_mib;
  spec.firmware = plan.firmware;
  spec.host = vms_.config().hostname;
  PAMPA_ASSIGN_OR_RETURN(spec.disks, NewDisks(req, plan.disks()));
  for (auto& mac : plan.macs) spec.nics.push_back({req.network, mac.empty() ? NewMac() : mac});
  PAMPA_ASSIGN_OR_RETURN(auto hold, vms_.HoldNewVm(spec, VmOp::kCreate, kIntent));
  auto held = std::make_shared<VmManager::Hold>(std::move(hold));
  auto shared_plan = std::make_shared<const Plan>(std::move(plan));
  return tasks_.Start("vm-import", spec.name, [this, held, shared_plan, spec](TaskContext& ctx) -> Result<json> {
    VmManager::Hold owned = std::move(*held);  // given back on every return
    const Plan& plan = *shared_plan;
    auto start = std::chrono::steady_clock::now();
    ctx.Log("importing vm '" + plan.label + "' from " + plan.path + ": " + std::to_string(plan.cpus) + " vCPU(s), " +
            std::to_string(plan.memory_mib) + " MiB, " + std::to_string(spec.disks.size()) + " disk(s), " +
            std::to_string(spec.nics.size()) + " NIC(s), " + plan.firmware);
    VmSpec made{.name = spec.name};  // the volumes made so far: what a failure removes
    Status st = plan.xva ? WriteXvaDisks(plan, spec, ctx, &made) : WriteOvaDisks(plan, spec, ctx, &made);
    if (st.ok()) st = vms_.Keep(owned, kIntent);
    if (!st.ok()) {
      vms_.RemoveVolumes(made);
      vms_.Abandon(owned, kIntent);
      log::Warn("vm {}: import from {} failed: {}", spec.name, plan.path, st.message());
      return st;
    }
    owned.Release();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    events_.Publish({{"type", "vm"}, {"vm", spec.name}, {"state", "stopped"}, {"created", true}});
    log::Info("vm {}: imported from {} in {:.1f} s", spec.name, plan.path, secs);
    return json{{"vm", spec.name},     {"uuid", spec.uuid}, {"source", plan.path}, {"format", plan.xva ? "xva" : "ova"},
                {"label", plan.label}, {"seconds", secs}};
  });
}

Status VmImports::WriteXvaDisks(const Plan& plan, const VmSpec& spec, TaskContext& ctx, VmSpec* made) {
  uint64_t bytes = 0;
  PAMPA_ASSIGN_OR_RETURN(Fd fd, OpenArchive(plan.path, &bytes));
  TarReader tar(fd.get(), plan.path);
  PAMPA_ASSIGN_OR_RETURN(XvaVm again, ReadXvaHeader(tar));
  if (again.disks.size() != plan.xva_disks.size()) return Status::Conflict(plan.path + " changed since it was read");
  // Preallocated qcow2 volumes: every guest byte has its place in the file,
  // so verified blocks are written there directly (as a restore does).
  std::vector<TargetWriter> disks;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& d = spec.disks[i];
    uint64_t size = plan.xva_disks[i].size;
    PAMPA_ASSIGN_OR_RETURN(auto vol, storage_.CreateVolume(d.pool, d.volume, size, "qcow2", /*preallocate=*/true));
    made->disks.push_back(d);
    PAMPA_ASSIGN_OR_RETURN(auto layout, MapImage(vol.path, "qcow2"));
    PAMPA_ASSIGN_OR_RETURN(auto writer,
                           TargetWriter::Open({vol.path, std::move(layout)}, size, WriteCache::kPageCache));
    disks.push_back(std::move(writer));
    ctx.Log("disk " + std::to_string(i) + ": " + plan.xva_disks[i].vdi + " (" + plan.xva_disks[i].label + ", " +
            FormatSize(size) + ") into " + d.pool + "/" + d.volume);
  }
  std::atomic<uint64_t> written{0};
  auto write = [&](size_t disk, uint64_t offset, const char* data, size_t len) {  // on the import's workers
    written += len;
    return disks[disk].WriteData(data, len, offset);
  };
  auto progress = [&](uint64_t at) {
    ctx.Progress(bytes ? 0.99 * double(at) / double(bytes) : 0,
                 "reading " + FormatSize(at) + " of " + FormatSize(bytes));
  };
  PAMPA_RETURN_IF_ERROR(ReadXvaDisks(tar, plan.xva_disks, write, progress, ctx.cancel_flag()));
  for (auto& w : disks) PAMPA_RETURN_IF_ERROR(w.Sync());
  ctx.Log("every block matched its checksum; " + FormatSize(written.load()) + " written");
  return Status::Ok();
}

namespace {

// Reads a disk of the package once and compares its digest with the manifest's.
// (member: its name, at [offset, offset + length) of the package at path.)
Status CheckOvaMember(const std::string& path, const std::string& member, uint64_t offset, uint64_t length,
                      const OvaDigest& digest, TaskContext& ctx,
                      const std::function<void(double, const std::string&)>& progress) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::Unavailable("cannot read " + path + ": " + std::strerror(errno));
  posix_fadvise(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_SEQUENTIAL);
  OvaHasher hasher(digest.algorithm);
  std::vector<char> buf(1 << 20);
  for (uint64_t at = 0; at < length;) {
    if (ctx.cancelled()) return Status::Cancelled("import cancelled");
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - at));
    ssize_t n = pread(fd.get(), buf.data(), want, static_cast<off_t>(offset + at));
    if (n <= 0) return Status::Unavailable("cannot read " + member + " in " + path);
    hasher.Update(buf.data(), static_cast<size_t>(n));
    at += static_cast<uint64_t>(n);
    progress(double(at) / double(length), "checking " + member + " against the manifest");
  }
  if (hasher.HexDigest() != digest.hex) {
    return Status::Invalid(member + " in " + path + " does not match the " + digest.algorithm +
                           " in the package's manifest: the package is damaged or was changed");
  }
  return Status::Ok();
}

}  // namespace

Status VmImports::WriteOvaDisks(const Plan& plan, const VmSpec& spec, TaskContext& ctx, VmSpec* made) {
  uint64_t total = 0, done = 0;
  for (auto& d : plan.ova_disks) total += d.length;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const Plan::OvaDisk& src = plan.ova_disks[i];
    const DiskSpec& d = spec.disks[i];
    if (src.member.empty()) {
      PAMPA_RETURN_IF_ERROR(storage_.CreateVolume(d.pool, d.volume, src.capacity, "qcow2").status());
      made->disks.push_back(d);
      ctx.Log("disk " + std::to_string(i) + ": blank, " + FormatSize(src.capacity));
      continue;
    }
    // Checked against the manifest first (a read of the disk), then converted:
    // each is half of the disk's share of the progress.
    auto digest = plan.manifest.find(src.member);
    bool check = digest != plan.manifest.end();
    auto step = [&](double start, double f, const std::string& what) {
      double share = check ? 0.5 : 1.0;
      ctx.Progress(total ? 0.99 * (double(done) + (start + share * f) * double(src.length)) / double(total) : 0, what);
    };
    if (check) {
      PAMPA_RETURN_IF_ERROR(CheckOvaMember(plan.path, src.member, src.offset, src.length, digest->second, ctx,
                                           [&](double f, const std::string& what) { step(0, f, what); }));
      ctx.Log(src.member + ": matches the " + digest->second.algorithm + " in the package's manifest");
    }
    ctx.Log("disk " + std::to_string(i) + ": " + src.member + " into " + d.pool + "/" + d.volume);
    auto progress = [&](double f) { step(check ? 0.5 : 0, f, "converting " + src.member); };
    auto vol = storage_.ImportVolumeSlice(d.pool, d.volume, plan.path, src.offset, src.length, "vmdk",
                                          src.member + " in " + plan.path, progress, ctx.cancel_flag());
    if (!vol.ok()) return vol.status();
    made->disks.push_back(d);
    if (vol->virtual_size != src.capacity) {
      ctx.Log("note: " + src.member + " is " + FormatSize(vol->virtual_size) + " where the OVF says " +
              FormatSize(src.capacity) + "; the image's own size is kept");
    }
    done += src.length;
  }
  return Status::Ok();
}

namespace {

// The hashes of what a P2V pass copied, per disk: what its second pass compares with.
json RangesRecord(const std::string& source, const std::vector<RemoteDisk>& disks,
                  const std::vector<std::vector<std::string>>& hashes) {
  json out = {{"source", source}, {"disks", json::array()}};
  for (size_t i = 0; i < disks.size(); ++i) {
    out["disks"].push_back({{"device", disks[i].device}, {"size", disks[i].size}, {"hashes", hashes[i]}});
  }
  return out;
}

// Progress over several disks, weighted by their sizes.
struct DiskProgress {
  TaskContext& ctx;
  uint64_t total = 0, before = 0;
  RangeCopy sum;  // over the disks done
  void Set(const std::string& what, uint64_t size, uint64_t done, uint64_t all) {
    double f = all ? double(done) / double(all) : 1.0;
    ctx.Progress(total ? 0.99 * (double(before) + f * double(size)) / double(total) : 0, what);
  }
};

// One pass over one disk, synced. The first (previous empty) is one stream
// from the server (RemoteHost::StreamRanges) where it has python3; otherwise,
// and for a second pass, the server hashes the disk and the ranges that differ
// from previous are copied into the volume (RemoteHost::CopyRanges).
Result<RangeCopy> CopyPass(RemoteHost& host, const RemoteDisk& disk, const VolumeInfo& vol,
                           const std::vector<std::string>& previous, std::vector<std::string>* hashes,
                           DiskProgress& progress) {
  PAMPA_ASSIGN_OR_RETURN(auto layout, MapImage(vol.path, vol.format));
  PAMPA_ASSIGN_OR_RETURN(auto out,
                         TargetWriter::Open({vol.path, std::move(layout)}, disk.size, WriteCache::kPageCache));
  auto step = [&](uint64_t done, uint64_t all) { progress.Set("copying " + disk.device, disk.size, done, all); };
  auto copied = [&]() -> Result<RangeCopy> {
    if (previous.empty()) {
      auto streamed = host.StreamRanges(disk, out, hashes, step, progress.ctx.cancel_flag());
      if (streamed.ok() || streamed.status().code() != ErrorCode::kNotFound) return streamed;
      progress.ctx.Log(streamed.status().message() + ": hashing on the server, then reading through SFTP");
    }
    progress.Set("hashing " + disk.device + " on the server", disk.size, 0, 1);
    PAMPA_ASSIGN_OR_RETURN(auto remote, host.RangeHashes(disk, progress.ctx.cancel_flag()));
    return host.CopyRanges(disk, remote, previous, out, hashes, step, progress.ctx.cancel_flag());
  }();
  PAMPA_ASSIGN_OR_RETURN(RangeCopy c, std::move(copied));
  PAMPA_RETURN_IF_ERROR(out.Sync());
  progress.before += disk.size;
  progress.sum.ranges += c.ranges;
  progress.sum.ranges_copied += c.ranges_copied;
  progress.sum.bytes_copied += c.bytes_copied;
  return c;
}

}  // namespace

Result<std::vector<DiskSpec>> VmImports::NewDisks(const ImportRequest& req, size_t count) {
  std::vector<DiskSpec> disks;
  for (size_t i = 0; i < count; ++i) {
    DiskSpec d{req.pool, req.name + "-disk" + std::to_string(i), "", req.bus};
    if (storage_.GetVolume(d.pool, d.volume).ok()) {
      return Status::Conflict("volume '" + d.volume + "' already exists in pool '" + d.pool +
                              "'; delete it or choose another VM name");
    }
    disks.push_back(d);
  }
  return disks;
}

Result<SftpLocation> VmImports::SshSource(const ImportRequest& req) {
  PAMPA_ASSIGN_OR_RETURN(SftpLocation loc, ParseSshUrl(req.from_host));
  if (!req.identity.empty()) {
    PAMPA_ASSIGN_OR_RETURN(loc.identity, storage_.CheckOutsidePath("SSH key", req.identity));
  }
  if (!req.known_hosts.empty()) {
    PAMPA_ASSIGN_OR_RETURN(loc.known_hosts, storage_.CheckOutsidePath("known_hosts file", req.known_hosts));
  }
  return loc;
}

std::string VmImports::RangesPath(const std::string& vm) const {
  return vms_.config().data_dir + "/vms/" + vm + ".p2v.json";
}

Result<std::string> VmImports::ImportFromHost(const ImportRequest& req) {
  PAMPA_ASSIGN_OR_RETURN(SftpLocation loc, SshSource(req));
  if (req.host_disks.empty()) return Status::Invalid("name the server's disks to copy: --disk /dev/sda (repeatable)");
  if (req.host_disks.size() > kMaxDisks) {
    return Status::Invalid("a VM has at most " + std::to_string(kMaxDisks) + " disks");
  }
  for (const auto& d : req.host_disks) PAMPA_RETURN_IF_ERROR(CheckDevicePath(d));
  PAMPA_RETURN_IF_ERROR(storage_.GetPool(req.pool).status());
  PAMPA_RETURN_IF_ERROR(networks_.Get(req.network).status());
  if (vms_.Show(req.name).ok()) return Status::Conflict("vm '" + req.name + "' already exists; pick another name");
  if (req.bus == DiskBus::kSata && req.host_disks.size() > kMaxSataDisks) {
    return Status::Invalid("a VM has at most " + std::to_string(kMaxSataDisks) +
                           " sata disks; use --bus scsi or virtio");
  }
  PAMPA_ASSIGN_OR_RETURN(auto connected, RemoteHost::Connect(loc));
  std::shared_ptr<RemoteHost> host = std::move(connected);
  PAMPA_ASSIGN_OR_RETURN(RemoteMachine machine, host->Describe(req.host_disks));

  VmSpec spec;
  spec.name = req.name;
  spec.uuid = NewUuid();
  spec.cpus = machine.cpus;
  spec.memory_mib = machine.memory_mib;
  spec.firmware = machine.firmware;
  spec.host = vms_.config().hostname;
  PAMPA_ASSIGN_OR_RETURN(spec.disks, NewDisks(req, machine.disks.size()));
  spec.nics.push_back({req.network, NewMac()});
  PAMPA_ASSIGN_OR_RETURN(auto hold, vms_.HoldNewVm(spec, VmOp::kCreate, kIntent));
  auto held = std::make_shared<VmManager::Hold>(std::move(hold));
  std::string source = req.from_host;
  return tasks_.Start(
      "vm-import", spec.name, [this, held, host, machine, spec, source](TaskContext& ctx) -> Result<json> {
        VmManager::Hold owned = std::move(*held);  // given back on every return
        auto start = std::chrono::steady_clock::now();
        ctx.Log("copying " + std::to_string(machine.disks.size()) + " disk(s) of " + host->Describe() + " (" +
                std::to_string(machine.cpus) + " CPU(s), " + std::to_string(machine.memory_mib) + " MiB, " +
                machine.firmware + ")");
        VmSpec made{.name = spec.name};
        std::vector<std::vector<std::string>> hashes(machine.disks.size());
        DiskProgress progress{ctx};
        for (auto& d : machine.disks) progress.total += d.size;
        auto copy = [&]() -> Status {
          for (size_t i = 0; i < machine.disks.size(); ++i) {
            const RemoteDisk& disk = machine.disks[i];
            const DiskSpec& d = spec.disks[i];
            PAMPA_ASSIGN_OR_RETURN(auto vol, storage_.CreateVolume(d.pool, d.volume, disk.size, "qcow2", true));
            made.disks.push_back(d);
            PAMPA_ASSIGN_OR_RETURN(RangeCopy c, CopyPass(*host, disk, vol, {}, &hashes[i], progress));
            ctx.Log("disk " + std::to_string(i) + ": " + disk.device + " (" + FormatSize(disk.size) + ") into " +
                    d.pool + "/" + d.volume + ": " + std::to_string(c.ranges_copied) + " of " +
                    std::to_string(c.ranges) + " MiB ranges held data and were copied");
          }
          PAMPA_RETURN_IF_ERROR(MakeDirs(vms_.config().data_dir + "/vms"));
          return WriteFileAtomic(RangesPath(spec.name), RangesRecord(source, machine.disks, hashes).dump(), 0600);
        };
        Status st = copy();
        if (st.ok()) st = vms_.Keep(owned, kIntent);
        if (!st.ok()) {
          vms_.RemoveVolumes(made);
          vms_.Abandon(owned, kIntent);
          log::Warn("vm {}: import from {} failed: {}", spec.name, source, st.message());
          return st;
        }
        owned.Release();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        events_.Publish({{"type", "vm"}, {"vm", spec.name}, {"state", "stopped"}, {"created", true}});
        ctx.Log("for the final copy, stop the server's services and run the same import with --second-pass");
        return json{{"vm", spec.name},
                    {"uuid", spec.uuid},
                    {"source", source},
                    {"format", "p2v"},
                    {"ranges", progress.sum.ranges},
                    {"ranges_copied", progress.sum.ranges_copied},
                    {"bytes_copied", progress.sum.bytes_copied},
                    {"seconds", secs}};
      });
}

Result<std::string> VmImports::SecondPass(const ImportRequest& req) {
  PAMPA_ASSIGN_OR_RETURN(SftpLocation loc, SshSource(req));
  auto text = ReadFile(RangesPath(req.name));
  if (!text.ok()) {
    return Status::NotFound("vm '" + req.name +
                            "' has no first P2V pass to continue: import it without --second-pass first");
  }
  json record = json::parse(*text, nullptr, false);
  if (!record.is_object() || !record.contains("disks") || !record["disks"].is_array()) {
    return Status::Internal(RangesPath(req.name) + " is damaged: import the server again");
  }
  if (record.value("source", "") != req.from_host) {
    return Status::Invalid("vm '" + req.name + "' was copied from " + record.value("source", "") + ", not " +
                           req.from_host);
  }
  std::vector<std::string> devices;
  std::vector<std::vector<std::string>> previous;
  for (const auto& d : record["disks"]) {
    devices.push_back(d.value("device", ""));
    previous.push_back(d.value("hashes", std::vector<std::string>()));
  }
  if (!req.host_disks.empty() && req.host_disks != devices) {
    std::string list;
    for (auto& d : devices) list += " --disk " + d;
    return Status::Invalid("the first pass copied" + list + "; the second pass copies the same disks");
  }
  // Stopped, and kept so while the pass writes under it.
  PAMPA_ASSIGN_OR_RETURN(auto hold, vms_.HoldVm(req.name, VmOp::kRestore, VmAction::kRestoreInPlace));
  const VmSpec spec = hold.spec();
  if (spec.disks.size() != devices.size()) {
    return Status::Conflict("vm '" + req.name + "' no longer has the " + std::to_string(devices.size()) +
                            " disk(s) its first pass made");
  }
  PAMPA_ASSIGN_OR_RETURN(auto connected, RemoteHost::Connect(loc));
  std::shared_ptr<RemoteHost> host = std::move(connected);
  PAMPA_ASSIGN_OR_RETURN(RemoteMachine machine, host->Describe(devices));
  for (size_t i = 0; i < devices.size(); ++i) {
    if (machine.disks[i].size != record["disks"][i].value("size", uint64_t{0})) {
      return Status::Conflict(devices[i] + " on " + host->Describe() +
                              " changed size since the first pass: import it again");
    }
  }
  auto held = std::make_shared<VmManager::Hold>(std::move(hold));
  std::string source = req.from_host;
  return tasks_.Start(
      "vm-import", spec.name, [this, held, host, machine, spec, source, previous](TaskContext& ctx) -> Result<json> {
        VmManager::Hold owned = std::move(*held);
        auto start = std::chrono::steady_clock::now();
        std::vector<std::vector<std::string>> hashes(machine.disks.size());
        DiskProgress progress{ctx};
        for (auto& d : machine.disks) progress.total += d.size;
        for (size_t i = 0; i < machine.disks.size(); ++i) {
          const RemoteDisk& disk = machine.disks[i];
          const DiskSpec& d = spec.disks[i];
          PAMPA_ASSIGN_OR_RETURN(auto vol, storage_.LocateVolume(d.pool, d.volume));
          PAMPA_ASSIGN_OR_RETURN(RangeCopy c, CopyPass(*host, disk, vol, previous[i], &hashes[i], progress));
          ctx.Log("disk " + std::to_string(i) + ": " + std::to_string(c.ranges_copied) + " of " +
                  std::to_string(c.ranges) + " MiB ranges changed since the last pass and were copied again");
        }
        PAMPA_RETURN_IF_ERROR(
            WriteFileAtomic(RangesPath(spec.name), RangesRecord(source, machine.disks, hashes).dump(), 0600));
        owned.Release();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return json{{"vm", spec.name},
                    {"source", source},
                    {"format", "p2v"},
                    {"second_pass", true},
                    {"ranges", progress.sum.ranges},
                    {"ranges_copied", progress.sum.ranges_copied},
                    {"bytes_copied", progress.sum.bytes_copied},
                    {"seconds", secs}};
      });
}

}  // namespace pampa
