// The part of VmManager that talks to QEMU: resolving a spec into a machine,
// starting and stopping the process, re-attaching after a pampad restart,
// and the reconcile loop that turns QMP events and process exits into states.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "base/clock.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"
#include "base/units.h"
#include "qemu/cgroups.h"
#include "qemu/nbd_server.h"
#include "vm/cloud_init.h"
#include "vm/vm_internal.h"
#include "vm/vm_manager.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

}  // namespace

bool WaitExit(pid_t pid, const std::string& marker, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ProcessAlive(pid, marker)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

Result<MachineConfig> VmManager::Resolve(Vm& vm) {
  const VmSpec& s = vm.spec;
  MachineConfig m;
  m.name = s.name;
  m.uuid = s.uuid;
  m.cpus = s.cpus;
  m.sockets = s.sockets;
  m.cores = s.cores;
  m.threads = s.threads;
  m.cpu_model = s.cpu_model;
  m.boot_order = s.boot_order;
  m.memory_mib = s.memory_mib;
  m.append = s.append;
  m.firmware = s.firmware;
  for (size_t i = 0; i < s.disks.size(); ++i) {
    const DiskSpec& d = s.disks[i];
    auto v = storage_.LocateVolume(d.pool, d.volume);
    if (!v.ok()) return v.status().Context("disk " + d.volume);
    m.disks.push_back({v->path, v->format, d.bus, DiskSlot(s, i)});
  }
  // Files from outside are checked again: they may have moved since create.
  if (!s.kernel.empty()) {
    PAMPA_ASSIGN_OR_RETURN(m.kernel, storage_.CheckOutsidePath("kernel", s.kernel));
  }
  if (!s.initrd.empty()) {
    PAMPA_ASSIGN_OR_RETURN(m.initrd, storage_.CheckOutsidePath("initrd", s.initrd));
  }
  if (!s.cdrom.empty()) {
    PAMPA_ASSIGN_OR_RETURN(m.cdrom, storage_.CheckOutsidePath("cdrom", s.cdrom));
  }
  if (s.firmware == "uefi") {
    m.ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    m.ovmf_vars = VarsPath(s.name);
    if (!Exists(m.ovmf_vars)) {
      std::error_code ec;
      std::filesystem::create_directories(config_.data_dir + "/vms", ec);
      std::filesystem::copy_file("/usr/share/OVMF/OVMF_VARS_4M.fd", m.ovmf_vars, ec);
      if (ec) return Status::Unavailable("UEFI variable store missing and cannot be created: " + ec.message());
    }
  }
  if (!s.cloud_init.empty()) {
    // Made again at every start: a change applies at the next boot.
    m.cidata = CloudInitSeedPath(s.name);
    PAMPA_RETURN_IF_ERROR(MakeDirs(config_.data_dir + "/vms"));
    PAMPA_RETURN_IF_ERROR(WriteCloudInitSeed(s, m.cidata));
  } else {
    unlink(CloudInitSeedPath(s.name).c_str());  // the settings were removed
  }
  m.accel = accel_.Current().accel;
  for (size_t i = 0; i < s.nics.size(); ++i) m.nics.push_back({TapName(s, i), s.nics[i].mac, NicSlot(s, i)});
  m.disk_ports = DiskPorts(s);
  m.nic_ports = NicPorts(s);
  return m;
}

Status VmManager::StartLocked(Vm& vm, const std::string& loadvm, bool incoming) {
  auto t0 = std::chrono::steady_clock::now();
  auto ms = [&] { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); };
  PAMPA_ASSIGN_OR_RETURN(auto machine, Resolve(vm));
  machine.loadvm = loadvm;
  machine.incoming = incoming;
  log::Debug("vm {}: resolved in {:.1f} ms", vm.spec.name, ms());
  SetState(vm, VmState::kStarting);
  auto fail = [&](const Status& st) {
    if (vm.pid > 0 && ProcessAlive(vm.pid, "")) {
      kill(vm.pid, SIGKILL);
      WaitExit(vm.pid, "", 2s);
    }
    Cleanup(vm);
    log::Error("vm {}: start failed: {}", vm.spec.name, st.message());
    SetState(vm, VmState::kStopped, st.message());
    Status ignored = PersistRuntime(vm);
    (void)ignored;
    return st;
  };
  for (size_t i = 0; i < machine.nics.size(); ++i) {
    Status st = networks_.CreateTap(vm.spec.nics[i].network, machine.nics[i].tap);
    if (!st.ok()) return fail(st.Context("network " + vm.spec.nics[i].network));
  }
  KillStaleNbd(vm.paths.dir);
  std::error_code ec;
  std::filesystem::remove_all(vm.paths.dir, ec);
  if (Status st = MakeDirs(vm.paths.dir, 0700); !st.ok()) return fail(st);
  auto argv = QemuCommandLine(machine, vm.paths);
  log::Debug("vm {}: taps and run directory ready at {:.1f} ms", vm.spec.name, ms());
  auto pid = SpawnDetached(argv, vm.paths.qemu_log());
  if (!pid.ok()) return fail(pid.status());
  log::Debug("vm {}: spawned at {:.1f} ms", vm.spec.name, ms());
  vm.pid = *pid;
  vm.accel = machine.accel;
  vm.started_ms = NowMs();
  vm.stop_requested = false;
  auto qmp = std::make_unique<QmpClient>();
  Status st = Status::Unavailable("QEMU did not open its QMP socket");
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    // No marker check here: right after the fork, the child has not exec'd yet.
    if (!ProcessAlive(vm.pid, "")) {
      std::string why = TailFile(vm.paths.qemu_log(), 600);
      vm.pid = 0;
      return fail(Status::Invalid("QEMU exited at start: " + (why.empty() ? std::string("no message") : why)));
    }
    st = qmp->Connect(vm.paths.qmp(), 200ms);
    if (st.ok()) break;
  }
  if (!st.ok()) return fail(st.Context("starting QEMU"));
  log::Debug("vm {}: QEMU pid {} answered QMP at {:.1f} ms", vm.spec.name, vm.pid, ms());
  vm.qmp = std::move(qmp);
  if (Status limits = ApplyResources(vm, vm.spec, nullptr); !limits.ok()) return fail(limits);
  if (incoming)
    SetState(vm, VmState::kPaused, kWaitingForMigration);
  else
    SetState(vm, VmState::kRunning);
  PAMPA_RETURN_IF_ERROR(PersistRuntime(vm));
  log::Debug("vm {}: running, recorded at {:.1f} ms", vm.spec.name, ms());
  if (machine.accel == "tcg" && !accel_.Current().forced) {
    log::Warn("vm {}: running under TCG (software emulation, slow): {}", vm.spec.name, accel_.Current().reason);
  }
  return Status::Ok();
}

