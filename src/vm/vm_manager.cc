// VmManager: the VM registry, requests from the API, and their validation.
// Everything that talks to QEMU is in vm_runtime.cc.
#include "vm/vm_manager.h"

#include <unistd.h>

#include <filesystem>

#include "base/fs.h"
#include "base/log.h"
#include "base/retry.h"
#include "base/units.h"
#include "vm/vm_internal.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

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
  json j = ToJson(vm.spec);
  VmState state;
  VmOp op;
  std::string reason;
  {
    MutexLock lock(&vm.mu);
    state = vm.state;
    op = vm.op;
    reason = vm.reason;
  }
  j["state"] = Name(state);
  j["host"] = config_.hostname;
  j["busy"] = Name(op);
  j["actions"] = AllowedActions(state, op, vm.spec.is_template);
  j["reason"] = reason;
  j["pid"] = vm.pid;
  j["accel"] = vm.accel;
  j["started"] = vm.started_ms;
  return j;
}

void VmManager::Publish(Vm& vm) {
  json snap = Describe(vm);
  auto text = std::make_shared<const std::string>(snap.dump());
  auto spec = std::make_shared<const VmSpec>(vm.spec);
  MutexLock lock(&vm.mu);
  vm.snapshot = std::move(snap);
  vm.snapshot_text = std::move(text);
  vm.published_spec = std::move(spec);
}

void VmManager::SetState(Vm& vm, VmState state, const std::string& reason) {
  bool changed, valid;
  VmState from;
  {
    MutexLock lock(&vm.mu);
    from = vm.state;
    valid = ValidTransition(from, state);
    changed = vm.state != state || vm.reason != reason;
    vm.state = state;
    vm.reason = reason;
  }
  Publish(vm);
  if (!valid)
    log::Error("vm {}: unexpected state change {} -> {} (a bug: please report it)", vm.spec.name, Name(from),
               Name(state));
  if (changed) {
    log::Info("vm {}: {}{}", vm.spec.name, Name(state), reason.empty() ? "" : " (" + reason + ")");
    events_.Publish({{"type", "vm"}, {"vm", vm.spec.name}, {"state", Name(state)}, {"reason", reason}});
  }
}

std::string SpecKey(const std::string& vm) { return "vms/" + vm; }

std::string VmManager::RuntimeKey(const std::string& vm) const {
  return "hosts/" + config_.hostname + "/runtime/" + vm;
}
std::string VmManager::BootIdKey() const { return "hosts/" + config_.hostname + "/boot_id"; }

void VmManager::MigrateHostKeys() {
  auto legacy = store_.List("runtime/");
  std::vector<std::pair<std::string, std::string>> moves;
  if (legacy.ok()) {
    for (auto& [k, v] : *legacy) moves.emplace_back(k, RuntimeKey(k.substr(std::string("runtime/").size())));
  }
  moves.emplace_back("host/boot_id", BootIdKey());
  for (auto& [from, to] : moves) {
    auto value = store_.Get(from);
    if (!value.ok() || !value->has_value()) continue;
    auto done = store_.Commit(Txn().IfAbsent(to).Put(to, **value).Delete(from));
    if (!done.ok()) log::Warn("moving {} to {}: {}", from, to, done.status().message());
  }
}

Status VmManager::ClaimName(Vm& vm, const std::string& intent) {
  FitPorts(&vm.spec);  // a new VM: nothing depends on its machine yet
  std::string spec = ToJson(vm.spec).dump();
  // Resolved: a claim that was applied though its reply was lost is ours.
  auto rev = CommitResolved(store_, Txn()
                                        .IfAbsent(SpecKey(vm.spec.name))
                                        .Put(SpecKey(vm.spec.name), spec)
                                        .Put(IntentKey(intent, vm.spec.name), spec));
  if (!rev.ok()) {
    if (rev.status().code() == ErrorCode::kConflict)
      return Status::Conflict("vm '" + vm.spec.name + "' already exists");
    return rev.status().Context("recording vm " + vm.spec.name);
  }
  vm.spec_revision = *rev;
  return Status::Ok();
}

Status VmManager::UnclaimName(const VmSpec& spec, const std::string& intent) {
  auto current = store_.Get(SpecKey(spec.name));
  Txn txn;
  txn.Delete(IntentKey(intent, spec.name));
  // Only our own record: never another VM that took the name since.
  if (current.ok() && current->has_value() && json::parse(**current, nullptr, false).value("uuid", "") == spec.uuid) {
    txn.IfValue(SpecKey(spec.name), **current).Delete(SpecKey(spec.name));
  }
  return CommitResolved(store_, txn).status();
}

