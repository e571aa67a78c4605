// VmManager: the VM registry, requests from the API, and their validation.
// Everything that talks to QEMU is in vm_runtime.cc.
#include "vm/vm_manager.h"

#include <unistd.h>

#include <filesystem>

#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "vm/vm_internal.h"

namespace pampa {
namespace {

using json = nlohmann::json;

const char* kOvmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const char* kOvmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd";

}  // namespace

VmManager::VmManager(VmManagerConfig config, Store& store, Storage& storage, Networks& networks, Tasks& tasks,
                     EventBus& events, AccelProbe& accel)
    : config_(std::move(config)),
      store_(store),
      storage_(storage),
      networks_(networks),
      tasks_(tasks),
      events_(events),
      accel_(accel) {}

VmManager::~VmManager() { StopReconciler(); }

RuntimePaths VmManager::PathsFor(const VmSpec& spec) const {
  return RuntimePaths{config_.run_dir + "/vm/" + spec.uuid.substr(0, 8)};
}

json VmManager::Describe(Vm& vm) {
  json disks = json::array(), nics = json::array();
  for (auto& d : vm.spec.disks) disks.push_back({{"pool", d.pool}, {"volume", d.volume}});
  for (auto& n : vm.spec.nics) nics.push_back({{"network", n.network}, {"mac", n.mac}});
  json j = ToJson(vm.spec);
  j["state"] = vm.state;
  j["host"] = config_.hostname;
  j["busy"] = vm.busy;
  j["reason"] = vm.reason;
  j["pid"] = vm.pid;
  j["accel"] = vm.accel;
  j["started"] = vm.started_ms;
  return j;
}

void VmManager::SetState(Vm& vm, const std::string& state, const std::string& reason) {
  bool changed = vm.state != state || vm.reason != reason;
  vm.state = state;
  vm.reason = reason;
  json snap = Describe(vm);
  {
    std::lock_guard lock(vm.snap_mu);
    vm.snapshot = snap;
  }
  if (changed) {
    log::Info("vm {}: {}{}", vm.spec.name, state, reason.empty() ? "" : " (" + reason + ")");
    events_.Publish({{"type", "vm"}, {"vm", vm.spec.name}, {"state", state}, {"reason", reason}});
  }
}

Status VmManager::PersistSpec(const VmSpec& spec) { return store_.Put("vms/" + spec.name, ToJson(spec).dump()); }

Status VmManager::PersistRuntime(Vm& vm) {
  if (vm.pid == 0 && vm.state != "crashed") return store_.Delete("runtime/" + vm.spec.name);
  json j = {
      {"pid", vm.pid},     {"accel", vm.accel},  {"started", vm.started_ms}, {"stop_requested", vm.stop_requested},
      {"state", vm.state}, {"reason", vm.reason}};
  return store_.Put("runtime/" + vm.spec.name, j.dump());
}

Result<std::shared_ptr<VmManager::Vm>> VmManager::Find(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", name));
  std::lock_guard lock(mu_);
  auto it = vms_.find(name);
  if (it == vms_.end()) return Status::NotFound("vm '" + name + "' does not exist (see: pampa vm list)");
  return it->second;
}

Status VmManager::RefuseIfBusy(Vm& vm, const std::string& allowed) {
  std::lock_guard lock(vm.snap_mu);
  std::string busy = vm.snapshot.value("busy", "");
  if (!busy.empty() && busy != allowed) return Status::Busy("busy: " + busy + " in progress");
  return Status::Ok();
}

Status VmManager::Load() {
  PAMPA_ASSIGN_OR_RETURN(auto specs, store_.List("vms/"));
  // A changed boot id means the host rebooted: no QEMU of ours can be alive,
  // and autostart VMs must be started.
  auto boot_file = ReadFile("/proc/sys/kernel/random/boot_id");
  std::string boot_id = boot_file.ok() ? *boot_file : "";
  auto stored = store_.Get("host/boot_id");
  bool host_booted = stored.ok() && (!stored->has_value() || **stored != boot_id);
  for (auto& [key, value] : specs) {
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (!spec.ok()) {
      log::Error("skipping {}: {}", key, spec.status().message());
      continue;
    }
    auto vm = std::make_shared<Vm>();
    vm->spec = *spec;
    vm->paths = PathsFor(vm->spec);
    std::lock_guard lock(vm->mu);
    if (host_booted) {
      Status st = store_.Delete("runtime/" + vm->spec.name);
      (void)st;
    }
    Reattach(*vm);
    std::lock_guard l(mu_);
    vms_[vm->spec.name] = vm;
  }
  if (host_booted) {
    Status st = store_.Put("host/boot_id", boot_id);
    (void)st;
    std::vector<std::string> autostart;
    {
      std::lock_guard lock(mu_);
      for (auto& [name, vm] : vms_) {
        if (vm->spec.autostart) autostart.push_back(name);
      }
    }
    if (!autostart.empty()) {
      tasks_.Start("autostart", "host", [this, autostart](TaskContext& ctx) -> Result<json> {
        json started = json::array();
        for (size_t i = 0; i < autostart.size(); ++i) {
          Status st = Start(autostart[i]);
          ctx.Log("autostart " + autostart[i] + ": " + (st.ok() ? "started" : st.message()));
          if (st.ok()) started.push_back(autostart[i]);
          ctx.Progress(double(i + 1) / autostart.size());
        }
        return json{{"started", started}};
      });
    }
  }
  return Status::Ok();
}

Result<std::string> VmManager::Create(const CreateRequest& req) {
  // Everything that can be checked is checked before anything is created.
  PAMPA_RETURN_IF_ERROR(storage_.GetPool(req.pool).status());
  for (auto& n : req.networks) PAMPA_RETURN_IF_ERROR(networks_.Get(n).status());
  VmSpec spec;
  spec.name = req.name;
  spec.uuid = NewUuid();
  spec.cpus = req.cpus;
  spec.memory_mib = req.memory_mib;
  spec.append = req.append;
  spec.firmware = req.firmware;
  spec.autostart = req.autostart;
  if (!req.kernel.empty()) {
    PAMPA_ASSIGN_OR_RETURN(spec.kernel, storage_.CheckOutsidePath("kernel", req.kernel));
  }
  if (!req.initrd.empty()) {
    PAMPA_ASSIGN_OR_RETURN(spec.initrd, storage_.CheckOutsidePath("initrd", req.initrd));
  }
  if (!req.cdrom.empty()) {
    PAMPA_ASSIGN_OR_RETURN(spec.cdrom, storage_.CheckOutsidePath("cdrom", req.cdrom));
  }
  if (spec.firmware == "uefi" && !Exists(kOvmfCode)) {
    return Status::Unavailable("UEFI firmware is not installed (" + std::string(kOvmfCode) + "): apt-get install ovmf");
  }
  std::string image;
  if (!req.disk_image.empty()) {
    PAMPA_ASSIGN_OR_RETURN(image, storage_.CheckOutsidePath("disk image", req.disk_image));
    PAMPA_RETURN_IF_ERROR(storage_.CheckImportImage(image).status());
  }
  size_t ndisks = req.disks.size() + (image.empty() ? 0 : 1);
  for (size_t i = 0; i < ndisks; ++i) {
    std::string vol = spec.name + "-disk" + std::to_string(i);
    if (vol.size() > 63) return Status::Invalid("vm name too long to name its disks; use at most 56 characters");
    if (storage_.GetVolume(req.pool, vol).ok()) {
      return Status::Conflict("volume '" + vol + "' already exists in pool '" + req.pool +
                              "'; delete it or choose another VM name");
    }
    spec.disks.push_back({req.pool, vol});
  }
  for (auto& n : req.networks) spec.nics.push_back({n, NewMac()});

  auto vm = std::make_shared<Vm>();
  vm->spec = spec;
  vm->paths = PathsFor(spec);
  vm->busy = "create";
  {
    std::lock_guard lock(mu_);
    if (vms_.count(spec.name)) return Status::Conflict("vm '" + spec.name + "' already exists");
    vms_[spec.name] = vm;
  }
  {
    std::lock_guard lock(vm->mu);
    SetState(*vm, "stopped");
  }
  std::vector<uint64_t> blanks = req.disks;
  return tasks_.Start("vm-create", spec.name, [this, vm, spec, image, blanks](TaskContext& ctx) -> Result<json> {
    std::vector<std::string> made;
    auto fail = [&](const Status& st) -> Result<json> {
      for (auto& v : made) {
        Status ignored = storage_.DeleteVolume(spec.disks[0].pool, v);
        (void)ignored;
      }
      std::lock_guard lock(mu_);
      vms_.erase(spec.name);
      events_.Publish({{"type", "vm"}, {"vm", spec.name}, {"state", "deleted"}});
      return st;
    };
    size_t d = 0;
    if (!image.empty()) {
      ctx.Log("importing " + image + " as " + spec.disks[0].volume);
      auto v = storage_.ImportVolume(
          spec.disks[0].pool, spec.disks[0].volume, image,
          [&](double f) { ctx.Progress(f * 0.95, "importing disk image"); }, ctx.cancel_flag());
      if (!v.ok()) return fail(v.status());
      made.push_back(spec.disks[0].volume);
      ++d;
    }
    for (uint64_t size : blanks) {
      auto v = storage_.CreateVolume(spec.disks[d].pool, spec.disks[d].volume, size, "qcow2");
      if (!v.ok()) return fail(v.status());
      ctx.Log("created " + spec.disks[d].volume + " (" + FormatSize(size) + ")");
      made.push_back(spec.disks[d].volume);
      ++d;
    }
    if (spec.firmware == "uefi") {
      Status st = MakeDirs(config_.data_dir + "/vms");
      if (st.ok()) {
        std::error_code ec;
        std::filesystem::copy_file(kOvmfVars, config_.data_dir + "/vms/" + spec.name + ".vars.fd",
                                   std::filesystem::copy_options::overwrite_existing, ec);
        if (ec) st = Status::Internal("cannot copy UEFI variables: " + ec.message());
      }
      if (!st.ok()) return fail(st);
    }
    Status st = PersistSpec(spec);
    if (!st.ok()) return fail(st);
    std::lock_guard lock(vm->mu);
    vm->busy.clear();
    SetState(*vm, "stopped");
    events_.Publish({{"type", "vm"}, {"vm", spec.name}, {"state", "stopped"}, {"created", true}});
    return json{{"vm", spec.name}, {"uuid", spec.uuid}};
  });
}

std::vector<json> VmManager::List() {
  std::vector<std::shared_ptr<Vm>> vms;
  {
    std::lock_guard lock(mu_);
    vms.reserve(vms_.size());
    for (auto& [n, vm] : vms_) vms.push_back(vm);
  }
  std::vector<json> out;
  out.reserve(vms.size());
  for (auto& vm : vms) {
    std::lock_guard lock(vm->snap_mu);
    out.push_back(vm->snapshot);
  }
  return out;
}

Result<json> VmManager::Show(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  std::lock_guard lock(vm->snap_mu);
  return vm->snapshot;
}

Status VmManager::Edit(const std::string& name, const EditRequest& req) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_RETURN_IF_ERROR(RefuseIfBusy(*vm));
  std::lock_guard lock(vm->mu);
  if (!vm->busy.empty()) return Status::Busy("busy: " + vm->busy + " in progress");
  bool only_autostart =
      !req.cpus && !req.memory_mib && !req.cdrom && !req.kernel && !req.initrd && !req.append && !req.firmware;
  if (!only_autostart && vm->state != "stopped" && vm->state != "crashed") {
    return Status::Conflict("vm '" + name + "' is " + vm->state +
                            "; stop it before editing (only --autostart can change while it runs)");
  }
  VmSpec s = vm->spec;
  if (req.cpus) s.cpus = *req.cpus;
  if (req.memory_mib) s.memory_mib = *req.memory_mib;
  if (req.autostart) s.autostart = *req.autostart;
  if (req.append) s.append = *req.append;
  auto path = [&](const std::string& what, const std::string& p) -> Result<std::string> {
    if (p.empty()) return std::string();
    return storage_.CheckOutsidePath(what, p);
  };
  if (req.kernel) {
    PAMPA_ASSIGN_OR_RETURN(s.kernel, path("kernel", *req.kernel));
  }
  if (req.initrd) {
    PAMPA_ASSIGN_OR_RETURN(s.initrd, path("initrd", *req.initrd));
  }
  if (req.cdrom) {
    PAMPA_ASSIGN_OR_RETURN(s.cdrom, path("cdrom", *req.cdrom));
  }
  if (req.firmware) {
    if (*req.firmware != s.firmware) {
      return Status::Invalid("changing firmware of an existing VM is not supported (its disks are set up for " +
                             s.firmware + ")");
    }
  }
  if ((!s.initrd.empty() || !s.append.empty()) && s.kernel.empty()) {
    return Status::Invalid("an initrd or kernel command line needs a kernel");
  }
  PAMPA_RETURN_IF_ERROR(PersistSpec(s));
  vm->spec = s;
  SetState(*vm, vm->state, vm->reason);
  return Status::Ok();
}

