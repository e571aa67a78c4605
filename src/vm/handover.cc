// A VM's side of a move between hosts of a pool: the target's QEMU waiting
// for the migration, the source handing the VM over through the store, and a
// stopped VM adopted by its new host. The store decides who runs a VM: the
// target's CPUs start only once the store names it, and the source's QEMU is
// stopped only once the store no longer names the source.
#include <signal.h>

#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/log.h"
#include "base/process.h"
#include "vm/vm_internal.h"

namespace pampa {

using json = nlohmann::json;
using namespace std::chrono_literals;

Result<VmManager::Hold> VmManager::StartIncoming(const VmSpec& spec) {
  auto vm = Register(spec, VmOp::kMigrateIn);
  if (!vm) return Status::Conflict("vm '" + spec.name + "' is already on this host");
  auto lease = std::make_unique<OperationLease>(this, vm, VmOp::kMigrateIn);
  SetState(*vm, VmState::kStopped, "incoming migration");
  if (Status st = StartLocked(*vm, "", /*incoming=*/true); !st.ok()) {
    lease->Release();
    Forget(*vm);
    return st.Context("starting QEMU for the incoming migration");
  }
  return Hold(std::move(lease));
}

Status VmManager::AdoptIncoming(Hold& hold, bool run, std::chrono::steady_clock::time_point* resumed) {
  Vm& vm = hold.lease_->vm();
  PAMPA_ASSIGN_OR_RETURN(auto stored, store_.GetVersioned(SpecKey(vm.spec.name)));
  if (!stored) return Status::NotFound("vm '" + vm.spec.name + "' is no longer in the store");
  PAMPA_ASSIGN_OR_RETURN(VmSpec spec, VmSpecFromJson(json::parse(stored->value, nullptr, false)));
  if (spec.host != config_.hostname) {
    return Status::Conflict("the store says host " + spec.host + " runs vm " + vm.spec.name + ", not this one");
  }
  vm.spec = spec;
  vm.spec_revision = stored->mod_revision;
  if (run) {
    if (!vm.qmp) return Status::Unavailable("QEMU of vm " + vm.spec.name + " does not answer");
    PAMPA_RETURN_IF_ERROR(vm.qmp->Execute("cont").status().Context("resuming after the migration"));
    if (resumed) *resumed = std::chrono::steady_clock::now();
  }
  vm.stop_requested = false;
  SetState(vm, run ? VmState::kRunning : VmState::kPaused, run ? "" : "paused (as it was on the source)");
  Status st = PersistRuntime(vm);
  if (!st.ok()) log::Warn("vm {}: runtime not recorded: {}", vm.spec.name, st.message());
  return Status::Ok();
}

void VmManager::DropIncoming(Hold& hold) {
  Vm& vm = hold.lease_->vm();
  if (vm.pid > 0) {
    vm.stop_requested = true;
    kill(vm.pid, SIGKILL);
    if (!WaitExit(vm.pid, vm.spec.uuid, 5s))
      log::Warn("vm {}: incoming QEMU pid {} did not exit", vm.spec.name, vm.pid);
  }
  Cleanup(vm);
  SetState(vm, VmState::kStopped, "incoming migration dropped");
  Status st = PersistRuntime(vm);  // no QEMU: removes this host's runtime record
  if (!st.ok()) log::Warn("vm {}: runtime record not removed: {}", vm.spec.name, st.message());
  Forget(vm);
  hold.Release();
}

Result<bool> VmManager::HandOver(Hold& hold, const std::string& to, const std::function<void()>& committed) {
  Vm& vm = hold.lease_->vm();
  VmSpec moved = vm.spec;
  moved.host = to;
  Txn txn = Txn()
                .IfModRevision(SpecKey(moved.name), vm.spec_revision)
                .Put(SpecKey(moved.name), ToJson(moved).dump())
                .Delete(RuntimeKey(moved.name));
  auto rev = CommitResolved(store_, txn);
  // The store's answer was lost and the read-back failed: read again until
  // the store says who runs the VM (a minute at most).
  for (int i = 0;
       i < 60 && !rev.ok() && rev.status().code() != ErrorCode::kConflict && rev.status().code() != ErrorCode::kInvalid;
       ++i) {
    std::this_thread::sleep_for(1s);
    auto now = store_.GetVersioned(SpecKey(moved.name));
    if (!now.ok()) continue;
    auto spec =
        *now ? VmSpecFromJson(json::parse((*now)->value, nullptr, false)) : Result<VmSpec>(Status::NotFound(""));
    if (spec.ok() && spec->host == to)
      rev = (*now)->mod_revision;
    else
      rev = Status::Conflict("the switch did not happen");
  }
  if (!rev.ok()) {
    if (rev.status().code() == ErrorCode::kConflict || rev.status().code() == ErrorCode::kInvalid) return false;
    return rev.status().Context("handing vm " + moved.name + " over to " + to +
                                " (the store does not answer: the VM stays paused here until it does)");
  }
  // The store names the target now: this host's QEMU (paused after sending
  // everything) must never run again.
  if (committed) committed();
  if (vm.pid > 0) {
    vm.stop_requested = true;
    if (vm.qmp && vm.qmp->connected()) (void)vm.qmp->Execute("quit", nullptr, 2s);
    if (!WaitExit(vm.pid, vm.spec.uuid, 5s)) {
      kill(vm.pid, SIGKILL);
      WaitExit(vm.pid, vm.spec.uuid, 5s);
    }
  }
  Cleanup(vm);
  SetState(vm, VmState::kStopped, "moved to host " + to);
  Forget(vm);
  log::Info("vm {}: handed over to host {}", moved.name, to);
  return true;
}

void VmManager::DropOrphans() {
  const std::string prefix = "hosts/" + config_.hostname + "/runtime/";
  auto records = store_.List(prefix);
  if (!records.ok()) return;
  for (auto& [key, value] : *records) {
    std::string name = key.substr(prefix.size());
    {
      MutexLock lock(&mu_);
      if (vms_.count(name)) continue;
    }
    auto j = json::parse(value, nullptr, false);
    pid_t pid = j.is_object() ? j.value("pid", 0) : 0;
    auto spec_text = store_.Get(SpecKey(name));
    std::string uuid;
    if (spec_text.ok() && *spec_text) {
      auto spec = VmSpecFromJson(json::parse(**spec_text, nullptr, false));
      if (spec.ok()) uuid = spec->uuid;
    }
    if (pid > 0 && !uuid.empty() && ProcessAlive(pid, uuid)) {
      log::Warn("vm {}: stopping QEMU pid {} left from a migration that did not happen", name, pid);
      kill(pid, SIGKILL);
      WaitExit(pid, uuid, 5s);
    }
    Status st = store_.Delete(key);
    (void)st;
  }
}

Status VmManager::Adopt(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto stored, store_.GetVersioned(SpecKey(name)));
  if (!stored) return Status::NotFound("vm '" + name + "' does not exist");
  PAMPA_ASSIGN_OR_RETURN(VmSpec spec, VmSpecFromJson(json::parse(stored->value, nullptr, false)));
  if (spec.host != config_.hostname) {
    return Status::Conflict("the store says host " + spec.host + " runs vm " + name + ", not this one");
  }
  auto vm = Register(spec, VmOp::kNone);
  if (!vm) return Status::Ok();              // already here
  vm->spec_revision = stored->mod_revision;  // nobody else knows this VM yet
  auto lease = TryClaim(vm, VmOp::kStart);   // nobody else knows this VM yet
  SetState(*vm, VmState::kStopped);
  return Status::Ok();
}