Status VmManager::PersistRuntime(Vm& vm) {
  VmState state;
  std::string reason;
  {
    MutexLock lock(&vm.mu);
    state = vm.state;
    reason = vm.reason;
  }
  if (vm.pid == 0 && state != VmState::kCrashed) return store_.Delete(RuntimeKey(vm.spec.name));
  json j = {
      {"pid", vm.pid},        {"accel", vm.accel}, {"started", vm.started_ms}, {"stop_requested", vm.stop_requested},
      {"state", Name(state)}, {"reason", reason}};
  return store_.Put(RuntimeKey(vm.spec.name), j.dump());
}

Result<std::shared_ptr<VmManager::Vm>> VmManager::Find(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", name));
  MutexLock lock(&mu_);
  auto it = vms_.find(name);
  if (it == vms_.end()) return Status::NotFound("vm '" + name + "' does not exist (see: pampa vm list)");
  return it->second;
}

void VmManager::OperationLease::Release() {
  if (manager_ == nullptr) return;
  Vm& vm = *vm_;
  {
    MutexLock lock(&vm.mu);
    vm.op = VmOp::kNone;
    vm.force_stop = false;
  }
  if (op_ != VmOp::kReconcile) manager_->Publish(vm);  // "busy" is part of the JSON
  vm.released.notify_all();
  manager_ = nullptr;
}

Result<VmManager::OperationLease> VmManager::Claim(const std::shared_ptr<Vm>& vm, VmOp op,
                                                   std::optional<VmAction> action) {
  {
    MutexLock lock(&vm->mu);
    // The reconcile loop's look is one short QMP exchange: wait it out.
    lock.WaitFor(vm->released, 5s, [&]() REQUIRES(vm->mu) { return vm->op != VmOp::kReconcile; });
    if (vm->deleted) return Status::NotFound("vm '" + vm->spec.name + "' was deleted");
    if (vm->op != VmOp::kNone) {
      return Status::Busy("busy: " + std::string(vm->op == VmOp::kReconcile ? "a state check" : Name(vm->op)) +
                          " in progress");
    }
    if (action) PAMPA_RETURN_IF_ERROR(CheckAllowed(*action, vm->state, vm->spec.name, vm->spec.is_template));
    vm->op = op;
  }
  OperationLease lease(this, vm, op);
  Publish(*vm);
  return lease;
}

std::optional<VmManager::OperationLease> VmManager::TryClaim(const std::shared_ptr<Vm>& vm, VmOp op) {
  MutexLock lock(&vm->mu);
  if (vm->op != VmOp::kNone || vm->deleted) return std::nullopt;
  vm->op = op;
  return OperationLease(this, vm, op);
}

VmManager::Hold::Hold(std::unique_ptr<OperationLease> lease) : lease_(std::move(lease)) {}
VmManager::Hold::Hold() = default;
VmManager::Hold::Hold(Hold&&) noexcept = default;
VmManager::Hold& VmManager::Hold::operator=(Hold&&) noexcept = default;
VmManager::Hold::~Hold() = default;
const VmSpec& VmManager::Hold::spec() const { return lease_->vm().spec; }
const RuntimePaths& VmManager::Hold::paths() const { return lease_->vm().paths; }
VmState VmManager::Hold::state() const { return lease_->vm().State(); }
pid_t VmManager::Hold::pid() const { return lease_->vm().pid; }
QmpClient* VmManager::Hold::qmp() const {
  auto& q = lease_->vm().qmp;
  return q && q->connected() ? q.get() : nullptr;
}
AgentChannel& VmManager::Hold::agent() const { return lease_->vm().agent; }
void VmManager::Hold::Note(const std::string& reason) {
  Vm& vm = lease_->vm();
  lease_->manager()->SetState(vm, vm.State(), reason);
}
void VmManager::Hold::Release() {
  if (lease_) lease_->Release();
}

Result<VmManager::Hold> VmManager::HoldVm(const std::string& name, VmOp op, VmAction action) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, op, action));
  return Hold(std::make_unique<OperationLease>(std::move(lease)));
}

std::optional<VmManager::Hold> VmManager::TryHold(const std::string& name) {
  auto vm = Find(name);
  if (!vm.ok()) return std::nullopt;
  auto lease = TryClaim(*vm, VmOp::kReconcile);
  if (!lease) return std::nullopt;
  return Hold(std::make_unique<OperationLease>(std::move(*lease)));
}

Result<VmManager::Hold> VmManager::HoldNewVm(const VmSpec& spec, VmOp op, const std::string& intent) {
  auto vm = Register(spec, op);
  if (!vm) return Status::Conflict("vm '" + spec.name + "' already exists");
  auto lease = std::make_unique<OperationLease>(this, vm, op);
  if (Status st = ClaimName(*vm, intent); !st.ok()) {
    lease->Release();
    Forget(*vm);
    return st;
  }
  SetState(*vm, VmState::kStopped);
  return Hold(std::move(lease));
}

