// Snapshots: internal qcow2 snapshots taken on every disk of a VM at once.
// Disk-only snapshots of a running VM are one QMP transaction (crash-consistent,
// no pause); --memory snapshots are QEMU's snapshot-save job, which also stores
// the RAM and device state in the first disk so a revert resumes at that instant.
// The tree (parent links, the current snapshot) lives in the store under
// "snapshots/<vm>/".
#include <chrono>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "base/process.h"
#include "base/units.h"
#include "qemu/bitmaps.h"
#include "vm/vm_internal.h"
#include "vm/vm_manager.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string Key(const std::string& vm, const std::string& snap) { return "snapshots/" + vm + "/" + snap; }
std::string CurrentKey(const std::string& vm) { return "snapshot-current/" + vm; }

std::vector<std::string> NodeNames(const VmSpec& spec) {
  std::vector<std::string> out;
  for (size_t i = 0; i < spec.disks.size(); ++i) out.push_back(DiskNode(DiskSlot(spec, i)));
  return out;
}

bool Running(VmState state) { return state == VmState::kRunning || state == VmState::kPaused; }

}  // namespace

Result<std::string> VmManager::RunVmTask(const std::string& name, VmOp op, VmAction action,
                                         std::function<Result<json>(Vm&, TaskContext&)> body) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, op, action));
  auto held = std::make_shared<OperationLease>(std::move(lease));
  return tasks_.Start("vm-" + std::string(Name(op)), name,
                      [held, body = std::move(body)](TaskContext& ctx) -> Result<json> {
                        OperationLease owned = std::move(*held);  // given back when the body returns
                        return body(owned.vm(), ctx);
                      });
}

Result<std::vector<std::string>> VmManager::Qcow2Disks(const VmSpec& spec) {
  std::vector<std::string> paths;
  if (spec.disks.empty()) return Status::Invalid("vm '" + spec.name + "' has no disks to snapshot");
  for (auto& d : spec.disks) {
    PAMPA_ASSIGN_OR_RETURN(auto v, storage_.LocateVolume(d.pool, d.volume));
    if (v.format != "qcow2") {
      return Status::Invalid("disk " + d.volume +
                             " is raw; snapshots need qcow2 disks (convert it with volume import)");
    }
    paths.push_back(v.path);
  }
  return paths;
}