Status VmManager::Delete(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_RETURN_IF_ERROR(RefuseIfBusy(*vm));
  std::lock_guard lock(vm->mu);
  if (!vm->busy.empty()) return Status::Busy("busy: " + vm->busy + " in progress");
  if (vm->state != "stopped" && vm->state != "crashed") {
    return Status::Conflict("vm '" + name + "' is " + vm->state + "; stop it first (pampa vm stop " + name + ")");
  }
  for (auto& d : vm->spec.disks) {
    Status st = storage_.DeleteVolume(d.pool, d.volume);
    if (!st.ok() && st.code() != ErrorCode::kNotFound) return st.Context("deleting disk " + d.volume);
  }
  Cleanup(*vm);
  unlink((config_.data_dir + "/vms/" + name + ".vars.fd").c_str());
  PAMPA_RETURN_IF_ERROR(store_.Delete("runtime/" + name));
  if (auto snaps = store_.List("snapshots/" + name + "/"); snaps.ok()) {
    for (auto& [key, value] : *snaps) PAMPA_RETURN_IF_ERROR(store_.Delete(key));
  }
  PAMPA_RETURN_IF_ERROR(store_.Delete("snapshot-current/" + name));
  PAMPA_RETURN_IF_ERROR(store_.Delete("vms/" + name));
  vm->deleted = true;
  {
    std::lock_guard l(mu_);
    vms_.erase(name);
  }
  events_.Publish({{"type", "vm"}, {"vm", name}, {"state", "deleted"}});
  log::Info("vm {}: deleted", name);
  return Status::Ok();
}

std::string VmManager::VolumeUser(const std::string& pool, const std::string& volume) {
  std::lock_guard lock(mu_);
  for (auto& [name, vm] : vms_) {
    std::lock_guard l(vm->mu);
    for (auto& d : vm->spec.disks) {
      if (d.pool == pool && d.volume == volume) return name;
    }
  }
  return "";
}

std::string VmManager::NetworkUser(const std::string& network) {
  std::lock_guard lock(mu_);
  for (auto& [name, vm] : vms_) {
    std::lock_guard l(vm->mu);
    for (auto& n : vm->spec.nics) {
      if (n.network == network) return name;
    }
  }
  return "";
}

}  // namespace pampa
