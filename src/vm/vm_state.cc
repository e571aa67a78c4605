#include "vm/vm_state.h"

#include <array>
#include <initializer_list>

namespace pampa {
namespace {

using S = VmState;
using A = VmAction;

struct Rule {
  A action;
  std::initializer_list<S> states;  // the states that allow it
  // The refusal, after "vm 'NAME' is STATE": what to do instead.
  const char* refusal;
};

// The one table. A state missing from a row refuses that action.
const Rule kRules[] = {
    {A::kStart, {S::kStopped, S::kCrashed}, ""},
    {A::kShutdown, {S::kRunning, S::kPaused}, ", not running"},
    {A::kStop, {S::kStarting, S::kRunning, S::kPaused, S::kShuttingDown, S::kCrashed}, ""},
    {A::kReboot, {S::kRunning, S::kPaused, S::kShuttingDown}, ", not running"},
    {A::kPause, {S::kRunning}, ""},
    {A::kResume, {S::kPaused}, ", not paused"},
    {A::kEditHardware,
     {S::kStopped, S::kCrashed},
     "; stop it before editing (only disks, NICs, the CD and --autostart can change while it runs)"},
    {A::kEditDevices, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; change its devices once it has settled"},
    {A::kDelete, {S::kStopped, S::kCrashed}, "; stop it first (pampa vm stop NAME)"},
    {A::kSnapshot, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; try again when it has settled"},
    {A::kRevert, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; try again when it has settled"},
    {A::kBackup, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; back it up once it has settled"},
    {A::kRestoreInPlace, {S::kStopped, S::kCrashed}, "; stop it before restoring over it"},
    {A::kGuestAgent, {S::kRunning}, ", not running"},
    {A::kMigrate, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; migrate it once it has settled"},
    {A::kSendKeys, {S::kRunning, S::kPaused, S::kShuttingDown}, ", not running"},
    {A::kResizeDisk, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; resize it once it has settled"},
    {A::kClone, {S::kStopped, S::kRunning, S::kPaused, S::kCrashed}, "; clone it once it has settled"},
    {A::kTemplate, {S::kStopped, S::kCrashed}, "; stop it first (pampa vm stop NAME)"},
    {A::kRename, {S::kStopped, S::kCrashed}, "; stop it first (pampa vm stop NAME)"},
};

const Rule& RuleFor(A a) {
  for (const auto& r : kRules) {
    if (r.action == a) return r;
  }
  return kRules[0];  // unreachable: every action has a row (vm_state_test checks)
}

constexpr std::array<std::string_view, 6> kStateNames = {"stopped", "starting",      "running",
                                                         "paused",  "shutting-down", "crashed"};

}  // namespace

std::string_view Name(VmState s) { return kStateNames[static_cast<size_t>(s)]; }

bool ParseVmState(std::string_view name, VmState* out) {
  for (size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == name) {
      *out = static_cast<VmState>(i);
      return true;
    }
  }
  return false;
}

std::string_view Name(VmOp op) {
  switch (op) {
    case VmOp::kNone:
      return "";
    case VmOp::kCreate:
      return "create";
    case VmOp::kStart:
      return "start";
    case VmOp::kShutdown:
      return "shutdown";
    case VmOp::kStop:
      return "stop";
    case VmOp::kPause:
      return "pause";
    case VmOp::kResume:
      return "resume";
    case VmOp::kReboot:
      return "reboot";
    case VmOp::kEdit:
      return "edit";
    case VmOp::kDelete:
      return "delete";
    case VmOp::kSnapshot:
      return "snapshot";
    case VmOp::kRevert:
      return "revert";
    case VmOp::kSnapshotDelete:
      return "snapshot-delete";
    case VmOp::kBackup:
      return "backup";
    case VmOp::kRestore:
      return "restore";
    case VmOp::kMigrate:
      return "migrate";
    case VmOp::kMigrateIn:
      return "incoming migration";
    case VmOp::kSendKeys:
      return "send-keys";
    case VmOp::kResizeDisk:
      return "resize-disk";
    case VmOp::kClone:
      return "clone";
    case VmOp::kTemplate:
      return "template";
    case VmOp::kRename:
      return "rename";
    case VmOp::kReconcile:
      return "";
  }
  return "";
}

std::string_view Name(VmAction a) {
  switch (a) {
    case A::kStart:
      return "start";
    case A::kShutdown:
      return "shutdown";
    case A::kStop:
      return "stop";
    case A::kReboot:
      return "reboot";
    case A::kPause:
      return "pause";
    case A::kResume:
      return "resume";
    case A::kEditHardware:
      return "edit";
    case A::kEditDevices:
      return "edit devices";
    case A::kDelete:
      return "delete";
    case A::kSnapshot:
      return "snapshot";
    case A::kRevert:
      return "revert";
    case A::kBackup:
      return "backup";
    case A::kRestoreInPlace:
      return "restore";
    case A::kGuestAgent:
      return "exec";
    case A::kMigrate:
      return "migrate";
    case A::kSendKeys:
      return "send keys";
    case A::kResizeDisk:
      return "resize disk";
    case A::kClone:
      return "clone";
    case A::kTemplate:
      return "template";
    case A::kRename:
      return "rename";
  }
  return "";
}

bool ValidTransition(VmState from, VmState to) {
  if (from == to) return true;
  switch (from) {
    case S::kStopped:  // start, or what a re-attach finds
      return true;
    case S::kStarting:  // paused: a QEMU waiting for an incoming migration
      return to == S::kRunning || to == S::kPaused || to == S::kStopped || to == S::kCrashed;
    case S::kRunning:
    case S::kPaused:
      return to != S::kStarting;
    case S::kShuttingDown:
      return to == S::kStopped || to == S::kCrashed || to == S::kPaused;
    case S::kCrashed:
      return to == S::kStopped || to == S::kStarting;
  }
  return false;
}

bool Allowed(VmAction a, VmState s) {
  for (S allowed : RuleFor(a).states) {
    if (allowed == s) return true;
  }
  return false;
}

bool TemplateAllows(VmAction a) { return a == A::kDelete || a == A::kBackup || a == A::kClone || a == A::kRename; }

Status CheckAllowed(VmAction a, VmState s, const std::string& vm, bool is_template) {
  std::string head = "vm '" + vm + "' is ";
  if (is_template && a == A::kTemplate) return Status::Conflict(head + "already a template");
  if (is_template && !TemplateAllows(a)) {
    return Status::Conflict(head + "a template, which never runs or changes: " + std::string(Name(a)) +
                            " a clone of it instead (pampa vm clone " + vm + " NEW)");
  }
  if (Allowed(a, s)) return Status::Ok();
  // A few refusals read better said whole.
  if (a == A::kStart) return Status::Conflict(head + "already " + std::string(Name(s)));
  if (a == A::kStop && s == S::kStopped) return Status::Conflict(head + "already stopped");
  if (a == A::kPause && s == S::kPaused) return Status::Conflict(head + "already paused");
  std::string refusal = RuleFor(a).refusal;
  if (auto at = refusal.find("NAME"); at != std::string::npos) refusal.replace(at, 4, vm);
  return Status::Conflict(head + std::string(Name(s)) + refusal);
}

std::vector<std::string> AllowedActions(VmState s, VmOp busy, bool is_template) {
  std::vector<std::string> out;
  if (busy != VmOp::kNone && busy != VmOp::kReconcile) {
    // A forced stop is the one thing that may interrupt a shutdown.
    if (busy == VmOp::kShutdown) out.emplace_back(Name(A::kStop));
    return out;
  }
  for (const auto& r : kRules) {
    if (Allowed(r.action, s) && (!is_template || TemplateAllows(r.action))) out.emplace_back(Name(r.action));
  }
  return out;
}

}  // namespace pampa