Status VmManager::StopLocked(Vm& vm) {
  if (vm.pid == 0) {
    SetState(vm, VmState::kStopped);
    return PersistRuntime(vm);
  }
  vm.stop_requested = true;
  Status ignored = PersistRuntime(vm);
  (void)ignored;
  if (vm.qmp && vm.qmp->connected()) {
    auto r = vm.qmp->Execute("quit", nullptr, 2s);
    (void)r;
  }
  if (!WaitExit(vm.pid, vm.spec.uuid, 5s)) {
    kill(vm.pid, SIGKILL);
    if (!WaitExit(vm.pid, vm.spec.uuid, 5s)) {
      return Status::Internal("QEMU (pid " + std::to_string(vm.pid) + ") did not exit even after SIGKILL");
    }
  }
  Cleanup(vm);
  SetState(vm, VmState::kStopped);
  return PersistRuntime(vm);
}

void VmManager::Cleanup(Vm& vm) {
  vm.qmp.reset();
  if (vm.pid > 0) Cgroups::Host().Remove(vm.spec.uuid);
  vm.pid = 0;
  for (size_t i = 0; i < vm.spec.nics.size(); ++i) Networks::DeleteTap(TapName(vm.spec, i));
  for (auto p : {vm.paths.qmp(), vm.paths.qga(), vm.paths.serial(), vm.paths.vnc(), vm.paths.pidfile()}) {
    unlink(p.c_str());
  }
}