Status VmManager::Keep(Hold& hold, const std::string& intent) { return ClearIntent(intent, hold.spec().name); }

void VmManager::Abandon(Hold& hold, const std::string& intent) {
  Vm& vm = hold.lease_->vm();
  Status st = UnclaimName(vm.spec, intent);
  if (!st.ok()) log::Warn("vm {}: {} (removed at the next start)", vm.spec.name, st.message());
  Forget(vm);
  hold.Release();
}

std::shared_ptr<VmManager::Vm> VmManager::Register(const VmSpec& spec, VmOp op) {
  auto vm = std::make_shared<Vm>(op);
  vm->spec = spec;
  vm->paths = PathsFor(spec);
  Publish(*vm);  // readers (List, Show) never see a VM without its JSON
  MutexLock lock(&mu_);
  if (vms_.count(spec.name)) return nullptr;
  vms_[spec.name] = vm;
  return vm;
}

std::vector<std::string> VmManager::SpecWarnings(const VmSpec& spec) const {
  std::vector<std::string> out;
  uint64_t host = HostMemoryBytes();
  if (host > 0 && spec.memory_mib * (1ull << 20) > host) {
    out.push_back("vm '" + spec.name + "' has " + FormatSize(spec.memory_mib << 20) + " of memory but this host has " +
                  FormatSize(host) + ": it will not start unless forced (pampa vm start " + spec.name + " --force)");
  }
  return out;
}