std::vector<VmManager::HaProcess> VmManager::HaProcesses() {
  std::vector<HaProcess> out;
  for (auto& vm : AllVms()) {
    MutexLock lock(&vm->mu);
    if (vm->deleted || !vm->published_spec || !vm->published_spec->ha || !QemuAlive(vm->state)) continue;
    pid_t pid = vm->snapshot.is_object() ? vm->snapshot.value("pid", 0) : 0;
    if (pid > 0) out.push_back({vm->published_spec->name, vm->published_spec->uuid, pid});
  }
  return out;
}

bool VmManager::Fence(const std::string& name, const std::string& reason) {
  std::shared_ptr<Vm> vm;
  {
    MutexLock lock(&mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return false;
    vm = it->second;
  }
  pid_t pid;
  std::string uuid;
  {
    MutexLock lock(&vm->mu);
    pid = vm->snapshot.is_object() ? vm->snapshot.value("pid", 0) : 0;
    uuid = vm->published_spec ? vm->published_spec->uuid : "";
    vm->fence_reason = "fenced: " + reason;
  }
  // No lease: whatever an operation is doing, the guest must stop now.
  if (pid <= 0 || uuid.empty() || !ProcessAlive(pid, uuid)) return false;
  kill(pid, SIGKILL);
  log::Warn("vm {}: fenced (QEMU pid {} killed): {}", name, pid, reason);
  return true;
}

std::vector<std::string> VmManager::DropMovedAway() {
  std::vector<std::string> dropped;
  if (!config_.pooled) return dropped;
  auto specs = store_.ListVersioned("vms/");
  if (!specs.ok()) return dropped;
  std::map<std::string, std::string> owner;  // vm -> host its spec names
  {
    MutexLock lock(&owners_mu_);
    spec_owners_.Refresh(
        *specs,
        [](const std::string& value) {
          auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
          return spec.ok() ? std::make_pair(spec->name, spec->host) : std::pair<std::string, std::string>();
        },
        [&](const std::string&, int64_t, const std::pair<std::string, std::string>& o) {
          if (!o.second.empty()) owner[o.first] = o.second;
        });
  }
  for (auto& vm : AllVms()) {
    auto spec = vm->Spec();
    if (!spec) continue;
    auto it = owner.find(spec->name);
    if (it != owner.end() && it->second == config_.hostname) continue;
    auto lease = TryClaim(vm, VmOp::kReconcile);
    if (!lease) continue;  // a migration (or another operation) owns it: it settles it
    if (it == owner.end()) {
      // Not in the list: deleted by another host while this one was cut off,
      // or made here since the list was read. Only the first is forgotten.
      auto now = store_.Get(SpecKey(vm->spec.name));
      if (!now.ok() || *now || QemuAlive(vm->State())) continue;
      Cleanup(*vm);
      (void)store_.Delete(RuntimeKey(vm->spec.name));
      Forget(*vm);
      log::Info("vm {}: deleted from the pool while this host was cut off: forgotten here", vm->spec.name);
      dropped.push_back(vm->spec.name);
      continue;
    }
    if (vm->pid > 0 && ProcessAlive(vm->pid, vm->spec.uuid)) {
      log::Error("vm {}: the store gives it to host {} but its QEMU (pid {}) still ran here: killed", vm->spec.name,
                 it->second, vm->pid);
      vm->stop_requested = true;
      kill(vm->pid, SIGKILL);
      WaitExit(vm->pid, vm->spec.uuid, 5s);
    }
    Cleanup(*vm);
    SetState(*vm, VmState::kStopped, "runs on host " + it->second + " now");
    Status st = store_.Delete(RuntimeKey(vm->spec.name));
    if (!st.ok()) log::Warn("vm {}: runtime record not removed: {}", vm->spec.name, st.message());
    Forget(*vm);
    log::Info("vm {}: host {} runs it now (moved while this host was cut off): forgotten here", vm->spec.name,
              it->second);
    dropped.push_back(vm->spec.name);
  }
  return dropped;
}

}  // namespace pampa
