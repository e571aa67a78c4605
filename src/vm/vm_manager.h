// VmManager owns every VM on this host: their desired state (VmSpec, in the
// store) and what is (the QEMU process, its QMP connection, the state).
//
// Threads: API worker threads call the public methods. An operation on a VM
// claims the VM's OperationLease (vm_internal.h): the holder owns the VM's
// runtime and works with no mutex held; a second conflicting operation is
// refused with "busy: <op> in progress" instead of interleaving. Which action
// each state allows is one table (vm_state.h). A reconcile thread takes the
// lease of each idle VM for a short look every 250 ms (QMP events, process
// liveness) and converges the state. Readers (List, Show, VolumeUser,
// NetworkUser) copy what the VM published and never wait for an operation.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/events.h"
#include "base/mutex.h"
#include "net/networks.h"
#include "qemu/accel.h"
#include "qemu/guest_agent.h"
#include "qemu/keys.h"
#include "qemu/machine.h"
#include "qmp/qmp_client.h"
#include "storage/pools.h"
#include "store/parsed_by_revision.h"
#include "store/store.h"
#include "task/tasks.h"
#include "vm/vm_spec.h"
#include "vm/vm_state.h"

namespace pampa {

struct VmManagerConfig {
  std::string run_dir;   // sockets, pidfiles, console logs (tmpfs)
  std::string data_dir;  // UEFI variable stores
  std::string hostname;
  // In a pool, VMs whose spec names another host are theirs; alone, every VM
  // in the store is this host's, whatever name its spec carries.
  bool pooled = false;
};

struct ConsoleEndpoints {
  std::string serial_socket, serial_log, vnc_socket;
  bool running = false;
};

// "[a,b,...]" of serialized JSON values.
std::string JsonArrayText(const std::vector<std::pair<std::string, std::shared_ptr<const std::string>>>& items);

class VmManager {
 public:
  VmManager(VmManagerConfig config, Store& store, Storage& storage, Networks& networks, Tasks& tasks, EventBus& events,
            AccelProbe& accel);
  ~VmManager();

  // Loads every VM from the store and re-attaches to QEMU processes that
  // survived a pampad restart; starts autostart VMs after a host boot.
  Status Load();
  void StartReconciler();
  void StopReconciler();

  // Validates synchronously, then creates volumes (importing the image) in a
  // task. Returns the task id.
  Result<std::string> Create(const CreateRequest& req);
  std::vector<nlohmann::json> List();
  Result<nlohmann::json> Show(const std::string& name);
  // The same, serialized: each VM's JSON is serialized once per change, so a
  // reader costs a copy of strings (the API serves these).
  std::string ListText();
  // Each VM's serialized JSON by name, in name order.
  std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> ListTexts();
  Result<std::string> ShowText(const std::string& name);
  Status Edit(const std::string& name, const EditRequest& req);
  // Refuses while running; deletes the VM's volumes too.
  Status Delete(const std::string& name);

  // Returns once QEMU runs (not when the guest has booted). Refuses a VM whose
  // memory exceeds the host's unless forced.
  Status Start(const std::string& name, bool force = false);
  // ACPI power button, then forced off after timeout; a task, returns its id.
  Result<std::string> Shutdown(const std::string& name, std::chrono::seconds timeout);
  // Forced power off.
  Status Stop(const std::string& name);
  Status Reboot(const std::string& name);
  Status Pause(const std::string& name);
  Status Resume(const std::string& name);

  Result<ExecResult> Exec(const std::string& name, const std::vector<std::string>& argv, std::chrono::seconds timeout);
  Status AgentPing(const std::string& name);
  Result<ConsoleEndpoints> Console(const std::string& name);
  // Presses each chord in turn on the guest's keyboard (QMP send-key): the
  // console's "type this text" and Ctrl-Alt-Del. Refused while another
  // operation holds the VM.
  Status SendKeys(const std::string& name, const std::vector<KeyChord>& chords);