Status VmManager::Load() {
  MigrateHostKeys();
  PAMPA_ASSIGN_OR_RETURN(auto specs, store_.ListVersioned("vms/"));
  // A changed boot id means the host rebooted: no QEMU of ours can be alive,
  // and autostart VMs must be started.
  auto boot_file = ReadFile("/proc/sys/kernel/random/boot_id");
  std::string boot_id = boot_file.ok() ? *boot_file : "";
  auto stored = store_.Get(BootIdKey());
  bool host_booted = stored.ok() && (!stored->has_value() || **stored != boot_id);
  for (auto& [key, versioned] : specs.items) {
    auto spec = VmSpecFromJson(json::parse(versioned.value, nullptr, false));
    if (!spec.ok()) {
      log::Error("skipping {}: {}", key, spec.status().message());
      continue;
    }
    if (!Owns(*spec)) continue;  // another host's, in a pool
    auto vm = std::make_shared<Vm>();
    vm->spec = *spec;
    vm->spec.host = config_.hostname;
    vm->paths = PathsFor(vm->spec);
    vm->spec_revision = versioned.mod_revision;
    if (host_booted) {
      Status st = store_.Delete(RuntimeKey(vm->spec.name));
      (void)st;
    }
    {
      auto lease = TryClaim(vm, VmOp::kStart);  // nobody else knows this VM yet
      Reattach(*vm);
    }
    MutexLock l(&mu_);
    vms_[vm->spec.name] = vm;
  }
  RecoverIntents();
  DropOrphans();
  if (host_booted) {
    Status st = store_.Put(BootIdKey(), boot_id);
    (void)st;
    std::vector<std::string> autostart;
    {
      MutexLock lock(&mu_);
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

Result<std::string> VmManager::NewDiskVolume(const std::string& vm, size_t i, const std::string& pool) {
  std::string vol = vm + "-disk" + std::to_string(i);
  if (vol.size() > 63) return Status::Invalid("vm name too long to name its disks; use at most 56 characters");
  if (storage_.GetVolume(pool, vol).ok()) {
    return Status::Conflict("volume '" + vol + "' already exists in pool '" + pool +
                            "'; delete it or choose another VM name");
  }
  return vol;
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
  spec.host = config_.hostname;
  spec.cloud_init = req.cloud_init;
  PAMPA_RETURN_IF_ERROR(ApplyMachineOptions(req.machine, req.cpus, &spec));
  if (!spec.cpu_model.empty()) PAMPA_RETURN_IF_ERROR(CheckCpuModel(spec.cpu_model));
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
    PAMPA_ASSIGN_OR_RETURN(std::string vol, NewDiskVolume(spec.name, i, req.pool));
    spec.disks.push_back({req.pool, vol});
  }
  for (auto& n : req.networks) spec.nics.push_back({n, NewMac()});
  PAMPA_RETURN_IF_ERROR(CheckCloudInit(spec));

  auto vm = Register(spec, VmOp::kCreate);
  if (!vm) return Status::Conflict("vm '" + spec.name + "' already exists");
  auto lease = std::make_shared<OperationLease>(this, vm, VmOp::kCreate);
  // The store makes the name unique; should pampad die before the create
  // ends, its next start removes the VM and its volumes (the intent).
  if (Status st = ClaimName(*vm, "create"); !st.ok()) {
    lease->Release();
    Forget(*vm);
    return st;
  }
  SetState(*vm, VmState::kStopped);
  std::vector<uint64_t> blanks = req.disks;
  return tasks_.Start("vm-create", spec.name, [this, lease, spec, image, blanks](TaskContext& ctx) -> Result<json> {
    OperationLease owned = std::move(*lease);
    Vm& vm = owned.vm();
    auto fail = [&](const Status& st) -> Result<json> {
      RemoveVolumes(spec);
      if (Status undo = UnclaimName(spec, "create"); !undo.ok()) log::Warn("vm {}: {}", spec.name, undo.message());
      Forget(vm);
      owned.Release();
      return st;
    };
    size_t d = 0;
    if (!image.empty()) {
      ctx.Log("importing " + image + " as " + spec.disks[0].volume);
      auto v = storage_.ImportVolume(
          spec.disks[0].pool, spec.disks[0].volume, image,
          [&](double f) { ctx.Progress(f * 0.95, "importing disk image"); }, ctx.cancel_flag());
      if (!v.ok()) return fail(v.status());
      ++d;
    }
    for (uint64_t size : blanks) {
      auto v = storage_.CreateVolume(spec.disks[d].pool, spec.disks[d].volume, size, "qcow2");
      if (!v.ok()) return fail(v.status());
      ctx.Log("created " + spec.disks[d].volume + " (" + FormatSize(size) + ")");
      ++d;
    }
    if (spec.firmware == "uefi") {
      Status st = MakeDirs(config_.data_dir + "/vms");
      if (st.ok()) {
        std::error_code ec;
        std::filesystem::copy_file(kOvmfVars, VarsPath(spec.name), std::filesystem::copy_options::overwrite_existing,
                                   ec);
        if (ec) st = Status::Internal("cannot copy UEFI variables: " + ec.message());
      }
      if (!st.ok()) return fail(st);
    }
    if (Status st = ClearIntent("create", spec.name); !st.ok()) return fail(st);
    owned.Release();
    events_.Publish({{"type", "vm"}, {"vm", spec.name}, {"state", "stopped"}, {"created", true}});
    return json{{"vm", spec.name}, {"uuid", spec.uuid}};
  });
}

std::vector<std::shared_ptr<VmManager::Vm>> VmManager::AllVms() {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Vm>> vms;
  vms.reserve(vms_.size());
  for (auto& [name, vm] : vms_) vms.push_back(vm);
  return vms;
}

std::vector<json> VmManager::List() {
  auto vms = AllVms();
  std::vector<json> out;
  out.reserve(vms.size());
  for (auto& vm : vms) {
    MutexLock lock(&vm->mu);
    out.push_back(vm->snapshot);
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> VmManager::ListTexts() {
  auto vms = AllVms();
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> out;
  out.reserve(vms.size());
  for (auto& vm : vms) {
    MutexLock lock(&vm->mu);
    if (vm->snapshot_text) out.emplace_back(vm->spec.name, vm->snapshot_text);
  }
  return out;
}

std::string VmManager::ListText() { return JsonArrayText(ListTexts()); }

std::string JsonArrayText(const std::vector<std::pair<std::string, std::shared_ptr<const std::string>>>& items) {
  size_t bytes = 2;
  for (auto& [name, text] : items) bytes += text->size() + 1;
  std::string out;
  out.reserve(bytes);
  out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += *items[i].second;
  }
  out += ']';
  return out;
}

Result<std::string> VmManager::ShowText(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  MutexLock lock(&vm->mu);
  if (!vm->snapshot_text) return std::string("{}");
  return *vm->snapshot_text;
}

Result<json> VmManager::Show(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  MutexLock lock(&vm->mu);
  return vm->snapshot;
}

Status VmManager::Edit(const std::string& name, const EditRequest& req) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  std::optional<VmAction> action;
  if (req.ChangesMachine())
    action = VmAction::kEditHardware;
  else if (req.ChangesDevices())
    action = VmAction::kEditDevices;
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kEdit, action));
  const bool live = QemuAlive(vm->State());
  VmSpec s = vm->spec;
  if (s.is_template && req.autostart.value_or(false)) {
    return Status::Conflict("vm '" + name + "' is a template, which never runs: it cannot start with the host");
  }
  PAMPA_RETURN_IF_ERROR(ApplyMachineOptions(req.machine, req.cpus, &s));
  if (req.machine.cpu_model && !s.cpu_model.empty()) PAMPA_RETURN_IF_ERROR(CheckCpuModel(s.cpu_model));
  if (req.memory_mib) s.memory_mib = *req.memory_mib;
  if (req.autostart) s.autostart = *req.autostart;
  if (s.is_template && req.ha.value_or(false)) {
    return Status::Conflict("vm '" + name + "' is a template, which never runs: HA does not apply to it");
  }
  if (req.ha.value_or(false) && config_.pooled) {
    // Another host can start it only when it reaches every disk.
    for (const DiskSpec& d : s.disks) {
      PAMPA_ASSIGN_OR_RETURN(PoolInfo pool, storage_.GetPool(d.pool));
      if (pool.type != "shared") {
        return Status::Conflict("vm '" + name + "' has a disk in pool " + d.pool + ", which only host " +
                                config_.hostname + " reaches: HA restarts a VM on another host, so its disks " +
                                "must be in a shared pool (pampa pool create NAME --type shared --path DIR)");
      }
    }
  }
  if (req.ha) s.ha = *req.ha;
  if (req.ha_priority) s.ha_priority = *req.ha_priority;
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
  if (req.cloud_init) {
    if (req.cloud_init->is_null())
      s.cloud_init = {};
    else
      PAMPA_RETURN_IF_ERROR(ApplyCloudInit(*req.cloud_init, &s.cloud_init));
  }
  VmSpec removed{.name = name};
  // In a running guest every device keeps its slot: one that leaves leaves a
  // gap, one that joins takes the lowest free slot.
  if (live && req.ChangesDevices()) PinSlots(&s);
  PAMPA_ASSIGN_OR_RETURN(VmSpec created, ChangeDevices(req, &s, &removed));
  Status st = CheckCloudInit(s);
  if (st.ok()) st = FitEditedPorts(req, live, vm->spec, &s);
  if (st.ok()) st = ChangeResources(req, &s);
  // Limits change in the running QEMU first; should the edit not be stored,
  // the ones before come back.
  const VmSpec before = vm->spec;
  bool limited = false;
  if (st.ok() && live && req.ChangesResources() && !req.ChangesDevices()) {
    st = ApplyResources(*vm, s, &before);
    limited = st.ok();
  }
  if (st.ok()) st = live && req.ChangesDevices() ? EditLive(*vm, req, s) : ReplaceSpec(*vm, s);
  if (st.ok() && live && req.ChangesResources() && req.ChangesDevices()) st = ApplyResources(*vm, s, &before);
  if (!st.ok()) {
    if (limited) {
      Status back = ApplyResources(*vm, before, &s);
      if (!back.ok()) log::Warn("vm {}: taking back its limits: {}", name, back.message());
    }
    RemoveVolumes(created);
    return st;
  }
  // The disk left the VM first: a pampad that dies here leaves its volume in
  // the pool, never a VM naming a volume that is gone.
  if (!req.keep_volume) RemoveVolumes(removed);
  return Status::Ok();
}