std::string VmManager::CrashReason(Vm& vm) {
  std::string last = LastLogLine(vm.paths.qemu_log(), 800);
  if (last.empty()) return "QEMU exited unexpectedly (killed? nothing in its log " + vm.paths.qemu_log() + ")";
  return "QEMU exited unexpectedly: " + last;
}

void VmManager::HandleExit(Vm& vm) {
  bool requested = vm.stop_requested;
  std::string fenced;
  {
    MutexLock lock(&vm.mu);
    fenced.swap(vm.fence_reason);
  }
  if (!fenced.empty()) requested = false;
  std::string why = !fenced.empty() ? fenced : requested ? "" : CrashReason(vm);
  Cleanup(vm);
  SetState(vm, requested ? VmState::kStopped : VmState::kCrashed, why);
  Status st = PersistRuntime(vm);
  if (!st.ok()) log::Warn("vm {}: {}", vm.spec.name, st.message());
}

void VmManager::Reattach(Vm& vm) {
  auto rt = store_.Get(RuntimeKey(vm.spec.name));
  if (!rt.ok() || !rt->has_value()) {
    SetState(vm, VmState::kStopped);
    return;
  }
  auto j = json::parse(**rt, nullptr, false);
  if (!j.is_object()) {
    SetState(vm, VmState::kStopped);
    return;
  }
  vm.pid = j.value("pid", 0);
  vm.accel = j.value("accel", "");
  vm.started_ms = j.value("started", int64_t{0});
  vm.stop_requested = j.value("stop_requested", false);
  if (j.value("state", "") == Name(VmState::kCrashed) && vm.pid == 0) {
    SetState(vm, VmState::kCrashed, j.value("reason", ""));
    return;
  }
  if (!ProcessAlive(vm.pid, vm.spec.uuid)) return HandleExit(vm);
  vm.qmp = std::make_unique<QmpClient>();
  Status st = vm.qmp->Connect(vm.paths.qmp(), 2s);
  if (!st.ok()) {
    log::Warn("vm {}: QEMU pid {} alive but QMP does not answer yet: {}", vm.spec.name, vm.pid, st.message());
    SetState(vm, VmState::kRunning, "re-attached; QMP not answering yet");
    return;
  }
  log::Info("vm {}: re-attached to QEMU pid {}", vm.spec.name, vm.pid);
  SetState(vm, VmState::kRunning);
  // Limits survive in QEMU and the kernel; a pampad of another version may
  // have set them differently.
  if (Status limits = ApplyResources(vm, vm.spec, nullptr); !limits.ok()) {
    log::Warn("vm {}: its limits could not be set again: {}", vm.spec.name, limits.message());
  }
  ResumeCutMigration(vm, j.value("reason", ""));
  ReconcileOne(vm);
}

void VmManager::ResumeCutMigration(Vm& vm, const std::string& recorded_reason) {
  auto status = vm.qmp->Execute("query-status", nullptr, 2s);
  if (!status.ok()) return;
  std::string s = status->value("status", "");
  bool sent_away = s == "postmigrate";  // this pampad died while sending it; the store still names us
  bool received = false;                // it died while receiving it; the store names us now
  if (!sent_away && recorded_reason == kWaitingForMigration) {
    auto m = vm.qmp->Execute("query-migrate", nullptr, 2s);
    std::string ms = m.ok() ? m->value("status", "") : "";
    received = ms == "completed";
    if (ms == "failed" || ms == "cancelled" || ms == "none" || ms == "setup") {
      // Never arrived: nothing of this QEMU ever ran; the next start makes a new one.
      log::Warn("vm {}: an incoming migration did not finish: its QEMU is stopped", vm.spec.name);
      vm.stop_requested = true;
      Status st = StopLocked(vm);
      if (!st.ok()) log::Error("vm {}: {}", vm.spec.name, st.message());
      return;
    }
  }
  if (!sent_away && !received) return;
  auto cont = vm.qmp->Execute("cont", nullptr, 5s);
  log::Warn("vm {}: a migration {} was cut short by a pampad restart; the store says this host runs it: {}",
            vm.spec.name, sent_away ? "away" : "to here", cont.ok() ? "resumed" : cont.status().message());
}