  // Grows disk `index` of a VM to `size` ("20G", or "+5G" to grow by): with
  // QMP's block_resize while QEMU runs (the guest sees the new size at once),
  // with qemu-img otherwise. Returns the new size in bytes.
  Result<uint64_t> ResizeDisk(const std::string& name, size_t index, const std::string& size);

  // The guest's network interfaces and addresses as its agent reports them
  // (loopback left out): [{"name", "mac", "addresses": ["10.0.0.5/24"]}].
  Result<nlohmann::json> GuestAddresses(const std::string& name);

  // A new VM with a copy of the source's disks (or overlays on a template's:
  // req.linked), new MACs and a new UUID; a task.
  Result<std::string> Clone(const CloneRequest& req);
  // Makes a stopped VM without snapshots a template, for good.
  Status MakeTemplate(const std::string& name);
  // A stopped VM's new name; its snapshots, backup chains and schedules follow.
  Status Rename(const std::string& name, const std::string& to);

  // Snapshots (vm/snapshots.cc): internal qcow2 snapshots of all disks at once,
  // optionally with the RAM state. Each returns a task id; the tree is in the store.
  Result<std::string> CreateSnapshot(const std::string& vm, const std::string& snap, bool memory,
                                     const std::string& description);
  Result<nlohmann::json> ListSnapshots(const std::string& vm);
  Result<std::string> RevertSnapshot(const std::string& vm, const std::string& snap);
  Result<std::string> DeleteSnapshot(const std::string& vm, const std::string& snap);

  // Long work on a VM by a job above vm/ (backup, restore; later migration).
  // A Hold is the VM's operation lease: while it lives, its holder owns the
  // VM's runtime with no lock held, and everyone else is told "busy: <op> in
  // progress". Destroying it (or Release) gives the VM back. Move-only.
  class Hold;
  // Holds an existing VM for op once its state allows action.
  Result<Hold> HoldVm(const std::string& name, VmOp op, VmAction action);
  // A short look at a VM, the kind the reconcile loop takes (others wait for
  // it briefly instead of being refused): nullopt when the VM is gone or busy.
  // For watchers above vm/ (a live restore's copy) that query QEMU now and then.
  std::optional<Hold> TryHold(const std::string& name);
  // Registers a new, stopped VM under spec.name, held for op (a restore as a
  // new VM); kConflict when the name is taken. Until Keep, it is not saved:
  // Abandon (or a pampad restart, through its intent) removes it.
  // The store makes the name unique (of two creates of one name exactly one
  // wins) and records `intent` with it, so that a pampad that dies before
  // Keep has the VM and its volumes removed at its next start.
  Result<Hold> HoldNewVm(const VmSpec& spec, VmOp op, const std::string& intent);
  // The held new VM is whole: from now on it is a VM like any other.
  Status Keep(Hold& hold, const std::string& intent);
  // Removes a held new VM that will not be, from the store and the registry
  // (its volumes are the caller's).
  void Abandon(Hold& hold, const std::string& intent);

  // Live migration between hosts of a pool (cluster/migration.cc drives it;
  // these are the VM's side of it).
  //
  // Target: registers spec's VM, still run by its source host, and starts its
  // QEMU waiting for the incoming migration (-incoming defer) with the CPUs
  // stopped. The Hold owns it until AdoptIncoming or DropIncoming.
  Result<Hold> StartIncoming(const VmSpec& spec);
  // Target: the store names this host as the VM's now: the VM runs here
  // (cont, unless it was paused on the source).
  // resumed: set to when the CPUs started (before the runtime is recorded).
  Status AdoptIncoming(Hold& hold, bool run, std::chrono::steady_clock::time_point* resumed = nullptr);
  // Target: the migration will not be: stops the waiting QEMU and forgets the
  // VM (its disks belong to the source and stay).
  void DropIncoming(Hold& hold);
  // Source, once QEMU has sent everything (or for a stopped VM): records in
  // one transaction that host `to` runs the VM (its spec, if unchanged since
  // it was held) and removes this host's runtime record; then runs
  // `committed` (telling the target, which starts the CPUs: the guest's
  // downtime ends there), stops the local QEMU and forgets the VM.
  // true: handed over; false: certainly not (the VM is still this host's);
  // an error: the store's answer was lost and a read-back failed too, so
  // nobody knows yet (nothing may run it).
  Result<bool> HandOver(Hold& hold, const std::string& to, const std::function<void()>& committed = {});
  // Registers a VM the store says this host runs now and that is not
  // running (a stopped VM moved here).
  Status Adopt(const std::string& name);