Status VmManager::ReplaceSpec(Vm& vm, const VmSpec& s) {
  // Compare-and-swap: a change made elsewhere since this one read the spec
  // (another host of the pool) is refused, not overwritten.
  // Resolved: a change applied though its reply was lost is kept, with its revision.
  const std::string& name = vm.spec.name;
  auto rev =
      CommitResolved(store_, Txn().IfModRevision(SpecKey(name), vm.spec_revision).Put(SpecKey(name), ToJson(s).dump()));
  if (!rev.ok()) {
    if (rev.status().code() == ErrorCode::kConflict) {
      return Status::Conflict("vm '" + name + "' was changed elsewhere since it was read; try again");
    }
    return rev.status();
  }
  vm.spec_revision = *rev;
  vm.spec = s;
  Publish(vm);
  return Status::Ok();
}

Status VmManager::FitEditedPorts(const EditRequest& req, bool live, const VmSpec& before, VmSpec* s) {
  if (!req.ChangesDevices()) return Status::Ok();
  std::string why;
  if (live) {
    why = "it runs";
  } else {
    auto snaps = store_.List("snapshots/" + s->name + "/");
    if (!snaps.ok()) return snaps.status();
    if (snaps->empty()) {
      FitPorts(s);
      return Status::Ok();
    }
    why = "its snapshots may hold a saved state of its machine";
  }
  auto refuse = [&](const std::string& device, size_t ports, const std::string& instead) {
    return Status::Conflict("vm '" + s->name + "' has " + std::to_string(ports) + " hot-plug port(s) for " + device +
                            "s, all taken, and " + why + ": " + instead);
  };
  const std::string more = live ? "stop it to add this one (a stopped VM without snapshots gets the ports it needs)"
                                : "delete them (pampa snapshot list " + s->name + ") to add this one";
  const size_t first_disk = s->disks.size() - req.add_disks.size(), first_nic = s->nics.size() - req.add_nics.size();
  for (size_t i = first_disk; i < s->disks.size(); ++i) {
    if (s->disks[i].bus == DiskBus::kVirtio && DiskSlot(*s, i) >= DiskPorts(before)) {
      return refuse("disk", DiskPorts(before), more + ", or add it with --bus scsi");
    }
  }
  for (size_t i = first_nic; i < s->nics.size(); ++i) {
    if (NicSlot(*s, i) >= NicPorts(before)) return refuse("NIC", NicPorts(before), more);
  }
  return Status::Ok();  // s keeps the count it was copied with
}