void VmManager::ReconcileOne(Vm& vm) {
  if (vm.pid == 0) return;
  if (!vm.qmp || !vm.qmp->connected()) {
    if (!ProcessAlive(vm.pid, vm.spec.uuid)) return HandleExit(vm);
    if (!vm.qmp) vm.qmp = std::make_unique<QmpClient>();
    if (!vm.qmp->Connect(vm.paths.qmp(), 200ms).ok()) return;
  }
  bool check = false;
  for (auto& ev : vm.qmp->TakeEvents()) {
    std::string name = ev.value("event", "");
    if (name == "SHUTDOWN" || name == "STOP" || name == "RESUME" || name == "RESET" || name == "POWERDOWN") {
      check = true;
    }
  }
  if (!vm.qmp->connected()) {
    ReconcileOne(vm);  // EOF: decide crash or stop from the process
    return;
  }
  VmState now;
  bool noted;
  {
    MutexLock lock(&vm.mu);
    now = vm.state;
    noted = !vm.reason.empty();
  }
  if (!check && now != VmState::kStarting && !noted) return;
  auto status = vm.qmp->Execute("query-status", nullptr, 2s);
  if (!status.ok()) return;
  std::string s = status->value("status", "");
  if (s == "shutdown" || s == "guest-panicked") {
    // The guest powered off (or panicked); with -no-shutdown QEMU waits for us.
    vm.stop_requested = true;
    Status st = StopLocked(vm);
    if (!st.ok()) log::Error("vm {}: {}", vm.spec.name, st.message());
    if (s == "guest-panicked") SetState(vm, VmState::kCrashed, "the guest kernel panicked");
    return;
  }
  // postmigrate, inmigrate, prelaunch, finish-migrate: a migration holds the CPUs.
  if (s == "paused" || s == "suspended" || s == "io-error" || s == "postmigrate" || s == "inmigrate" ||
      s == "prelaunch" || s == "finish-migrate") {
    SetState(vm, VmState::kPaused, s == "io-error" ? "paused after a disk I/O error (disk full?)" : "");
  } else if (now != VmState::kShuttingDown) {
    SetState(vm, VmState::kRunning);
  }
}

void VmManager::ReconcileLoop() {
  while (!stopping_) {
    for (auto& vm : AllVms()) {
      auto lease = TryClaim(vm, VmOp::kReconcile);
      if (!lease) continue;  // an operation owns it (and watches QEMU itself); next round
      ReconcileOne(*vm);
    }
    for (int i = 0; i < 5 && !stopping_; ++i) std::this_thread::sleep_for(50ms);
  }
}

void VmManager::StartReconciler() {
  stopping_ = false;
  reconciler_ = std::thread([this] { ReconcileLoop(); });
}

void VmManager::StopReconciler() {
  stopping_ = true;
  if (reconciler_.joinable()) reconciler_.join();
}

Status VmManager::Start(const std::string& name, bool force) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kStart, VmAction::kStart));
  uint64_t host = HostMemoryBytes();
  if (!force && host > 0 && (vm->spec.memory_mib << 20) > host) {
    return Status::Conflict("vm '" + name + "' has " + FormatSize(vm->spec.memory_mib << 20) +
                            " of memory but this host has " + FormatSize(host) + "; lower it (pampa vm edit " + name +
                            " --memory SIZE) or start it anyway with --force");
  }
  return StartLocked(*vm).Context("starting vm " + name);
}

