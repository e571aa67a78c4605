// The per-VM record shared by the files of VmManager, and the operation lease
// that makes one thread at a time its owner.
//
// Ownership, not a lock held for the work: whoever holds the VM's
// OperationLease (a task, an API call, or the reconcile loop for one short
// look) owns its runtime (QEMU process, QMP connection, spec edits) and works
// on it with no mutex held. `mu` guards only the few fields other threads
// read (state, reason, op, the published JSON, the spec pointer) and is held
// for a copy or an assignment, never across I/O, a guest wait or a task.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "base/mutex.h"
#include "qemu/guest_agent.h"
#include "qemu/machine.h"
#include "qmp/qmp_client.h"
#include "vm/vm_manager.h"
#include "vm/vm_state.h"

namespace pampa {

// The note of a VM whose QEMU waits for an incoming migration.
inline constexpr const char* kWaitingForMigration = "waiting for an incoming migration";

// The store key of a VM's spec: vms/<name>.
std::string SpecKey(const std::string& vm);
// Waits until process pid (recognised by marker in its command line; "" for
// any) has exited; false after timeout.
bool WaitExit(pid_t pid, const std::string& marker, std::chrono::milliseconds timeout);

struct VmManager::Vm {
  Vm() = default;
  // A VM made by an operation (create, restore) is that operation's from the start.
  explicit Vm(VmOp op) : op(op) {}

  // --- owned by the lease holder (read and written without a lock by it) ---
  VmSpec spec;  // also published through `published_spec` for other threads
  pid_t pid = 0;
  std::string accel;
  int64_t started_ms = 0;
  bool stop_requested = false;  // a stop we asked for: QEMU exiting is not a crash
  std::unique_ptr<QmpClient> qmp;
  RuntimePaths paths;
  int64_t spec_revision = 0;  // the store's mod_revision of vms/<name>: edits compare-and-swap on it

  // --- guarded by mu: short critical sections only ---
  mutable Mutex mu;
  std::condition_variable released;  // signalled when op returns to kNone
  VmState state GUARDED_BY(mu) = VmState::kStopped;
  std::string reason GUARDED_BY(mu);       // why it is crashed or stopped, or other notes
  VmOp op GUARDED_BY(mu) = VmOp::kNone;    // the lease: who owns the runtime now
  bool force_stop GUARDED_BY(mu) = false;  // a forced stop asked of the shutdown task
  bool deleted GUARDED_BY(mu) = false;
  std::string fence_reason GUARDED_BY(mu);                          // set by Fence: why QEMU is being killed
  std::shared_ptr<const VmSpec> published_spec GUARDED_BY(mu);      // what readers and lookups see
  nlohmann::json snapshot GUARDED_BY(mu);                           // what List/Show return
  std::shared_ptr<const std::string> snapshot_text GUARDED_BY(mu);  // the same, serialized once per change

  // One guest-agent conversation at a time (the agent serves one connection).
  AgentChannel agent;

  VmState State() const {
    MutexLock lock(&mu);
    return state;
  }
  std::shared_ptr<const VmSpec> Spec() const {
    MutexLock lock(&mu);
    return published_spec;
  }
};

// Holding one makes the holder the VM's owner; its destructor (on every path)
// gives the VM back and republishes its JSON. Move-only.
class VmManager::OperationLease {
 public:
  OperationLease() = default;
  OperationLease(VmManager* manager, std::shared_ptr<Vm> vm, VmOp op)
      : manager_(manager), vm_(std::move(vm)), op_(op) {}
  OperationLease(OperationLease&& o) noexcept { *this = std::move(o); }
  OperationLease& operator=(OperationLease&& o) noexcept {
    Release();
    manager_ = o.manager_;
    vm_ = std::move(o.vm_);
    op_ = o.op_;
    o.manager_ = nullptr;
    return *this;
  }
  OperationLease(const OperationLease&) = delete;
  OperationLease& operator=(const OperationLease&) = delete;
  ~OperationLease() { Release(); }

  Vm& vm() const { return *vm_; }
  VmOp op() const { return op_; }
  VmManager* manager() const { return manager_; }
  // Gives the VM back now (idempotent).
  void Release();

 private:
  VmManager* manager_ = nullptr;
  std::shared_ptr<Vm> vm_;
  VmOp op_ = VmOp::kNone;
};

}  // namespace pampa