Result<VmSpec> VmManager::ChangeDevices(const EditRequest& req, VmSpec* s, VmSpec* removed) {
  const std::string& name = s->name;
  if (req.remove_disk || !req.add_disks.empty()) {
    // A revert sets every disk back to the snapshot: a disk added since has
    // none, a removed one would be missed.
    auto snaps = store_.List("snapshots/" + name + "/");
    if (!snaps.ok()) return snaps.status();
    if (!snaps->empty()) {
      return Status::Conflict("vm '" + name + "' has " + std::to_string(snaps->size()) +
                              " snapshot(s), which cover its disks as they are; delete them before adding or "
                              "removing a disk (pampa snapshot list " +
                              name + ")");
    }
  }
  if (req.remove_disk) {
    if (*req.remove_disk >= s->disks.size()) {
      return Status::NotFound("vm '" + name + "' has no disk " + std::to_string(*req.remove_disk) + " (it has " +
                              std::to_string(s->disks.size()) + ", numbered from 0)");
    }
    removed->disks.push_back(s->disks[*req.remove_disk]);
    s->disks.erase(s->disks.begin() + static_cast<std::ptrdiff_t>(*req.remove_disk));
  }
  if (req.remove_nic) {
    if (*req.remove_nic >= s->nics.size()) {
      return Status::NotFound("vm '" + name + "' has no NIC " + std::to_string(*req.remove_nic) + " (it has " +
                              std::to_string(s->nics.size()) + ", numbered from 0)");
    }
    s->nics.erase(s->nics.begin() + static_cast<std::ptrdiff_t>(*req.remove_nic));
  }
  if (s->disks.size() + req.add_disks.size() > kMaxDisks) {
    return Status::Invalid("a VM can have at most " + std::to_string(kMaxDisks) + " disks");
  }
  if (s->nics.size() + req.add_nics.size() > kMaxNics) {
    return Status::Invalid("a VM can have at most " + std::to_string(kMaxNics) + " NICs");
  }
  size_t sata =
      std::count_if(s->disks.begin(), s->disks.end(), [](const DiskSpec& d) { return d.bus == DiskBus::kSata; }) +
      std::count_if(req.add_disks.begin(), req.add_disks.end(),
                    [](const EditRequest::NewDisk& d) { return d.bus == DiskBus::kSata; });
  if (sata > kMaxSataDisks) {
    return Status::Invalid("a VM can have at most " + std::to_string(kMaxSataDisks) +
                           " sata disks (the other ports hold the CDs); use --bus virtio or scsi");
  }
  auto specs = Specs();
  for (const NicSpec& n : req.add_nics) {
    PAMPA_RETURN_IF_ERROR(networks_.Get(n.network).status());
    NicSpec nic = n;
    if (nic.mac.empty()) nic.mac = NewMac();
    for (const auto& other : specs) {
      for (const NicSpec& o : other->name == name ? s->nics : other->nics) {
        if (o.mac == nic.mac) return Status::Conflict("MAC " + nic.mac + " is taken by vm '" + other->name + "'");
      }
    }
    s->nics.push_back(std::move(nic));
  }
  // Existing volumes first (checked before anything is created), then the blank ones.
  auto in_spec = [&](const std::string& pool, const std::string& volume) {
    return std::any_of(s->disks.begin(), s->disks.end(),
                       [&](const DiskSpec& d) { return d.pool == pool && d.volume == volume; });
  };
  for (const auto& d : req.add_disks) {
    if (d.size) continue;
    PAMPA_RETURN_IF_ERROR(storage_.GetVolume(d.pool, d.volume).status());
    std::string user = VolumeUser(d.pool, d.volume);
    if (in_spec(d.pool, d.volume) || (!user.empty() && user != name)) {
      return Status::Conflict("volume " + d.pool + "/" + d.volume + " is already a disk of vm '" +
                              (user.empty() ? name : user) + "'");
    }
    s->disks.push_back({d.pool, d.volume, "", d.bus});
  }
  std::string pool = s->disks.empty() ? "default" : s->disks.front().pool;
  VmSpec created{.name = name};
  for (const auto& d : req.add_disks) {
    if (!d.size) continue;
    std::string volume;
    for (int i = 0; volume.empty() && i < 64; ++i) {
      std::string candidate = name + "-disk" + std::to_string(i);
      if (!in_spec(pool, candidate) && !storage_.GetVolume(pool, candidate).ok()) volume = candidate;
    }
    Result<VolumeInfo> made =
        volume.empty()
            ? Result<VolumeInfo>(Status::Conflict("no free volume name for vm '" + name + "' in pool " + pool))
            : storage_.CreateVolume(pool, volume, d.size, "qcow2");
    if (!made.ok()) {
      RemoveVolumes(created);
      return made.status();
    }
    created.disks.push_back({pool, volume});
    s->disks.push_back({pool, volume, "", d.bus});
  }
  return created;
}