Result<std::string> VmManager::Shutdown(const std::string& name, std::chrono::seconds timeout) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kShutdown, VmAction::kShutdown));
  if (!vm->qmp || !vm->qmp->connected()) return Status::Unavailable("QEMU of vm '" + name + "' does not answer on QMP");
  if (vm->State() == VmState::kPaused) {
    auto r = vm->qmp->Execute("cont");
    (void)r;
  }
  PAMPA_RETURN_IF_ERROR(vm->qmp->Execute("system_powerdown").status());
  SetState(*vm, VmState::kShuttingDown);
  auto held = std::make_shared<OperationLease>(std::move(lease));
  return tasks_.Start("vm-shutdown", name, [this, held, timeout](TaskContext& ctx) -> Result<json> {
    OperationLease owned = std::move(*held);
    Vm& vm = owned.vm();
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + timeout;
    ctx.Log("sent the ACPI power button to the guest");
    while (true) {
      ReconcileOne(vm);
      VmState state = vm.State();
      if (state == VmState::kStopped || state == VmState::kCrashed) {
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return json{{"vm", vm.spec.name}, {"forced", false}, {"seconds", secs}};
      }
      bool timed_out = std::chrono::steady_clock::now() > deadline;
      bool forced;
      {
        MutexLock lock(&vm.mu);
        forced = vm.force_stop;
      }
      if (timed_out || forced || ctx.cancelled()) {
        ctx.Log(timed_out ? "the guest did not power off in time: forcing it off"
                : forced  ? "a forced stop was asked: forcing the VM off"
                          : "cancelled: forcing the VM off");
        PAMPA_RETURN_IF_ERROR(StopLocked(vm));
        return json{{"vm", vm.spec.name}, {"forced", true}};
      }
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ctx.Progress(elapsed / std::max<double>(1, timeout.count()), "waiting for the guest to power off");
      std::this_thread::sleep_for(100ms);
    }
  });
}

Status VmManager::Stop(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  {
    // A forced stop may interrupt a pending shutdown: its task owns the VM, so
    // it is asked to force the VM off, and this call waits for it.
    MutexLock lock(&vm->mu);
    if (vm->op == VmOp::kShutdown) {
      vm->force_stop = true;
      if (!lock.WaitFor(vm->released, 30s, [&]() REQUIRES(vm->mu) { return vm->op != VmOp::kShutdown; })) {
        return Status::Unavailable("vm '" + name + "' did not stop within 30 s; see pampa task list");
      }
      return Status::Ok();
    }
  }
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kStop, VmAction::kStop));
  if (vm->State() == VmState::kCrashed) {
    SetState(*vm, VmState::kStopped);
    return PersistRuntime(*vm);
  }
  return StopLocked(*vm).Context("stopping vm " + name);
}

Status VmManager::Pause(const std::string& name) { return SwitchPaused(name, true); }
Status VmManager::Resume(const std::string& name) { return SwitchPaused(name, false); }

namespace {
Status NeedQmp(const std::string& name, const std::unique_ptr<QmpClient>& qmp) {
  if (!qmp || !qmp->connected()) return Status::Unavailable("QEMU of vm '" + name + "' does not answer on QMP");
  return Status::Ok();
}
}  // namespace

Status VmManager::SwitchPaused(const std::string& name, bool pause) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease,
                         Claim(vm, pause ? VmOp::kPause : VmOp::kResume, pause ? VmAction::kPause : VmAction::kResume));
  PAMPA_RETURN_IF_ERROR(NeedQmp(name, vm->qmp));
  PAMPA_RETURN_IF_ERROR(vm->qmp->Execute(pause ? "stop" : "cont").status());
  SetState(*vm, pause ? VmState::kPaused : VmState::kRunning);
  return Status::Ok();
}

