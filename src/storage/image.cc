#include "storage/image.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/process.h"

namespace pampa {
namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The format a file name claims, or "" when its extension says nothing.
std::string ClaimedFormat(const std::string& path) {
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = Lower(path.substr(dot + 1));
  if (ext == "qcow2") return "qcow2";
  if (ext == "vmdk") return "vmdk";
  if (ext == "vhd" || ext == "vpc") return "vpc";
  if (ext == "vhdx") return "vhdx";
  if (ext == "raw" || ext == "img" || ext == "iso") return "raw";
  return "";
}

}  // namespace

Result<ImageInfo> InspectImage(const std::string& path) {
  auto r = Run({"qemu-img", "info", "--output=json", "-U", path}, {.timeout = std::chrono::seconds(30)});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::Invalid("qemu-img cannot read " + path + ": " + r->err.substr(0, r->err.find('\n')));
  }
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  if (!j.is_object()) return Status::Internal("qemu-img info printed no JSON for " + path);
  ImageInfo info;
  info.format = j.value("format", "");
  info.virtual_size = j.value("virtual-size", 0ull);
  info.actual_size = j.value("actual-size", 0ull);
  info.backing_file = j.value("backing-filename", "");
  if (j.contains("format-specific") && j["format-specific"].is_object()) {
    auto data = j["format-specific"].value("data", nlohmann::json::object());
    info.subformat = data.value("create-type", "");
    if (data.contains("data-file") && data["data-file"].is_string()) info.data_file = data["data-file"];
  }
  return info;
}

Result<std::vector<FileExtent>> MapImage(const std::string& path, const std::string& format) {
  auto r = Run({"qemu-img", "map", "--output=json", "-f", format, path}, {.timeout = std::chrono::seconds(60)});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::Unavailable("qemu-img cannot map " + path + ": " + r->err.substr(0, r->err.find('\n')));
  }
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  if (!j.is_array()) return Status::Internal("qemu-img map printed no JSON list for " + path);
  std::vector<FileExtent> out;
  uint64_t next = 0;
  for (auto& e : j) {
    FileExtent x;
    x.start = e.value("start", 0ull);
    x.length = e.value("length", 0ull);
    x.zero = e.value("zero", false);
    x.offset = e.contains("offset") ? e.value("offset", int64_t{-1}) : -1;
    bool data = e.value("data", false);
    if (x.start != next) return Status::Internal("qemu-img map of " + path + " has a gap at " + std::to_string(next));
    if (e.value("depth", 0) != 0 || e.value("compressed", false) || (data && !x.zero && x.offset < 0)) {
      return Status::Unavailable(path + " has data outside its file's plain clusters (backing file or compression)");
    }
    next = x.start + x.length;
    out.push_back(x);
  }
  return out;
}

Status ValidateImportImage(const std::string& path, const ImageInfo& info) {
  static const char* kAccepted[] = {"raw", "qcow2", "vmdk", "vpc", "vhdx"};
  bool accepted = false;
  for (auto f : kAccepted) accepted |= info.format == f;
  if (!accepted) {
    return Status::Invalid(path + " is a '" + info.format +
                           "' image; import accepts raw, qcow2, vmdk, vhd (vpc) and vhdx");
  }
  std::string claimed = ClaimedFormat(path);
  if (!claimed.empty() && claimed != info.format) {
    return Status::Invalid(path + " is named like a " + claimed + " image but contains " +
                           (info.format == "raw" ? std::string("raw data (no image header)") : info.format + " data") +
                           "; check the file or rename it to match its real format");
  }
  if (!info.backing_file.empty()) {
    return Status::Invalid(path + " depends on a backing file (" + info.backing_file +
                           "); flatten it first with: qemu-img convert -O qcow2 IN OUT");
  }
  // Files that name other files would let an import read anything on the host.
  if (info.format == "vmdk" && info.subformat != "monolithicSparse" && info.subformat != "streamOptimized") {
    return Status::Invalid(path + " is a '" + info.subformat +
                           "' VMDK, whose data lies in other files; import takes single-file VMDKs "
                           "(streamOptimized, monolithicSparse): convert it with qemu-img convert -O vmdk");
  }
  if (!info.data_file.empty()) {
    return Status::Invalid(path + " keeps its data in another file (" + info.data_file +
                           "); make it one file first with: qemu-img convert -O qcow2 IN OUT");
  }
  if (info.virtual_size == 0) return Status::Invalid(path + " is empty (virtual size 0)");
  return Status::Ok();
}

Status ConvertImage(const std::string& src, const std::string& src_format, const std::string& dst,
                    const std::string& dst_format, const ProgressFn& progress, const std::atomic<bool>* cancel,
                    const std::string& snapshot) {
  std::string tmp = dst + ".importing";
  unlink(tmp.c_str());
  std::string pending;
  RunOptions opts;
  opts.timeout = std::chrono::hours(12);
  opts.cancel = cancel;
  opts.on_output = [&](const std::string& chunk) {
    // qemu-img -p prints "    (12.34/100%)\r" repeatedly.
    pending += chunk;
    auto close = pending.rfind("/100%)");
    if (close == std::string::npos) return;
    auto open = pending.rfind('(', close);
    if (open != std::string::npos && progress) {
      try {
        progress(std::stod(pending.substr(open + 1, close - open - 1)) / 100.0);
      } catch (...) {
      }
    }
    pending.erase(0, close);
  };
  std::vector<std::string> argv = {"qemu-img", "convert", "-p", "-f", src_format, "-O", dst_format};
  if (dst_format == "qcow2") argv.insert(argv.end(), {"-o", "cluster_size=65536"});
  if (!snapshot.empty()) argv.insert(argv.end(), {"-U", "-l", "snapshot.name=" + snapshot});
  argv.insert(argv.end(), {src, tmp});
  auto r = RunChecked(argv, opts);
  if (!r.ok()) {
    unlink(tmp.c_str());
    return r.status().Context("importing " + src);
  }
  if (rename(tmp.c_str(), dst.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::Internal("cannot move the imported image into place at " + dst);
  }
  if (progress) progress(1.0);
  return Status::Ok();
}

}  // namespace pampa