Status VmManager::RunQmpJob(Vm& vm, const std::string& command, json args, TaskContext& ctx) {
  if (!vm.qmp || !vm.qmp->connected()) return Status::Unavailable("QEMU does not answer on QMP");
  std::string job = command + "-" + std::to_string(NowMs());
  args["job-id"] = job;
  PAMPA_RETURN_IF_ERROR(vm.qmp->Execute(command, args, 10s).status());
  auto deadline = std::chrono::steady_clock::now() + 30min;
  while (std::chrono::steady_clock::now() < deadline) {
    PAMPA_ASSIGN_OR_RETURN(auto jobs, vm.qmp->Execute("query-jobs", nullptr, 10s));
    for (auto& j : jobs) {
      if (j.value("id", "") != job) continue;
      int64_t cur = j.value("current-progress", int64_t{0}), total = j.value("total-progress", int64_t{0});
      if (total > 0) ctx.Progress(double(cur) / total, command);
      if (j.value("status", "") == "concluded") {
        auto r = vm.qmp->Execute("job-dismiss", {{"id", job}}, 10s);
        (void)r;
        if (j.contains("error")) return Status::Invalid(command + " failed: " + j["error"].get<std::string>());
        return Status::Ok();
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  return Status::Unavailable(command + " did not finish in 30 minutes");
}

Result<std::string> VmManager::CreateSnapshot(const std::string& name, const std::string& snap, bool memory,
                                              const std::string& description) {
  PAMPA_RETURN_IF_ERROR(ValidateName("snapshot", snap));
  if (description.size() > 1024) return Status::Invalid("snapshot description is longer than 1024 characters");
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto existing, store_.Get(Key(name, snap)));
  if (existing) return Status::Conflict("vm '" + name + "' already has a snapshot '" + snap + "'");
  PAMPA_RETURN_IF_ERROR(Qcow2Disks(*vm->Spec()).status());
  if (VmState state = vm->State(); memory && !Running(state)) {
    return Status::Invalid("--memory saves the RAM of a running VM; vm '" + name + "' is " + std::string(Name(state)));
  }
  return RunVmTask(
      name, VmOp::kSnapshot, VmAction::kSnapshot,
      [this, snap, memory, description](Vm& vm, TaskContext& ctx) -> Result<json> {
        auto start = std::chrono::steady_clock::now();
        PAMPA_ASSIGN_OR_RETURN(auto paths, Qcow2Disks(vm.spec));
        auto nodes = NodeNames(vm.spec);
        VmState state = vm.State();
        bool running = Running(state);
        if (running && memory) {
          ctx.Log("saving RAM and disks with snapshot-save");
          PAMPA_RETURN_IF_ERROR(
              RunQmpJob(vm, "snapshot-save", {{"tag", snap}, {"vmstate", nodes[0]}, {"devices", nodes}}, ctx));
        } else if (running) {
          // One transaction: all disks at the same instant, without pausing the guest.
          json actions = json::array();
          for (auto& n : nodes) {
            actions.push_back({{"type", "blockdev-snapshot-internal-sync"}, {"data", {{"device", n}, {"name", snap}}}});
          }
          if (!vm.qmp || !vm.qmp->connected()) return Status::Unavailable("QEMU does not answer on QMP");
          PAMPA_RETURN_IF_ERROR(vm.qmp->Execute("transaction", {{"actions", actions}}, 30s).status());
        } else {
          for (auto& p : paths) PAMPA_RETURN_IF_ERROR(RunChecked({"qemu-img", "snapshot", "-c", snap, p}).status());
        }
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        auto parent = store_.Get(CurrentKey(vm.spec.name));
        json meta = {{"name", snap},
                     {"parent", parent.ok() && parent->has_value() ? **parent : ""},
                     {"created", NowMs()},
                     {"memory", running && memory},
                     {"vm_state", Name(state)},
                     {"description", description},
                     {"seconds", secs}};
        PAMPA_RETURN_IF_ERROR(store_.Put(Key(vm.spec.name, snap), meta.dump()));
        PAMPA_RETURN_IF_ERROR(store_.Put(CurrentKey(vm.spec.name), snap));
        ctx.Log("snapshot " + snap + " taken in " + std::to_string(secs) + " s");
        events_.Publish({{"type", "snapshot"}, {"vm", vm.spec.name}, {"snapshot", snap}, {"action", "created"}});
        return meta;
      });
}

Result<json> VmManager::ListSnapshots(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(Find(name).status());
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("snapshots/" + name + "/"));
  json list = json::array();
  for (auto& [k, v] : kvs) list.push_back(json::parse(v, nullptr, false));
  std::sort(list.begin(), list.end(),
            [](const json& a, const json& b) { return a.value("created", 0ll) < b.value("created", 0ll); });
  auto current = store_.Get(CurrentKey(name));
  return json{{"current", current.ok() && current->has_value() ? **current : ""}, {"snapshots", list}};
}

Result<std::string> VmManager::RevertSnapshot(const std::string& name, const std::string& snap) {
  PAMPA_RETURN_IF_ERROR(ValidateName("snapshot", snap));
  PAMPA_RETURN_IF_ERROR(Find(name).status());
  PAMPA_ASSIGN_OR_RETURN(auto raw, store_.Get(Key(name, snap)));
  if (!raw)
    return Status::NotFound("vm '" + name + "' has no snapshot '" + snap + "' (see: pampa snapshot list " + name + ")");
  json meta = json::parse(*raw, nullptr, false);
  return RunVmTask(
      name, VmOp::kRevert, VmAction::kRevert, [this, snap, meta](Vm& vm, TaskContext& ctx) -> Result<json> {
        PAMPA_ASSIGN_OR_RETURN(auto paths, Qcow2Disks(vm.spec));
        auto nodes = NodeNames(vm.spec);
        bool memory = meta.value("memory", false);
        bool was_running = Running(vm.State());
        // The revert changes the disks behind the backups' dirty bitmaps (and QEMU
        // refuses to apply a snapshot while they exist): drop them; the next
        // backup of this VM reads its disks in full.
        PAMPA_ASSIGN_OR_RETURN(int dropped, DropBackupBitmaps(vm.qmp.get(), paths));
        if (dropped > 0) {
          ctx.Log("dropped " + std::to_string(dropped) +
                  " backup dirty bitmap(s): the next backup of this VM reads its disks in full");
        }
        if (memory && was_running) {
          ctx.Log("loading RAM and disks with snapshot-load");
          PAMPA_RETURN_IF_ERROR(
              RunQmpJob(vm, "snapshot-load", {{"tag", snap}, {"vmstate", nodes[0]}, {"devices", nodes}}, ctx));
          if (vm.qmp && vm.qmp->connected()) {
            auto r = vm.qmp->Execute("cont", nullptr, 10s);  // back running at that instant, even if it was paused
            (void)r;
          }
          SetState(vm, VmState::kRunning);
        } else {
          if (was_running) {
            ctx.Log("stopping the VM to put its disks back");
            PAMPA_RETURN_IF_ERROR(StopLocked(vm));
          }
          for (auto& p : paths) PAMPA_RETURN_IF_ERROR(RunChecked({"qemu-img", "snapshot", "-a", snap, p}).status());
          if (memory) {
            ctx.Log("starting the VM from the saved RAM state");
            PAMPA_RETURN_IF_ERROR(StartLocked(vm, snap));
          } else if (was_running) {
            ctx.Log("starting the VM again from the reverted disks");
            PAMPA_RETURN_IF_ERROR(StartLocked(vm));
          }
        }
        PAMPA_RETURN_IF_ERROR(store_.Put(CurrentKey(vm.spec.name), snap));
        events_.Publish({{"type", "snapshot"}, {"vm", vm.spec.name}, {"snapshot", snap}, {"action", "reverted"}});
        return json{{"vm", vm.spec.name}, {"snapshot", snap}, {"state", Name(vm.State())}};
      });
}

Result<std::string> VmManager::DeleteSnapshot(const std::string& name, const std::string& snap) {
  PAMPA_RETURN_IF_ERROR(ValidateName("snapshot", snap));
  PAMPA_RETURN_IF_ERROR(Find(name).status());
  PAMPA_ASSIGN_OR_RETURN(auto raw, store_.Get(Key(name, snap)));
  if (!raw) return Status::NotFound("vm '" + name + "' has no snapshot '" + snap + "'");
  json meta = json::parse(*raw, nullptr, false);
  return RunVmTask(
      name, VmOp::kSnapshotDelete, VmAction::kSnapshot, [this, snap, meta](Vm& vm, TaskContext& ctx) -> Result<json> {
        PAMPA_ASSIGN_OR_RETURN(auto paths, Qcow2Disks(vm.spec));
        if (Running(vm.State())) {
          // Removing an internal snapshot frees its clusters; the guest keeps running.
          for (size_t i = 0; i < paths.size(); ++i) {
            if (!vm.qmp || !vm.qmp->connected()) return Status::Unavailable("QEMU does not answer on QMP");
            auto r = vm.qmp->Execute("blockdev-snapshot-delete-internal-sync",
                                     {{"device", DiskNode(DiskSlot(vm.spec, i))}, {"name", snap}}, 5min);
            if (!r.ok()) return r.status();
          }
        } else {
          for (auto& p : paths) PAMPA_RETURN_IF_ERROR(RunChecked({"qemu-img", "snapshot", "-d", snap, p}).status());
        }
        // Children now hang from the deleted snapshot's parent.
        std::string parent = meta.value("parent", "");
        auto kvs = store_.List("snapshots/" + vm.spec.name + "/");
        if (kvs.ok()) {
          for (auto& [k, v] : *kvs) {
            json child = json::parse(v, nullptr, false);
            if (child.value("parent", "") != snap) continue;
            child["parent"] = parent;
            PAMPA_RETURN_IF_ERROR(store_.Put(k, child.dump()));
          }
        }
        auto current = store_.Get(CurrentKey(vm.spec.name));
        if (current.ok() && current->has_value() && **current == snap) {
          PAMPA_RETURN_IF_ERROR(parent.empty() ? store_.Delete(CurrentKey(vm.spec.name))
                                               : store_.Put(CurrentKey(vm.spec.name), parent));
        }
        PAMPA_RETURN_IF_ERROR(store_.Delete(Key(vm.spec.name, snap)));
        ctx.Log("deleted snapshot " + snap);
        events_.Publish({{"type", "snapshot"}, {"vm", vm.spec.name}, {"snapshot", snap}, {"action", "deleted"}});
        return json{{"vm", vm.spec.name}, {"deleted", snap}};
      });
}

}  // namespace pampa