Status VmManager::Reboot(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kReboot, VmAction::kReboot));
  PAMPA_RETURN_IF_ERROR(NeedQmp(name, vm->qmp));
  // A clean reboot through the agent when it answers; otherwise a hard reset.
  {
    PAMPA_ASSIGN_OR_RETURN(auto channel, vm->agent.Claim("a reboot", 5s));
    GuestAgent ga(vm->paths.qga());
    if (ga.Ping(1500ms).ok()) {
      auto r = ga.Call("guest-shutdown", {{"mode", "reboot"}}, 2s);
      (void)r;  // the agent may not answer: it is going down
      return Status::Ok();
    }
  }
  PAMPA_RETURN_IF_ERROR(vm->qmp->Execute("system_reset").status());
  if (vm->State() == VmState::kPaused) {
    auto r = vm->qmp->Execute("cont");
    (void)r;
    SetState(*vm, VmState::kRunning);
  }
  return Status::Ok();
}

Result<ExecResult> VmManager::Exec(const std::string& name, const std::vector<std::string>& argv,
                                   std::chrono::seconds timeout) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_RETURN_IF_ERROR(CheckAllowed(VmAction::kGuestAgent, vm->State(), name));
  PAMPA_ASSIGN_OR_RETURN(auto channel, vm->agent.Claim("a command (vm exec)", 5s));
  return GuestAgent(vm->paths.qga()).Exec(argv, timeout);
}

Status VmManager::AgentPing(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_RETURN_IF_ERROR(CheckAllowed(VmAction::kGuestAgent, vm->State(), name));
  PAMPA_ASSIGN_OR_RETURN(auto channel, vm->agent.Claim("a ping", 3s));
  return GuestAgent(vm->paths.qga()).Ping(3s);
}

Status VmManager::SendKeys(const std::string& name, const std::vector<KeyChord>& chords) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kSendKeys, VmAction::kSendKeys));
  PAMPA_RETURN_IF_ERROR(NeedQmp(name, vm->qmp));
  for (const auto& chord : chords) {
    nlohmann::json keys = nlohmann::json::array();
    for (const auto& key : chord) keys.push_back({{"type", "qcode"}, {"data", key}});
    // QEMU queues the presses and releases (hold-time apart) and answers at once.
    PAMPA_RETURN_IF_ERROR(vm->qmp->Execute("send-key", {{"keys", keys}, {"hold-time", 20}}).status());
  }
  return Status::Ok();
}

Result<nlohmann::json> VmManager::GuestAddresses(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_RETURN_IF_ERROR(CheckAllowed(VmAction::kGuestAgent, vm->State(), name));
  PAMPA_ASSIGN_OR_RETURN(auto channel, vm->agent.Claim("a look at the guest's addresses", 3s));
  PAMPA_ASSIGN_OR_RETURN(auto ifaces, GuestAgent(vm->paths.qga()).Call("guest-network-get-interfaces", {}, 3s));
  // The guest writes this answer: anything of another shape is left out.
  auto text = [](const nlohmann::json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  nlohmann::json out = nlohmann::json::array();
  if (!ifaces.is_array()) return out;
  for (const auto& i : ifaces) {
    if (!i.is_object() || text(i, "name") == "lo") continue;
    nlohmann::json addresses = nlohmann::json::array();
    auto ips = i.find("ip-addresses");
    for (const auto& a : ips != i.end() && ips->is_array() ? *ips : nlohmann::json::array()) {
      if (!a.is_object() || text(a, "ip-address").empty()) continue;
      std::string address = text(a, "ip-address");
      auto prefix = a.find("prefix");
      if (prefix != a.end() && prefix->is_number_unsigned()) address += "/" + std::to_string(prefix->get<unsigned>());
      addresses.push_back(address);
    }
    out.push_back({{"name", text(i, "name")}, {"mac", text(i, "hardware-address")}, {"addresses", addresses}});
  }
  return out;
}

Result<uint64_t> VmManager::ResizeDisk(const std::string& name, size_t index, const std::string& size) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kResizeDisk, VmAction::kResizeDisk));
  if (index >= vm->spec.disks.size()) {
    return Status::NotFound("vm '" + name + "' has no disk " + std::to_string(index) + " (it has " +
                            std::to_string(vm->spec.disks.size()) + ", numbered from 0; see pampa vm show " + name +
                            ")");
  }
  const DiskSpec& disk = vm->spec.disks[index];
  if (!QemuAlive(vm->State())) return storage_.ResizeVolume(disk.pool, disk.volume, size);
  PAMPA_ASSIGN_OR_RETURN(auto volume, storage_.GetVolume(disk.pool, disk.volume));
  PAMPA_ASSIGN_OR_RETURN(uint64_t want, ParseNewDiskSize(size, volume.virtual_size));
  if (want == volume.virtual_size) return want;
  PAMPA_RETURN_IF_ERROR(NeedQmp(name, vm->qmp));
  auto r = vm->qmp->Execute("block_resize", {{"node-name", DiskNode(DiskSlot(vm->spec, index))}, {"size", want}});
  if (!r.ok()) return r.status().Context("growing disk " + std::to_string(index) + " of vm '" + name + "'");
  return want;
}