Status VmManager::Delete(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kDelete, VmAction::kDelete));
  if (vm->spec.is_template) {
    PAMPA_ASSIGN_OR_RETURN(auto clones, LinkedClones(vm->spec));
    if (!clones.empty()) {
      std::string names;
      for (auto& c : clones) names += (names.empty() ? "" : ", ") + c;
      return Status::Conflict("vm '" + name + "' is the template of linked clone(s) " + names +
                              ", which read their disks from it: delete them first");
    }
  }
  // Every record of the VM goes in one transaction, which also records the
  // volumes still to remove: a pampad that dies after it removes them at its
  // next start; one that dies before it still has the whole VM.
  PAMPA_RETURN_IF_ERROR(CommitResolved(store_, Txn()
                                                   .IfModRevision(SpecKey(name), vm->spec_revision)
                                                   .Delete(SpecKey(name))
                                                   .Delete(RuntimeKey(name))
                                                   .DeletePrefix("snapshots/" + name + "/")
                                                   .Delete("snapshot-current/" + name)
                                                   .Put(IntentKey("delete", name), ToJson(vm->spec).dump()))
                            .status()
                            .Context("deleting vm " + name));
  Cleanup(*vm);
  unlink(VarsPath(name).c_str());
  unlink(CloudInitSeedPath(name).c_str());
  // A P2V import's range hashes for its second pass (VmImports::RangesPath).
  unlink((config_.data_dir + "/vms/" + name + ".p2v.json").c_str());
  Forget(*vm);
  lease.Release();
  Status removed = Status::Ok();
  for (auto& d : vm->spec.disks) {
    Status st = storage_.DeleteVolume(d.pool, d.volume);
    if (!st.ok() && st.code() != ErrorCode::kNotFound && removed.ok())
      removed = st.Context("deleting disk " + d.volume);
  }
  if (!removed.ok())
    return Status(removed.code(), removed.message() + " (the VM is deleted; pampad retries at its next start)");
  if (Status st = ClearIntent("delete", name); !st.ok()) {
    return Status(st.code(),
                  st.message() + " (the VM and its disks are deleted; pampad clears the record at its next start)");
  }
  log::Info("vm {}: deleted", name);
  return Status::Ok();
}

void VmManager::Forget(Vm& vm) {
  {
    MutexLock lock(&vm.mu);
    vm.deleted = true;
  }
  vm.released.notify_all();
  {
    MutexLock lock(&mu_);
    auto it = vms_.find(vm.spec.name);
    if (it != vms_.end() && it->second.get() == &vm) vms_.erase(it);
  }
  events_.Publish({{"type", "vm"}, {"vm", vm.spec.name}, {"state", "deleted"}});
}

std::string HostIntentKey(const std::string& host, const std::string& kind, const std::string& vm) {
  return "intents/" + host + "/" + kind + "/" + vm;
}

std::string VmManager::IntentKey(const std::string& kind, const std::string& vm) const {
  return HostIntentKey(config_.hostname, kind, vm);
}

Status VmManager::WriteIntent(const std::string& kind, const VmSpec& spec) {
  return RetryIdempotent([&] { return store_.Put(IntentKey(kind, spec.name), ToJson(spec).dump()); })
      .Context("recording the " + kind + " of vm " + spec.name);
}

Result<std::optional<VmSpec>> VmManager::ReadIntent(const std::string& kind, const std::string& vm) {
  PAMPA_ASSIGN_OR_RETURN(auto text, store_.Get(IntentKey(kind, vm)));
  if (!text) return std::optional<VmSpec>();
  PAMPA_ASSIGN_OR_RETURN(VmSpec spec, VmSpecFromJson(json::parse(*text, nullptr, false)));
  return std::optional<VmSpec>(std::move(spec));
}