  // High availability (cluster/ha.cc drives it; these are the VM's side).
  struct HaProcess {
    std::string name, uuid;
    pid_t pid = 0;
  };
  // The QEMU processes of this host's HA VMs, from what each VM published
  // (never waits for an operation).
  std::vector<HaProcess> HaProcesses();
  // Kills the QEMU of a VM at once, whatever holds it: this host lost its
  // lease, so another may start the VM soon. It becomes crashed with reason.
  // True when a QEMU was killed.
  bool Fence(const std::string& name, const std::string& reason);
  // Forgets the VMs whose spec in the store names another host now (the HA
  // manager moved them while this host was cut off); a QEMU of one that still
  // runs here is killed first. Skips VMs an operation holds (a migration
  // under way). Returns the names forgotten.
  std::vector<std::string> DropMovedAway();

  // intents/<host>/<kind>/<vm>: the volumes a create or restore is making,
  // recorded before the first one is made and cleared once the VM is saved.
  // At start, volumes of an intent whose VM was never saved are removed, and a
  // VM whose in-place work ("<kind>-in-place") never finished says so.
  // A move between hosts records the disk copies it makes: "migrate-in" on
  // the target (the new volumes), "migrate-out" on the source (its own, to go
  // once the target runs the VM). At start, such volumes are kept where the
  // store names this host as the VM's, and removed where it names another.
  static constexpr const char* kMigrateIn = "migrate-in";
  static constexpr const char* kMigrateOut = "migrate-out";
  Status WriteIntent(const std::string& kind, const VmSpec& spec);
  Result<std::optional<VmSpec>> ReadIntent(const std::string& kind, const std::string& vm);
  // A move's disk copies (kMigrateIn/Out, also those a dead pampad left):
  // kept where the store names this host as the VM's, else removed; the
  // intent goes.
  void SettleMoveIntent(const std::string& kind, const VmSpec& copies);
  std::string IntentKey(const std::string& kind, const std::string& vm) const;
  // Fails when the store does: the work must then count as unfinished (a left
  // intent makes the next start remove the VM).
  Status ClearIntent(const std::string& kind, const std::string& vm);
  void RemoveVolumes(const VmSpec& spec);  // what exists of them; errors are logged
  const VmManagerConfig& config() const { return config_; }
  // True when spec's VM is run by this host.
  bool Owns(const VmSpec& spec) const { return !config_.pooled || spec.host == config_.hostname; }
  // The image paths of a VM's disks; kInvalid unless every disk is qcow2
  // (snapshots and backups need qcow2).
  Result<std::vector<std::string>> Qcow2Disks(const VmSpec& spec);

  // Warnings about a VM's definition a user should see at create (e.g. more
  // memory than the host has).
  std::vector<std::string> SpecWarnings(const VmSpec& spec) const;

  // True when some VM uses this volume / network (deleting it is refused).
  std::string VolumeUser(const std::string& pool, const std::string& volume);
  // The VM using this volume and which of its disks it is.
  std::optional<std::pair<std::string, size_t>> VolumeDisk(const std::string& pool, const std::string& volume);
  std::string NetworkUser(const std::string& network);