namespace {

// Asks QEMU to take a device out and waits until the guest has let it go (a
// PCIe unplug needs the guest's consent; a SCSI one is at once).
Status Unplug(QmpClient& qmp, const std::string& id) {
  PAMPA_RETURN_IF_ERROR(qmp.Execute("device_del", {{"id", id}}).status().Context("removing " + id));
  constexpr auto kPatience = 15s;
  auto deadline = std::chrono::steady_clock::now() + kPatience;
  for (;;) {
    PAMPA_ASSIGN_OR_RETURN(auto list, qmp.Execute("qom-list", {{"path", "/machine/peripheral"}}));
    bool present = list.is_array() && std::any_of(list.begin(), list.end(), [&](const nlohmann::json& p) {
                     return p.is_object() && p.value("name", "") == id;
                   });
    if (!present) return Status::Ok();
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("the guest did not let " + id + " go within 15 s (its OS must be up and support " +
                                 "hot-plug); it stays attached: try again, or stop the VM and edit it then");
    }
    std::this_thread::sleep_for(100ms);
  }
}

}  // namespace

Status VmManager::EditLive(Vm& vm, const EditRequest& req, const VmSpec& s) {
  // Devices are named by their slots (Edit pinned them in s): what leaves
  // leaves a gap, nothing else is renumbered under the guest, and a
  // migration's far end builds the same names from the spec.
  const VmSpec before = vm.spec;
  const std::string& name = before.name;
  const size_t first_disk = s.disks.size() - req.add_disks.size(), first_nic = s.nics.size() - req.add_nics.size();
  bool sata = req.remove_disk && before.disks[*req.remove_disk].bus == DiskBus::kSata;
  for (size_t i = first_disk; i < s.disks.size(); ++i) sata = sata || s.disks[i].bus == DiskBus::kSata;
  if (sata) {
    return Status::Conflict("vm '" + name + "' is running and sata disks cannot be added or removed while it runs: " +
                            "use --bus virtio or scsi, or stop it first");
  }
  PAMPA_RETURN_IF_ERROR(NeedQmp(name, vm.qmp));
  QmpClient& qmp = *vm.qmp;
  auto quietly = [&](const std::string& command, const nlohmann::json& args) {
    if (auto r = qmp.Execute(command, args); !r.ok()) log::Warn("vm {}: {}: {}", name, command, r.status().message());
  };

  // What leaves, leaves the guest first.
  if (req.remove_disk) {
    size_t i = *req.remove_disk, slot = DiskSlot(before, i);
    PAMPA_RETURN_IF_ERROR(Unplug(qmp, DiskDeviceId(slot, before.disks[i].bus)));
    quietly("blockdev-del", {{"node-name", DiskNode(slot)}});
  }
  if (req.remove_nic) {
    size_t i = *req.remove_nic, slot = NicSlot(before, i);
    PAMPA_RETURN_IF_ERROR(Unplug(qmp, NicDeviceId(slot)));
    quietly("netdev_del", {{"id", NicNetdevId(slot)}});
    Networks::DeleteTap(TapName(before, i));
  }
  PAMPA_RETURN_IF_ERROR(ReplaceSpec(vm, s));

  // What joins, joins after the spec names it; a failure takes it all back.
  std::vector<std::string> plugged_disks, plugged_nics;
  auto plug = [&]() -> Status {
    for (size_t i = first_disk; i < s.disks.size(); ++i) {
      const DiskSpec& d = s.disks[i];
      const size_t slot = DiskSlot(s, i);
      PAMPA_ASSIGN_OR_RETURN(auto v, storage_.LocateVolume(d.pool, d.volume));
      PAMPA_RETURN_IF_ERROR(
          qmp.Execute("blockdev-add", BlockdevOptions(DiskNode(slot), v.format, v.path, false)).status());
      plugged_disks.push_back(DiskNode(slot));
      auto r = qmp.Execute("device_add", DiskDevice(slot, d.bus, 0, 0));
      if (!r.ok()) return r.status().Context("adding disk " + std::to_string(i));
    }
    for (size_t i = first_nic; i < s.nics.size(); ++i) {
      const size_t slot = NicSlot(s, i);
      std::string tap = TapName(s, i);
      PAMPA_RETURN_IF_ERROR(networks_.CreateTap(s.nics[i].network, tap).Context("network " + s.nics[i].network));
      auto r = qmp.Execute("netdev_add", NicNetdev(slot, tap));
      if (!r.ok()) {
        Networks::DeleteTap(tap);
        return r.status().Context("adding NIC " + std::to_string(i));
      }
      plugged_nics.push_back(tap);
      r = qmp.Execute("device_add", NicDevice(slot, s.nics[i].mac, 0));
      if (!r.ok()) return r.status().Context("adding NIC " + std::to_string(i));
    }
    if (req.cdrom) {
      auto r = s.cdrom.empty()
                   ? qmp.Execute("eject", {{"id", "cdrom0"}, {"force", true}})
                   : qmp.Execute(
                         "blockdev-change-medium",
                         {{"id", "cdrom0"}, {"filename", s.cdrom}, {"format", "raw"}, {"read-only-mode", "read-only"}});
      if (!r.ok()) return r.status().Context("changing the CD");
    }
    return Status::Ok();
  };
  Status st = plug();
  if (st.ok()) {
    log::Info("vm {}: devices changed while it runs", name);
    return st;
  }
  for (size_t k = 0; k < plugged_nics.size(); ++k) {
    size_t slot = NicSlot(s, first_nic + k);
    Status gone = Unplug(qmp, NicDeviceId(slot));
    if (!gone.ok()) log::Warn("vm {}: {}", name, gone.message());
    quietly("netdev_del", {{"id", NicNetdevId(slot)}});
    Networks::DeleteTap(plugged_nics[k]);
  }
  for (size_t k = 0; k < plugged_disks.size(); ++k) {
    size_t i = first_disk + k, slot = DiskSlot(s, i);
    Status gone = Unplug(qmp, DiskDeviceId(slot, s.disks[i].bus));
    if (!gone.ok()) log::Warn("vm {}: {}", name, gone.message());
    quietly("blockdev-del", {{"node-name", plugged_disks[k]}});
  }
  VmSpec back = s;
  back.disks.resize(first_disk);
  back.nics.resize(first_nic);
  back.cdrom = before.cdrom;
  if (Status undone = ReplaceSpec(vm, back); !undone.ok()) {
    log::Warn("vm {}: taking back a failed device change: {}", name, undone.message());
  }
  return st.Context("vm '" + name + "' is unchanged but for what was removed");
}

Result<ConsoleEndpoints> VmManager::Console(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  ConsoleEndpoints c{vm->paths.serial(), vm->paths.serial_log(), vm->paths.vnc(), QemuAlive(vm->State())};
  return c;
}

}  // namespace pampa
