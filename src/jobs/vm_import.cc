#include "jobs/vm_import.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include "backup/disk_transfer.h"
#include "backup/tar_reader.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "jobs/ovf.h"
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
  std::vector<std::string> macs;  // one per NIC; "" for a new one
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
  for (size_t i = 0; i < plan.disks(); ++i) {
    DiskSpec d{req.pool, req.name + "-disk" + std::to_string(i), "", req.bus};
    if (storage_.GetVolume(d.pool, d.volume).ok()) {
      return Status::Conflict("volume '" + d.volume + "' already exists in pool '" + d.pool +
                              "'; delete it or choose another VM name");
    }
    spec.disks.push_back(d);
  }
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
    PAMPA_ASSIGN_OR_RETURN(auto writer, TargetWriter::Open({vol.path, std::move(layout)}, size));
    disks.push_back(std::move(writer));
    ctx.Log("disk " + std::to_string(i) + ": " + plan.xva_disks[i].vdi + " (" + plan.xva_disks[i].label + ", " +
            FormatSize(size) + ") into " + d.pool + "/" + d.volume);
  }
  uint64_t written = 0;
  auto write = [&](size_t disk, uint64_t offset, const char* data, size_t len) {
    written += len;
    return disks[disk].WriteData(data, len, offset);
  };
  auto progress = [&](uint64_t at) {
    ctx.Progress(bytes ? 0.99 * double(at) / double(bytes) : 0,
                 "reading " + FormatSize(at) + " of " + FormatSize(bytes));
  };
  PAMPA_RETURN_IF_ERROR(ReadXvaDisks(tar, plan.xva_disks, write, progress, ctx.cancel_flag()));
  for (auto& w : disks) PAMPA_RETURN_IF_ERROR(w.Sync());
  ctx.Log("every block matched its checksum; " + FormatSize(written) + " written");
  return Status::Ok();
}

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
    ctx.Log("disk " + std::to_string(i) + ": " + src.member + " into " + d.pool + "/" + d.volume);
    auto progress = [&](double f) {
      ctx.Progress(total ? 0.99 * (double(done) + f * double(src.length)) / double(total) : 0,
                   "converting " + src.member);
    };
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

}  // namespace pampa