 private:
  struct Vm;
  class OperationLease;

  Result<std::shared_ptr<Vm>> Find(const std::string& name);
  // Adds a VM for spec to the registry, owned by op from the start; nullptr
  // when the name is registered already.
  std::shared_ptr<Vm> Register(const VmSpec& spec, VmOp op);
  // Makes the caller the VM's owner for op, after checking that its state
  // allows `action` (none: any state). Fails with kBusy naming the operation
  // in progress; waits (briefly) only for the reconcile loop's short look.
  Result<OperationLease> Claim(const std::shared_ptr<Vm>& vm, VmOp op, std::optional<VmAction> action);
  // Without waiting: nullopt when the VM is busy (the reconcile loop skips it).
  std::optional<OperationLease> TryClaim(const std::shared_ptr<Vm>& vm, VmOp op);
  nlohmann::json Describe(Vm& vm);  // REQUIRES: lease held
  // Records the state and republishes the VM's JSON. REQUIRES: lease held
  void SetState(Vm& vm, VmState state, const std::string& reason = "");
  void Publish(Vm& vm);  // REQUIRES: lease held
  // Keys that belong to this host say so: hosts/<host>/runtime/<vm>.
  std::string RuntimeKey(const std::string& vm) const;
  std::string BootIdKey() const;
  // Moves records written before keys named their host (runtime/<vm>,
  // host/boot_id) under hosts/<host>/.
  void MigrateHostKeys();
  // Claims spec.name in the store (vms/<name> must be absent) and records the
  // intent, in one transaction; sets vm.spec_revision.
  Status ClaimName(Vm& vm, const std::string& intent);
  // Undoes ClaimName: the spec and the intent go in one transaction.
  Status UnclaimName(const VmSpec& spec, const std::string& intent);
  Status PersistRuntime(Vm& vm);  // REQUIRES: lease held
  friend class OperationLease;

  // vm_runtime.cc: everything that touches QEMU. All REQUIRE the VM's lease.
  Result<MachineConfig> Resolve(Vm& vm);
  // incoming: QEMU waits for a live migration with its CPUs stopped (paused).
  Status StartLocked(Vm& vm, const std::string& loadvm = "", bool incoming = false);
  Status StopLocked(Vm& vm);
  void Reattach(Vm& vm);
  // A migration this pampad took part in when it died: the VM runs here now
  // (the store names this host), or the QEMU that waited for it goes.
  void ResumeCutMigration(Vm& vm, const std::string& recorded_reason);
  // QEMUs this host started for VMs the store gives to another host (an
  // incoming migration that was abandoned while pampad was down) are stopped.
  void DropOrphans();
  void Cleanup(Vm& vm);  // taps, sockets
  void ReconcileOne(Vm& vm);
  void HandleExit(Vm& vm);
  Status SwitchPaused(const std::string& name, bool pause);
  void ReconcileLoop();
  std::string CrashReason(Vm& vm);
  RuntimePaths PathsFor(const VmSpec& spec) const;
  std::string CloudInitSeedPath(const std::string& vm) const { return config_.data_dir + "/vms/" + vm + ".cidata.iso"; }
  std::string VarsPath(const std::string& vm) const { return config_.data_dir + "/vms/" + vm + ".vars.fd"; }  // UEFI
  // The volume of a new VM's disk i in pool: vm-diskI, checked free and short enough.
  Result<std::string> NewDiskVolume(const std::string& vm, size_t i, const std::string& pool);
  // Claims the VM for op (checking `action` against its state) and runs body
  // in a task that owns the lease; the VM is given back when body returns.
  Result<std::string> RunVmTask(const std::string& name, VmOp op, VmAction action,
                                std::function<Result<nlohmann::json>(Vm&, TaskContext&)> body);
  Status RunQmpJob(Vm& vm, const std::string& command, nlohmann::json args,
                   TaskContext& ctx);  // REQUIRES: lease held
  // Work a dead pampad left half-done (intents/ records): volumes of a create
  // or restore that never finished are removed.
  void RecoverIntents();