Status VmManager::ClearIntent(const std::string& kind, const std::string& vm) {
  return RetryIdempotent([&] { return store_.Delete(IntentKey(kind, vm)); })
      .Context("vm " + vm + ": clearing its " + kind + " record");
}

void VmManager::RemoveVolumes(const VmSpec& spec) {
  for (auto& d : spec.disks) {
    Status st = storage_.DeleteVolume(d.pool, d.volume);
    if (!st.ok() && st.code() != ErrorCode::kNotFound) log::Warn("vm {}: {}", spec.name, st.message());
  }
}

void VmManager::RecoverIntents() {
  if (int n = storage_.RemoveUnfinished(); n > 0)
    log::Info("removed {} half-made volume file(s) a dead pampad left", n);
  std::string prefix = "intents/" + config_.hostname + "/";
  auto intents = store_.List(prefix);
  if (!intents.ok()) {
    log::Error("cannot read unfinished work: {}", intents.status().message());
    return;
  }
  for (auto& [key, value] : *intents) {
    std::string rest = key.substr(prefix.size());
    std::string kind = rest.substr(0, rest.find('/'));
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (!spec.ok()) continue;
    auto known = Find(spec->name);
    bool same_vm = known.ok() && (*known)->spec.uuid == spec->uuid;
    if (kind == kMigrateIn || kind == kMigrateOut) {
      SettleMoveIntent(kind, *spec);
      continue;
    }
    if (kind.ends_with("-in-place")) {
      // The old disks are gone and the new ones incomplete: say so until the work is redone.
      if (same_vm) {
        if (auto lease = TryClaim(*known, VmOp::kRestore)) {
          SetState(**known, (*known)->State(),
                   "a " + kind.substr(0, kind.size() - 9) +
                       " over this VM was interrupted: its disks are incomplete; run it again");
        }
      }
      if (Status st = ClearIntent(kind, spec->name); !st.ok()) log::Error("{}", st.message());
      continue;
    }
    // A create or restore that did not finish, or a delete that did not
    // remove every volume: the VM goes, with what exists of its volumes,
    // unless another VM took the name (and so those volume names) since.
    if (!known.ok() || same_vm) RemoveVolumes(*spec);
    if (Status st = UnclaimName(*spec, kind); !st.ok()) {
      log::Error("vm {}: cannot remove the unfinished {}: {}", spec->name, kind, st.message());
      continue;
    }
    if (same_vm) Forget(**known);
    log::Warn("vm {}: removed what an unfinished {} left (pampad stopped during it)", spec->name, kind);
  }
}

void VmManager::SettleMoveIntent(const std::string& kind, const VmSpec& copies) {
  auto stored = store_.Get(SpecKey(copies.name));
  if (!stored.ok()) {
    log::Error("vm {}: cannot tell where it runs ({}): its {} disk copies stay", copies.name, stored.status().message(),
               kind);
    return;
  }
  auto spec = *stored ? VmSpecFromJson(json::parse(**stored, nullptr, false)) : Result<VmSpec>(Status::NotFound(""));
  if (!spec.ok()) {
    log::Warn("vm {}: no longer in the store; the disk copies of its unfinished move stay: remove them by hand",
              copies.name);
  } else if (spec->host == config_.hostname) {
    log::Info("vm {}: runs here; its disks from the unfinished {} stay", copies.name, kind);
  } else {
    RemoveVolumes(copies);
    log::Warn("vm {}: runs on host {}: removed this host's copy of its disks (unfinished {})", copies.name, spec->host,
              kind);
  }
  if (Status st = ClearIntent(kind, copies.name); !st.ok()) log::Error("{}", st.message());
}

std::vector<std::shared_ptr<const VmSpec>> VmManager::Specs() {
  std::vector<std::shared_ptr<const VmSpec>> out;
  for (auto& vm : AllVms()) {
    if (auto spec = vm->Spec()) out.push_back(std::move(spec));
  }
  return out;
}

std::string VmManager::VolumeUser(const std::string& pool, const std::string& volume) {
  auto disk = VolumeDisk(pool, volume);
  return disk ? disk->first : "";
}

std::optional<std::pair<std::string, size_t>> VmManager::VolumeDisk(const std::string& pool,
                                                                    const std::string& volume) {
  for (auto& spec : Specs()) {
    for (size_t i = 0; i < spec->disks.size(); ++i) {
      if (spec->disks[i].pool == pool && spec->disks[i].volume == volume) return std::pair(spec->name, i);
    }
  }
  return std::nullopt;
}

std::string VmManager::NetworkUser(const std::string& network) {
  for (auto& spec : Specs()) {
    for (auto& n : spec->nics) {
      if (n.network == network) return spec->name;
    }
  }
  return "";
}

}  // namespace pampa
