// A VM's states and the operations on it, as types: the one table of which
// action each state allows lives in vm_state.cc, and the API, the CLI's
// messages and (later) the web console all read it from there.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace pampa {

// What the VM is, as pampad last saw its QEMU.
enum class VmState {
  kStopped,       // no QEMU process
  kStarting,      // QEMU spawned, QMP not answering yet
  kRunning,       // QEMU runs the guest
  kPaused,        // QEMU runs, the guest's CPUs are stopped (by a user or an I/O error)
  kShuttingDown,  // the guest was asked to power off and has not yet
  kCrashed,       // QEMU went away without being asked to
};

// Long work that holds a VM (its operation lease): while one runs, every other
// operation on that VM is refused with "busy: <op> in progress".
enum class VmOp {
  kNone,
  kCreate,
  kStart,
  kShutdown,
  kStop,
  kPause,
  kResume,
  kReboot,
  kEdit,
  kDelete,
  kSnapshot,
  kRevert,
  kSnapshotDelete,
  kBackup,
  kRestore,
  kMigrate,    // this host sends the VM to another (live or cold)
  kMigrateIn,  // this host receives the VM from another
  kSendKeys,   // keystrokes typed into the console
  kResizeDisk,
  kClone,     // its disks are being copied into a new VM
  kTemplate,  // being made a template
  kRename,
  kReconcile,  // the reconcile loop's own short look at QEMU; never shown, never refuses anyone
};

// What a user can ask of a VM.
enum class VmAction {
  kStart,
  kShutdown,
  kStop,
  kReboot,
  kPause,
  kResume,
  kEditHardware,  // CPUs, memory, kernel, firmware...: only while QEMU is not running
  kEditDevices,   // disks, NICs and the CD: hot-plugged while it runs
  kDelete,
  kSnapshot,
  kRevert,
  kBackup,
  kRestoreInPlace,
  kGuestAgent,  // exec and agent ping
  kMigrate,     // to another host of the pool
  kSendKeys,    // keystrokes into the guest's keyboard
  kResizeDisk,  // grow a disk, while the VM runs or not
  kClone,       // copy into a new VM (a running one only from a snapshot)
  kTemplate,    // make it a template
  kRename,
};

std::string_view Name(VmState s);
std::string_view Name(VmOp op);
std::string_view Name(VmAction a);
// The state named by the wire format; false when the name is unknown.
bool ParseVmState(std::string_view name, VmState* out);

// The state changes pampad makes, in one place: true when a VM may go from
// `from` to `to` (the same state with a new reason always may). A freshly
// loaded VM starts as kStopped and its re-attach may find it in any state.
bool ValidTransition(VmState from, VmState to);

// True when a VM in state s may be asked for a (busy or not).
bool Allowed(VmAction a, VmState s);
// True when a template may be asked for a (a template is read-only and never runs).
bool TemplateAllows(VmAction a);
// Ok, or kConflict with a message that says why and what to do.
Status CheckAllowed(VmAction a, VmState s, const std::string& vm, bool is_template = false);
// Every action the VM allows now (none while an operation holds it), by name:
// what the API shows as "actions".
std::vector<std::string> AllowedActions(VmState s, VmOp busy, bool is_template = false);

// QEMU is alive in these states (its QMP socket may answer).
inline bool QemuAlive(VmState s) { return s != VmState::kStopped && s != VmState::kCrashed; }

}  // namespace pampa