  // Drops a VM from the registry (a failed create or restore, a delete).
  void Forget(Vm& vm);
  // The registered VMs, copied out under mu_ (held for the copy only).
  std::vector<std::shared_ptr<Vm>> AllVms() EXCLUDES(mu_);
  // Every VM's published spec, for lookups that must never wait.
  std::vector<std::shared_ptr<const VmSpec>> Specs();
  // The disk and NIC changes of an edit, made to *s; returns the volumes it
  // created as the disks of a spec (removed by the caller should the edit not
  // be stored) and, in removed->disks, the disk it took out (its volume goes
  // once the edit is stored).
  Result<VmSpec> ChangeDevices(const EditRequest& req, VmSpec* s, VmSpec* removed);
  // The hot-plug ports of s, edited from `before` (see FitPorts): a running
  // VM takes a device only into a slot its machine has a port for, as does
  // one whose snapshots may hold a saved state of that machine; any other
  // VM's machine is fitted to its devices again.
  Status FitEditedPorts(const EditRequest& req, bool live, const VmSpec& before, VmSpec* s);
  // Writes s as vm's spec unless it changed since it was read, and publishes it.
  Status ReplaceSpec(Vm& vm, const VmSpec& s);  // REQUIRES: lease held
  // Applies an edit's device changes to the running QEMU and records spec `s`:
  // a device leaves the guest before the spec drops it and joins after the
  // spec names it; a failure takes the additions back. REQUIRES: lease held
  Status EditLive(Vm& vm, const EditRequest& req, const VmSpec& s);
  // vm_resources.cc: gives the running QEMU spec s's CPU weight, cap and pin,
  // disk and NIC limits, and its memory when dynamic memory is turned off:
  // all of them at a start (before: nullptr), what differs from `before` on
  // an edit. The guest notices nothing. REQUIRES: lease held
  Status ApplyResources(Vm& vm, const VmSpec& s, const VmSpec* before);
  // The resource changes of an edit, checked against the VM and made to *s.
  Status ChangeResources(const EditRequest& req, VmSpec* s);
  // The VMs of the pool whose disks are overlays on base's (linked clones of a template).
  Result<std::vector<std::string>> LinkedClones(const VmSpec& base);

  VmManagerConfig config_;
  Store& store_;
  Storage& storage_;
  Networks& networks_;
  Tasks& tasks_;
  EventBus& events_;
  AccelProbe& accel_;

  Mutex mu_;  // guards vms_ (the map, not the VMs)
  std::map<std::string, std::shared_ptr<Vm>> vms_ GUARDED_BY(mu_);
  // DropMovedAway's view of the pool's specs: each VM and the host it names.
  Mutex owners_mu_;
  ParsedByRevision<std::pair<std::string, std::string>> spec_owners_ GUARDED_BY(owners_mu_);

  std::atomic<bool> stopping_{false};
  std::thread reconciler_;
};

class VmManager::Hold {
 public:
  Hold();
  Hold(Hold&&) noexcept;
  Hold& operator=(Hold&&) noexcept;
  ~Hold();

  const VmSpec& spec() const;
  const RuntimePaths& paths() const;
  VmState state() const;
  pid_t pid() const;  // QEMU's, 0 when it does not run
  // QEMU's QMP connection, or nullptr when QEMU is not running or not answering.
  QmpClient* qmp() const;
  // The guest agent's channel, claimed for one conversation at a time.
  AgentChannel& agent() const;
  // Sets the note shown with the VM's state (its "reason").
  void Note(const std::string& reason);
  void Release();

 private:
  friend class VmManager;
  explicit Hold(std::unique_ptr<OperationLease> lease);
  std::unique_ptr<OperationLease> lease_;
};

}  // namespace pampa
