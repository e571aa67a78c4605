#include "cluster/migration.h"

#include <sys/socket.h>

#include <cmath>

#include "base/clock.h"
#include "base/log.h"
#include "base/tcp.h"
#include "base/units.h"
#include "tls/tls_context.h"
#include "vm/vm_spec.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// How long a migration may send nothing before it is given up.
constexpr std::chrono::seconds kStallTimeout{10};

double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// The status of the migration QEMU reports ("none" before one started).
std::string MigrationStatus(QmpClient& qmp, json* info = nullptr) {
  auto r = qmp.Execute("query-migrate", nullptr, 5s);
  if (!r.ok()) return "error: " + r.status().message();
  if (info) *info = *r;
  return r->value("status", "none");
}

// Why a call to another host did not succeed: the call's own failure, or the
// "error" of an answer of 300 or more; "" when it succeeded.
std::string PeerFailure(const Result<PeerReply>& reply) {
  if (!reply.ok()) return reply.status().message();
  const PeerReply& r = reply.value();
  if (r.status < 300) return "";
  auto answer = json::parse(r.body, nullptr, false);
  return answer.is_object() ? answer.value("error", r.body) : r.body;
}

// The name both QEMUs know the migration's stream by (QMP getfd).
constexpr char kStreamFd[] = "migration";

// The target's receive buffer is capped at 512 KiB. What sits there when
// the source's QEMU has sent its last page is what the target still loads
// while the guest is stopped: an idle guest's zero pages are a few bytes each
// on the wire but a page to fill each at the target, and the kernel's own
// tuning (it grows the buffer to MiBs) left the target tens of ms behind. A
// smaller cap slowed QEMU's copy instead: with 192 KiB (the most SO_RCVBUF
// may set under the default net.core.rmem_max) the source's migration
// thread waited on a full window whenever the target's QEMU was off the two
// cores (QEMU's own total 1.23x by hand's); 512 KiB copies as fast as the
// kernel's MiBs with the downtime of 192 KiB (docs/design.md has the
// measurements). SO_RCVBUFFORCE passes rmem_max (pampad runs as root);
// without the right, the most SO_RCVBUF gives. A round trip at which the cap
// would hold back a 10 Gbit/s link (over about 400 us, longer than a LAN's)
// keeps the kernel's tuning. The source's send buffer keeps the kernel's
// tuning: a small one slowed a busy guest's copy (1.6x).
void SizeReceiveBuffer(int fd) {
  constexpr double kLinkBytesPerUs = 1250;  // 10 Gbit/s
  constexpr int kMost = 512 << 10;
  if (kLinkBytesPerUs * double(TcpRoundTrip(fd).count()) > kMost) return;
  int bytes = kMost;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
}

// Source: connects to where host `to` waits for vm's stream (prep's
// "stream") and has it hand the connection to its QEMU; the socket for the
// QEMU here.
Result<Fd> ConnectStream(Cluster& cluster, const std::string& to, const std::string& vm, const json& prep) {
  json at = prep.value("stream", json::object());
  std::string host = at.is_object() ? at.value("host", "") : "";
  int port = at.is_object() ? at.value("port", 0) : 0;
  if (host.empty() || port <= 0 || port > 65535) {
    return Status::Internal("host " + to + " did not say where to send the VM: " + prep.dump());
  }
  auto fd = ConnectTcp(host, uint16_t(port), 10s);
  if (!fd.ok()) return fd.status().Context("host " + to + " cannot take the VM");
  auto taken = cluster.Call(to, {"POST", "/api/v1/migrations/incoming/" + vm + "/stream", "", ""}, 20s);
  if (std::string why = PeerFailure(taken); !why.empty()) {
    return Status::Unavailable("host " + to + " did not take the VM's stream: " + why);
  }
  return fd;
}

// Asks host `to` to expect a VM's move (POST /migrations/incoming); its answer.
Result<json> PrepareTarget(Cluster& cluster, const std::string& to, const json& body,
                           std::chrono::milliseconds timeout) {
  auto prepared = cluster.Call(to, {"POST", "/api/v1/migrations/incoming", body.dump(), ""}, timeout);
  if (!prepared.ok()) return prepared.status().Context("host " + to + " cannot take the VM");
  if (prepared->status >= 300) return Status::Unavailable("host " + to + " refused the VM: " + PeerFailure(prepared));
  auto answer = json::parse(prepared->body, nullptr, false);
  if (!answer.is_object()) return Status::Internal("host " + to + " answered without JSON: " + prepared->body);
  return answer;
}

// Tells host `to` that vm's move will not be (it drops what it made for it);
// the call's failure, if any (the target then drops it by itself).
Status DropAtTarget(Cluster& cluster, const std::string& to, const std::string& vm) {
  return cluster.Call(to, {"DELETE", "/api/v1/migrations/incoming/" + vm, "", ""}, 20s).status();
}

// Copies the disks into the target's export (nbd: {"host", "port"}) until
// every copy is in step with the guest. Fails on a cancel, a failed copy, or
// nothing copied for kStallTimeout.
Status CopyDisks(DiskMirror& mirror, const json& nbd, uint64_t bytes_per_s, const std::string& to, const StreamTls& tls,
                 TaskContext& ctx) {
  std::string host = nbd.value("host", "");
  int port = nbd.value("port", 0);
  if (host.empty() || port <= 0) return Status::Internal("host " + to + " did not say where to copy the disks");
  ctx.Progress(0.05, "copying the disks to host " + to);
  PAMPA_RETURN_IF_ERROR(mirror.Start(host, port, bytes_per_s, tls));
  // A rate-limited copy moves in bursts of up to its 16 MiB buffer.
  auto stall_timeout =
      kStallTimeout + (bytes_per_s > 0 ? std::chrono::seconds(2 * (uint64_t{16} << 20) / bytes_per_s) : 0s);
  uint64_t last_done = 0;
  auto last_progress = Clock::now(), t0 = Clock::now();
  while (true) {
    if (ctx.cancelled()) return Status::Cancelled("cancelled while copying the disks");
    PAMPA_ASSIGN_OR_RETURN(DiskMirror::Progress p, mirror.Poll());
    if (p.ready) {
      ctx.Log("disks copied to host " + to + ": " + FormatSize(p.total) + " in " + std::to_string(int(MsSince(t0))) +
              " ms");
      return Status::Ok();
    }
    if (p.done != last_done) {
      last_done = p.done;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > stall_timeout) {
      mirror.CutLinks();  // writes in a copy wait for the target, before `ready` too
      return Status::Unavailable("no disk data reached host " + to + " for " + std::to_string(stall_timeout.count()) +
                                 " s (link down?)");
    }
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    double rate = secs > 0 ? double(p.done) / secs : 0;
    double eta = rate > 0 ? double(p.total - std::min(p.done, p.total)) / rate : 0;
    ctx.Progress(p.total > 0 ? 0.05 + 0.45 * double(p.done) / double(p.total) : 0.05,
                 "copying disks: " + FormatSize(p.done) + " of " + FormatSize(p.total) +
                     (eta > 0 ? ", about " + std::to_string(int(std::ceil(eta))) + " s to go" : ""));
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace

Result<MigrateRequest> ParseMigrateRequest(const json& body) {
  if (!body.is_object()) return Status::Invalid("the request body must be a JSON object");
  MigrateRequest r;
  for (auto& [k, v] : body.items()) {
    if (k != "to" && k != "bandwidth_mib" && k != "max_downtime_ms") {
      return Status::Invalid("unknown field '" + k + "' (known fields: bandwidth_mib, max_downtime_ms, to)");
    }
  }
  if (!body.contains("to") || !body["to"].is_string()) {
    return Status::Invalid("field 'to' (the target host) is required (see: pampa host list)");
  }
  r.to = body["to"];
  PAMPA_RETURN_IF_ERROR(ValidateName("host", r.to));
  if (body.contains("bandwidth_mib")) {
    if (!body["bandwidth_mib"].is_number_integer() || body["bandwidth_mib"].get<int64_t>() < 1 ||
        body["bandwidth_mib"].get<int64_t>() > 1000000) {
      return Status::Invalid("field 'bandwidth_mib' must be MiB/s from 1 to 1000000");
    }
    r.bandwidth_mib = body["bandwidth_mib"].get<uint64_t>();
  }
  if (body.contains("max_downtime_ms")) {
    if (!body["max_downtime_ms"].is_number_integer() || body["max_downtime_ms"].get<int64_t>() < 1 ||
        body["max_downtime_ms"].get<int64_t>() > 60000) {
      return Status::Invalid("field 'max_downtime_ms' must be milliseconds from 1 to 60000");
    }
    r.max_downtime_ms = body["max_downtime_ms"].get<int>();
  }
  return r;
}

struct Migrations::Incoming {
  VmManager::Hold hold;
  std::string name, from;
  bool paused = false;    // stays paused when adopted
  VmSpec copies;          // the volumes made here for the disk copies (spec.disks)
  bool exported = false;  // their NBD export runs
  Fd listener;            // where the source connects its stream, until it did
  Clock::time_point since = Clock::now();
  std::optional<Clock::time_point> completed;  // when QEMU was first seen done
};

Migrations::Migrations(VmManager& vms, Storage& storage, Cluster& cluster, Tasks& tasks)
    : vms_(vms), storage_(storage), cluster_(cluster), tasks_(tasks) {}

Migrations::~Migrations() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  // Waiting QEMUs stay: the next pampad settles them from the store (resumed
  // where the store names this host, stopped otherwise).
  MutexLock lock(&mu_);
  incoming_.clear();
}

std::unique_ptr<Migrations::Incoming> Migrations::TakeSoon(const std::string& name) {
  std::unique_ptr<Incoming> in;
  for (int i = 0; i < 1500 && !(in = Take(name)); ++i) std::this_thread::sleep_for(10ms);
  return in;
}

std::unique_ptr<Migrations::Incoming> Migrations::Take(const std::string& name) {
  MutexLock lock(&mu_);
  auto it = incoming_.find(name);
  if (it == incoming_.end()) return nullptr;
  auto in = std::move(it->second);
  incoming_.erase(it);
  return in;
}

void Migrations::PutBack(std::unique_ptr<Incoming> incoming) {
  {
    MutexLock lock(&mu_);
    incoming_[incoming->name] = std::move(incoming);
  }
  changed_.notify_all();
}

Result<std::string> Migrations::Migrate(const std::string& name, const MigrateRequest& req) {
  if (!cluster_.pooled()) {
    return Status::Invalid("this host is not in a pool: there is no host to migrate to (start pampad with --cluster)");
  }
  if (req.to == cluster_.config().host) return Status::Invalid("vm '" + name + "' already runs on host " + req.to);
  PAMPA_RETURN_IF_ERROR(vms_.Show(name).status());
  PAMPA_RETURN_IF_ERROR(cluster_.Host(req.to).status());
  return tasks_.Start("vm-migrate", name, [this, name, req](TaskContext& ctx) { return MigrateNow(name, req, ctx); });
}

Result<json> Migrations::MigrateNow(const std::string& name, const MigrateRequest& req, TaskContext& ctx) {
  const std::string& to = req.to;
  auto t0 = Clock::now();
  PAMPA_ASSIGN_OR_RETURN(auto hold, vms_.HoldVm(name, VmOp::kMigrate, VmAction::kMigrate));
  const VmSpec spec = hold.spec();
  PAMPA_ASSIGN_OR_RETURN(std::vector<LocalDisk> local, LocalDisks(spec));
  if (spec.firmware == "uefi") {
    return Status::Invalid("vm " + name +
                           " boots with UEFI, whose variable store is kept per host: moving it is "
                           "not supported yet");
  }
  PAMPA_RETURN_IF_ERROR(cluster_.CheckPlacement(to, spec.memory_mib, spec.cpus));
  VmState state = hold.state();
  ctx.Log("moving vm " + name + " (" + std::string(Name(state)) + ") from host " + cluster_.config().host +
          " to host " + to);

  VmSpec copied = spec;  // the VM's disks that are copied (this host's to remove after)
  copied.disks.clear();
  for (const LocalDisk& d : local) copied.disks.push_back(spec.disks[d.index]);
  // Whatever happens next, the record of this host's copies goes with this
  // call (a pampad dying before settles it at its next start).
  struct ClearOnReturn {
    std::function<void()> f;
    ~ClearOnReturn() { f(); }
  } clear_intent{[&] {
    if (!local.empty()) (void)vms_.ClearIntent(VmManager::kMigrateOut, name);
  }};
  if (!local.empty() && QemuAlive(state)) {
    PAMPA_ASSIGN_OR_RETURN(json listed, vms_.ListSnapshots(name));
    if (size_t n = listed.value("snapshots", json::array()).size(); n > 0) {
      return Status::Invalid("vm " + name + " has " + std::to_string(n) +
                             " snapshot(s), kept inside its disk images in this host's own pool; a live move "
                             "copies the disks' current state only: delete them first (pampa snapshot delete), or "
                             "keep the VM's disks in a shared pool");
    }
  }

  if (!QemuAlive(state)) {
    // Cold: the disks of this host's own go whole (with their snapshots and
    // bitmaps), then the store record changes hosts and the target takes it in.
    if (!local.empty()) {
      PAMPA_RETURN_IF_ERROR(vms_.WriteIntent(VmManager::kMigrateOut, copied));
      PAMPA_RETURN_IF_ERROR(SendDisks(spec, local, to, ctx));
    }
    auto handed = vms_.HandOver(hold, to);
    if (!handed.ok() || !*handed) {
      if (!local.empty()) (void)DropAtTarget(cluster_, to, name);
      PAMPA_RETURN_IF_ERROR(handed.status());
      return Status::Conflict("vm " + name + " changed while it was being moved: try again");
    }
    auto accepted = cluster_.Call(to, {"POST", "/api/v1/migrations/incoming/" + name + "/accept",
                                       json{{"run", false}, {"cold", true}}.dump(), ""});
    bool taken = PeerFailure(accepted).empty();
    if (!taken) ctx.Log("host " + to + " did not take the VM in yet; it will when its pampad next starts");
    RemoveSourceCopies(copied, taken, to, ctx);
    return json{{"from", cluster_.config().host}, {"to", to}, {"live", false}, {"total_ms", MsSince(t0)}};
  }

  QmpClient* qmp = hold.qmp();
  if (!qmp) {
    return Status::Unavailable("QEMU of vm " + name + " does not answer; try again once vm show says it runs");
  }
  bool was_paused = state == VmState::kPaused;
  ctx.Progress(0, "starting the VM's QEMU on host " + to);
  json copies = json::array();
  for (const LocalDisk& d : local) copies.push_back(ToJson(d));
  const double before_ms = MsSince(t0);
  PAMPA_ASSIGN_OR_RETURN(
      json prep,
      PrepareTarget(
          cluster_, to,
          json{{"spec", ToJson(spec)}, {"from", cluster_.config().host}, {"paused", was_paused}, {"disks", copies}},
          60s));
  const double prepared_ms = MsSince(t0);
  auto abort_target = [&](const std::string& why) {
    if (Status st = DropAtTarget(cluster_, to, name); !st.ok())
      ctx.Log("host " + to + " did not answer the abort (" + st.message() + "); it drops the VM by itself");
    ctx.Log("migration abandoned: " + why + "; the VM runs on here");
  };

  uint64_t bandwidth = req.bandwidth_mib > 0 ? req.bandwidth_mib << 20 : uint64_t{1} << 40;
  // In a pool with certificates both streams are TLS, and the target must
  // prove it is host `to`.
  StreamTls tls;
  if (const auto& pool_tls = cluster_.config().tls) {
    tls = {"pampa-tls-out", to};
    if (Status st = AddTlsCreds(*qmp, tls.creds, pool_tls->paths().qemu_dir(), "client"); !st.ok()) {
      abort_target(st.message());
      return st;
    }
  }

  // The disks in this host's own pools first: once every copy is in step, the
  // guest's writes reach both until the switch-over.
  std::optional<DiskMirror> mirror;
  if (!local.empty()) {
    PAMPA_RETURN_IF_ERROR(vms_.WriteIntent(VmManager::kMigrateOut, copied));
    mirror.emplace(*qmp, local);
    Status st = CopyDisks(*mirror, prep.value("nbd", json::object()), req.bandwidth_mib << 20, to, tls, ctx);
    if (!st.ok()) {
      mirror->Abandon();
      abort_target(st.message());
      if (ctx.cancelled()) return Status::Cancelled("migration of vm " + name + " cancelled: it runs on here");
      return st.Context("migration of vm " + name + " to host " + to + " failed (the VM runs on here)");
    }
  }
  const double ram_from = local.empty() ? 0.05 : 0.5;  // progress: the disks first
  const double copied_ms = MsSince(t0);

  // No return-path: it makes QEMU's downtime wait for the target's word
  // (measured: 6 -> 82 ms idle); the target confirms over its API instead.
  json capabilities = json::array({{{"capability", "auto-converge"}, {"state", true}}});
  if (!local.empty()) {
    // Stop before the device state goes, to finish the disk copies; and
    // bring the backup bitmaps along (they live in this host's images).
    capabilities.push_back({{"capability", "pause-before-switchover"}, {"state", true}});
    capabilities.push_back({{"capability", "dirty-bitmaps"}, {"state", true}});
  }
  Status st = qmp->Execute("migrate-set-capabilities", json{{"capabilities", capabilities}}).status();
  if (st.ok()) {
    // tls-creds "" turns TLS off explicitly: a VM that came in over TLS keeps its setting.
    st = qmp->Execute("migrate-set-parameters", json{{"downtime-limit", req.max_downtime_ms},
                                                     {"max-bandwidth", bandwidth},
                                                     {"tls-creds", tls.creds},
                                                     {"tls-hostname", tls.hostname}})
             .status();
  }
  if (st.ok()) {
    // The stream is a socket the pampads opened, so that the target's
    // receive buffer is sized (SizeReceiveBuffer); QEMU gets its own copy.
    auto stream = ConnectStream(cluster_, to, name, prep);
    st = stream.status();
    if (st.ok()) st = qmp->PassFd(kStreamFd, stream->get());
    if (st.ok()) st = qmp->Execute("migrate", json{{"uri", std::string("fd:") + kStreamFd}}).status();
  }
  if (!st.ok()) {
    if (mirror) mirror->Abandon();
    abort_target(st.message());
    return st.Context("migration of vm " + name + " to host " + to + " did not start (the VM runs on here)");
  }

  const double started_ms = MsSince(t0);
  json info;
  std::string status, copy_failed;
  bool cancel_sent = false, stalled = false, copies_finished = false;
  uint64_t last_sent = 0;
  auto last_progress = Clock::now(), last_answer = Clock::now();
  std::optional<Clock::time_point> cancelled_at;
  while (true) {
    status = MigrationStatus(*qmp, &info);
    if (status == "completed" || status == "failed" || status == "cancelled") break;
    if (status == "pre-switchover" && mirror && !cancel_sent && !copies_finished) {
      // The guest is stopped: the disk copies finish, then the device state goes.
      copies_finished = true;
      Status finished = mirror->Finish();
      if (finished.ok()) finished = qmp->Execute("migrate-continue", json{{"state", "pre-switchover"}}).status();
      last_progress = Clock::now();
      if (!finished.ok()) {
        copy_failed = finished.message();
        (void)qmp->Execute("migrate_cancel");
        cancel_sent = true;
        cancelled_at = Clock::now();
      }
      continue;
    }
    if (status.rfind("error", 0) == 0) {
      // QEMU did not answer this once; it may still be migrating.
      if (Clock::now() - last_answer < 5s) {
        std::this_thread::sleep_for(100ms);
        continue;
      }
      if (!cancel_sent) ctx.Log("QEMU has not answered for 5 s (" + status + "): cancelling");
      stalled = true;
    } else {
      last_answer = Clock::now();
    }
    if (cancelled_at && Clock::now() - *cancelled_at > 30s) {
      // Neither completed nor cancelled: nobody can tell where the guest is.
      return Status::Internal("QEMU of vm " + name + " neither finished nor cancelled its migration in 30 s (" +
                              status + "); the VM stays held here: look at its QEMU log " + hold.paths().qemu_log() +
                              " and restart pampad to settle it");
    }
    const json ram = info.value("ram", json::object());
    uint64_t sent = ram.value("transferred", uint64_t{0}), left = ram.value("remaining", uint64_t{0});
    if (sent != last_sent) {
      last_sent = sent;
      last_progress = Clock::now();
    }
    // A target that stopped taking data (its link is down, it hangs) would
    // hold the migration until TCP gives up, many minutes later.
    if (!cancel_sent && Clock::now() - last_progress > kStallTimeout) {
      ctx.Log("no data reached host " + to + " for " + std::to_string(kStallTimeout.count()) + " s: cancelling");
      stalled = true;
    }
    if ((ctx.cancelled() || stalled) && !cancel_sent) {
      // A target that takes no data holds the guest's writes in the disk
      // copies, and the cancel would drain them in QEMU's main loop: cut
      // first. A user's cancel ends the copies plainly instead (a cut one
      // ends the way a forced cancel does), cutting only those that do not
      // end in 10 s.
      if (mirror && stalled) {
        mirror->CutLinks();
      } else if (mirror) {
        mirror->Abandon();
      }
      (void)qmp->Execute("migrate_cancel");
      cancel_sent = true;
      cancelled_at = Clock::now();
    }
    double mbps = ram.value("mbps", 0.0);
    double eta = mbps > 0 ? left * 8.0 / (mbps * 1e6) : 0;
    ctx.Progress(sent + left > 0 ? ram_from + (0.95 - ram_from) * double(sent) / double(sent + left) : ram_from,
                 status + ": " + FormatSize(sent) + " sent, " + FormatSize(left) + " left" +
                     (eta > 0 ? ", about " + std::to_string(int(std::ceil(eta))) + " s to go" : ""));
    std::this_thread::sleep_for(10ms);
  }
  auto switched = Clock::now();
  if (status != "completed") {
    if (mirror) mirror->Abandon();
    std::string why = !copy_failed.empty() ? copy_failed
                      : stalled            ? "host " + to + " stopped taking data (link down?)"
                      : status == "cancelled"
                          ? "cancelled"
                          : info.value("error-desc", status.rfind("error", 0) == 0 ? status : "failed");
    abort_target(why);
    // QEMU runs the guest on after a failed migration; make sure it does.
    if (!was_paused) (void)qmp->Execute("cont");
    if (ctx.cancelled()) return Status::Cancelled("migration of vm " + name + " cancelled: it runs on here");
    return Status::Unavailable("migration of vm " + name + " to host " + to + " failed: " + why +
                               " (the VM runs on here)");
  }
  double qemu_downtime = info.value("downtime", 0.0), qemu_total = info.value("total-time", 0.0);
  uint64_t transferred = info.value("ram", json::object()).value("transferred", uint64_t{0});

  // QEMU here has sent everything; the target confirms it has loaded all of
  // it (its QEMU completed) before the store names it.
  auto confirmed = cluster_.Call(
      to, {"POST", "/api/v1/migrations/incoming/" + name + "/accept", json{{"check", true}}.dump(), ""}, 40s);
  const double confirm_ms = MsSince(switched);
  if (!confirmed.ok() || confirmed->status >= 300) {
    std::string why = PeerFailure(confirmed);
    if (!was_paused) (void)qmp->Execute("cont");
    abort_target("host " + to + " did not confirm it received the VM: " + why);
    return Status::Unavailable("host " + to + " did not confirm it received vm " + name + " (" + why +
                               "): the VM runs on here");
  }
  // The target starts the CPUs once the store names it, before the paused
  // QEMU here is stopped: the guest's downtime ends with that answer.
  Result<PeerReply> accepted = Status::Unavailable("not asked");
  double downtime = 0, asked = 0, target_ms = 0;
  const double switched_ms = std::chrono::duration<double, std::milli>(switched - t0).count();
  auto handed = vms_.HandOver(hold, to, [&] {
    asked = MsSince(switched);
    accepted = cluster_.Call(to,
                             {"POST", "/api/v1/migrations/incoming/" + name + "/accept",
                              json{{"run", !was_paused}, {"cold", false}}.dump(), ""},
                             30s);
    // The guest runs again when the target's CPUs start: the target says how
    // long after our call that was (before it recorded its runtime and
    // answered); without that, until its answer.
    auto answer = accepted.ok() ? json::parse(accepted->body, nullptr, false) : json();
    target_ms = answer.is_object() && answer.contains("resumed_ms") ? answer.value("resumed_ms", 0.0)
                                                                    : MsSince(switched) - asked;
    downtime = qemu_downtime + asked + target_ms;
  });
  if (!handed.ok()) {
    // Nobody knows who owns it: neither side may run it. The target's reaper
    // adopts it if the store does name it; otherwise it stays paused here.
    return handed.status().Context("the store did not confirm the switch (the VM is paused; check with pampa vm show " +
                                   name + ")");
  }
  if (!*handed) {
    if (!was_paused) (void)qmp->Execute("cont");
    abort_target("the VM's record changed during the migration");
    return Status::Conflict("vm " + name + " changed during the migration: it runs on here; try again");
  }
  if (!accepted.ok() || accepted->status >= 300) {
    ctx.Log("host " + to + " did not confirm it runs the VM (" +
            (accepted.ok() ? accepted->body : accepted.status().message()) + "); its reaper starts it");
  }
  RemoveSourceCopies(copied, PeerFailure(accepted).empty(), to, ctx);
  const double running_ms = switched_ms + asked + target_ms;
  ctx.Log("downtime " + std::to_string(int(downtime)) + " ms (QEMU's " + std::to_string(int(qemu_downtime)) +
          " ms), total " + std::to_string(int(MsSince(t0))) + " ms");
  return json{{"from", cluster_.config().host},
              {"to", to},
              {"live", true},
              {"downtime_ms", downtime},
              {"qemu_downtime_ms", qemu_downtime},
              {"qemu_total_ms", qemu_total},
              // The handover's parts of the downtime: the target's word that
              // it has everything, the store naming it, its CPUs starting.
              {"handover_ms", {{"confirm", confirm_ms}, {"store", asked - confirm_ms}, {"target", target_ms}}},
              {"total_ms", MsSince(t0)},
              // Until the guest ran on the target (the span QEMU by hand is
              // timed over); the task goes on to stop the QEMU here.
              {"running_ms", running_ms},
              // Where the time went, from the task's start (ms): for
              // comparing with QEMU's own total (bench/pool_bench.py).
              {"steps_ms",
               {{"checked", before_ms},
                {"target_started", prepared_ms},
                {"disks_copied", copied_ms},
                {"memory_started", started_ms},
                {"memory_sent", switched_ms},
                {"confirmed", switched_ms + confirm_ms},
                {"named", switched_ms + asked},
                {"running", running_ms}}},
              {"transferred", transferred}};
}

Status Migrations::SendDisks(const VmSpec& spec, const std::vector<LocalDisk>& local, const std::string& to,
                             TaskContext& ctx) {
  json copies = json::array();
  uint64_t total = 0;
  for (const LocalDisk& d : local) copies.push_back(ToJson(d));
  PAMPA_RETURN_IF_ERROR(
      PrepareTarget(cluster_, to,
                    json{{"spec", ToJson(spec)}, {"from", cluster_.config().host}, {"disks", copies}, {"cold", true}},
                    30s)
          .status());
  std::vector<VolumeInfo> files;
  for (const LocalDisk& d : local) {
    auto vol = storage_.GetVolume(spec.disks[d.index].pool, spec.disks[d.index].volume);
    if (!vol.ok()) return vol.status();
    total += vol->allocated;
    files.push_back(*vol);
  }
  uint64_t sent = 0;
  for (const VolumeInfo& vol : files) {
    ctx.Progress(0.05 + 0.9 * double(sent) / double(std::max<uint64_t>(total, 1)),
                 "copying volume " + vol.name + " (" + FormatSize(vol.allocated) + ") to host " + to);
    // At 20 MiB/s at worst, and a minute besides.
    auto timeout = std::chrono::seconds(60 + vol.allocated / (20 << 20));
    auto put = cluster_.PutFile(
        to,
        "/api/v1/migrations/incoming/" + spec.name + "/volumes/" + vol.pool + "/" + vol.name + "?format=" + vol.format,
        vol.path, timeout);
    std::string why = PeerFailure(put);
    if (!why.empty()) {
      (void)DropAtTarget(cluster_, to, spec.name);
      return Status::Unavailable("copying volume " + vol.name + " to host " + to + " failed: " + why +
                                 " (the VM stays here)");
    }
    sent += vol.allocated;
  }
  ctx.Log("copied " + std::to_string(files.size()) + " volume(s), " + FormatSize(sent) + ", to host " + to);
  return Status::Ok();
}

void Migrations::RemoveSourceCopies(const VmSpec& copied, bool taken, const std::string& to, TaskContext& ctx) {
  if (copied.disks.empty()) return;
  if (taken) {
    vms_.RemoveVolumes(copied);
    ctx.Log("removed this host's copy of the VM's disks");
  } else {
    // Until the target says it has the VM, this copy may be the only good one.
    ctx.Log("kept this host's copy of the VM's disks: remove it (pampa volume delete) once the VM shows on " + to);
  }
}

Result<std::vector<LocalDisk>> Migrations::LocalDisks(const VmSpec& spec) {
  std::vector<LocalDisk> local;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    PAMPA_ASSIGN_OR_RETURN(PoolInfo pool, storage_.GetPool(spec.disks[i].pool));
    if (pool.type == "shared") continue;
    if (!spec.disks[i].base.empty()) {
      return Status::Conflict("vm '" + spec.name + "' is a linked clone: its disk " + std::to_string(i) +
                              " reads from template disk " + spec.disks[i].base +
                              ", which stays on this host; make a full clone to move it (pampa vm clone " + spec.name +
                              " NEW)");
    }
    PAMPA_ASSIGN_OR_RETURN(VolumeInfo vol, storage_.GetVolume(pool.name, spec.disks[i].volume));
    local.push_back({i, vol.format, vol.virtual_size, DiskSlot(spec, i)});
  }
  return local;
}

Result<std::string> Migrations::Maintenance(bool on) {
  PAMPA_RETURN_IF_ERROR(cluster_.SetMaintenance(cluster_.config().host, on));
  if (!on) return std::string();
  return tasks_.Start("host-evacuate", cluster_.config().host, [this](TaskContext& ctx) -> Result<json> {
    json moved = json::array(), failed = json::array();
    std::vector<json> vms = vms_.List();
    int done = 0;
    for (const json& vm : vms) {
      std::string name = vm.value("name", "");
      VmState state = VmState::kStopped;
      ParseVmState(vm.value("state", ""), &state);
      ++done;
      if (!QemuAlive(state)) continue;
      if (ctx.cancelled()) return Status::Cancelled("evacuation cancelled; " + std::to_string(moved.size()) + " moved");
      auto to = cluster_.Place(vm.value("memory_mib", uint64_t{0}), vm.value("cpus", 1));
      SubtaskContext step(ctx, double(done - 1) / double(vms.size()), double(done) / double(vms.size()),
                          "vm " + name + ": ");
      Result<json> r = to.ok() ? MigrateNow(name, MigrateRequest{*to}, step) : Result<json>(to.status());
      if (r.ok()) {
        ctx.Log("vm " + name + " moved to host " + *to);
        moved.push_back({{"vm", name}, {"to", *to}, {"downtime_ms", r->value("downtime_ms", 0.0)}});
      } else {
        ctx.Log("vm " + name + " stays: " + r.status().message());
        failed.push_back({{"vm", name}, {"error", r.status().message()}});
      }
      ctx.Progress(double(done) / double(vms.size()), "moved " + std::to_string(moved.size()) + " VM(s)");
    }
    if (!failed.empty()) {
      return Status::Unavailable(
          std::to_string(failed.size()) + " VM(s) could not be moved: " + failed[0].value("vm", "") + ": " +
          failed[0].value("error", "") + " (the host is in maintenance; move them by hand or try again)");
    }
    return json{{"moved", moved}};
  });
}

Result<VmSpec> Migrations::CheckCopies(const VmSpec& spec, const std::vector<LocalDisk>& copies) {
  VmSpec made = spec;
  made.disks.clear();
  std::vector<bool> copied(spec.disks.size(), false);
  for (const LocalDisk& c : copies) {
    const DiskSpec& d = spec.disks.at(c.index);
    copied[c.index] = true;
    auto pool = storage_.GetPool(d.pool);
    if (!pool.ok() || pool->type == "shared") {
      return Status::Invalid("host " + cluster_.config().host + " has no pool '" + d.pool + "' of its own for disk " +
                             std::to_string(c.index) + ": create one there (pampa pool create " + d.pool +
                             " --path DIR)");
    }
    if (storage_.LocateVolume(d.pool, d.volume).ok()) {
      return Status::Conflict("host " + cluster_.config().host + " already has a volume '" + d.volume +
                              "' in its pool '" + d.pool + "'");
    }
    if (pool->available < c.size) {
      return Status::Invalid("host " + cluster_.config().host + "'s pool '" + d.pool + "' has " +
                             FormatSize(pool->available) + " free, too little for disk " + std::to_string(c.index) +
                             " (" + FormatSize(c.size) + ")");
    }
    made.disks.push_back(d);
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    if (!copied[i]) PAMPA_RETURN_IF_ERROR(storage_.LocateVolume(spec.disks[i].pool, spec.disks[i].volume).status());
  }
  return made;
}

Status Migrations::PrepareCold(const VmSpec& spec, const std::vector<LocalDisk>& copies) {
  if (!cluster_.pooled()) return Status::Invalid("this host is not in a pool");
  PAMPA_ASSIGN_OR_RETURN(VmSpec made, CheckCopies(spec, copies));
  return vms_.WriteIntent(VmManager::kMigrateIn, made);
}

Result<std::string> Migrations::IncomingVolumeFile(const std::string& vm, const std::string& pool,
                                                   const std::string& volume, const std::string& format,
                                                   uint64_t length) {
  PAMPA_ASSIGN_OR_RETURN(auto expected, vms_.ReadIntent(VmManager::kMigrateIn, vm));
  bool listed = false;
  for (const DiskSpec& d : expected ? expected->disks : std::vector<DiskSpec>{}) {
    listed = listed || (d.pool == pool && d.volume == volume);
  }
  if (!listed) return Status::NotFound("no move of vm '" + vm + "' expects volume " + pool + "/" + volume + " here");
  return storage_.IncomingVolumeFile(pool, volume, format, length);
}

Status Migrations::PlaceIncomingVolume(const std::string& vm, const std::string& pool, const std::string& volume,
                                       const std::string& format, const std::string& file) {
  auto placed = storage_.PlaceIncomingVolume(pool, volume, format, file);
  if (placed.ok()) log::Info("vm {}: volume {}/{} came in ({})", vm, pool, volume, FormatSize(placed->allocated));
  return placed.status();
}

Result<json> Migrations::PrepareIncoming(const VmSpec& spec, const std::string& from, bool paused,
                                         const std::vector<LocalDisk>& copies) {
  if (!cluster_.pooled()) return Status::Invalid("this host is not in a pool");
  PAMPA_ASSIGN_OR_RETURN(VmSpec made, CheckCopies(spec, copies));  // the volumes made here for the copies
  std::string host, port;
  PAMPA_RETURN_IF_ERROR(ParsePeerUrl(cluster_.config().url, &host, &port));

  auto remove_made = [&] {
    vms_.RemoveVolumes(made);
    (void)vms_.ClearIntent(VmManager::kMigrateIn, spec.name);
  };
  if (!copies.empty()) {
    PAMPA_RETURN_IF_ERROR(vms_.WriteIntent(VmManager::kMigrateIn, made));
    for (const LocalDisk& c : copies) {
      const DiskSpec& d = spec.disks[c.index];
      auto vol = storage_.CreateVolume(d.pool, d.volume, c.size, c.format);
      if (!vol.ok()) {
        remove_made();
        return vol.status().Context("making disk " + std::to_string(c.index) + " for its copy");
      }
    }
  }
  auto hold = vms_.StartIncoming(spec);
  if (!hold.ok()) {
    remove_made();
    return hold.status();
  }
  QmpClient* qmp = hold->qmp();
  Status st = qmp ? Status::Ok() : Status::Unavailable("QEMU does not answer");
  if (st.ok() && !copies.empty()) {
    st = qmp->Execute("migrate-set-capabilities",
                      json{{"capabilities", json::array({{{"capability", "dirty-bitmaps"}, {"state", true}}})}})
             .status();
  }
  // In a pool with certificates only a host of the pool may send the VM.
  StreamTls tls;
  if (const auto& pool_tls = cluster_.config().tls; st.ok() && pool_tls) {
    tls.creds = "pampa-tls-in";
    st = AddTlsCreds(*qmp, tls.creds, pool_tls->paths().qemu_dir(), "server");
    if (st.ok()) st = qmp->Execute("migrate-set-parameters", json{{"tls-creds", tls.creds}}).status();
  }
  // The source connects here, and TakeStream hands the connection to QEMU.
  uint16_t stream_port = 0;
  Result<Fd> listener = Status::Unavailable("not listening");
  if (st.ok()) {
    listener = ListenTcp(host, 0, &stream_port);
    st = listener.status();
  }
  json answer = {{"stream", {{"host", host}, {"port", stream_port}}}};
  if (st.ok() && !copies.empty()) {
    auto nbd_port = ExportForMirror(*qmp, host, copies, tls);
    if (nbd_port.ok())
      answer["nbd"] = {{"host", host}, {"port", *nbd_port}};
    else
      st = nbd_port.status();
  }
  if (!st.ok()) {
    vms_.DropIncoming(*hold);
    remove_made();
    return st.Context("waiting for the migration");
  }
  auto in = std::make_unique<Incoming>();
  in->hold = std::move(*hold);
  in->name = spec.name;
  in->from = from;
  in->paused = paused;
  in->copies = made;
  in->exported = !copies.empty();
  in->listener = std::move(*listener);
  PutBack(std::move(in));
  log::Info("vm {}: waiting for its migration from host {} on port {}{}", spec.name, from, stream_port,
            copies.empty() ? "" : " (and its disks over NBD)");
  return answer;
}

Status Migrations::AcceptIncoming(const std::string& name, bool run, bool cold, bool check, double* resumed_ms) {
  auto t0 = Clock::now();
  if (cold) {
    // This host's copy of the store may be a moment behind the source's write.
    Status st;
    for (int i = 0; i < 400; ++i) {
      st = vms_.Adopt(name);
      if (st.code() != ErrorCode::kConflict) break;
      std::this_thread::sleep_for(5ms);
    }
    if (st.ok()) (void)vms_.ClearIntent(VmManager::kMigrateIn, name);  // its copied volumes are its own now
    return st;
  }
  std::unique_ptr<Incoming> in = TakeSoon(name);
  if (!in) {
    auto shown = vms_.Show(name);  // the reaper settled it already
    if (shown.ok() && shown->value("busy", "").empty()) return Status::Ok();
  }
  if (!in) return Status::NotFound("no migration of vm '" + name + "' is waiting here");
  QmpClient* qmp = in->hold.qmp();
  // QEMU here may take a moment longer than the source to see the end.
  auto deadline = Clock::now() + 30s;
  std::string status;
  while (qmp && (status = MigrationStatus(*qmp)) != "completed" && Clock::now() < deadline) {
    if (status == "failed" || status == "cancelled" || status.rfind("error", 0) == 0) break;
    std::this_thread::sleep_for(2ms);
  }
  if (status != "completed") {
    std::string why = "the migration of vm " + name + " did not complete here (" + status + ")";
    if (!DropUnlessOurs(*in, why)) PutBack(std::move(in));
    return Status::Unavailable(why);
  }
  if (check) {
    StopExport(*in);         // the source finished its copies before the switch-over
    PutBack(std::move(in));  // everything is here; the source now hands it over
    return Status::Ok();
  }
  // The store names this host now; its copy here may lag the source's write
  // by a moment.
  Status st;
  for (int i = 0; i < 400; ++i) {
    Clock::time_point resumed = Clock::now();
    st = Adopt(*in, run, &resumed);
    if (resumed_ms) *resumed_ms = std::chrono::duration<double, std::milli>(resumed - t0).count();
    if (st.code() != ErrorCode::kConflict) break;
    std::this_thread::sleep_for(5ms);
  }
  if (!st.ok()) {
    PutBack(std::move(in));  // the reaper settles it
    return st;
  }
  log::Info("vm {}: now runs here, moved from host {}", name, in->from);
  return Status::Ok();
}

Status Migrations::TakeStream(const std::string& name) {
  std::unique_ptr<Incoming> in = TakeSoon(name);
  if (!in) return Status::NotFound("no migration of vm '" + name + "' is waiting here");
  QmpClient* qmp = in->hold.qmp();
  Status st = in->listener.get() < 0 ? Status::Conflict("the stream of vm '" + name + "' came in already")
              : !qmp                 ? Status::Unavailable("QEMU does not answer")
                                     : Status::Ok();
  if (st.ok()) {
    // The source connected before it asked: the connection waits at once.
    auto stream = AcceptTcp(in->listener.get(), 10s);
    in->listener.Reset();  // one stream per migration
    st = stream.status();
    if (st.ok()) {
      SizeReceiveBuffer(stream->get());
      st = qmp->PassFd(kStreamFd, stream->get());
    }
    if (st.ok()) st = qmp->Execute("migrate-incoming", json{{"uri", std::string("fd:") + kStreamFd}}).status();
  }
  PutBack(std::move(in));  // a failure: the source gives the migration up and drops it here
  return st.Context("taking the stream of vm '" + name + "'");
}

Status Migrations::AbortIncoming(const std::string& name) {
  auto in = Take(name);
  if (!in) {
    // A stopped VM's move: the volumes that came in go (the source keeps the VM).
    PAMPA_ASSIGN_OR_RETURN(auto copies, vms_.ReadIntent(VmManager::kMigrateIn, name));
    if (!copies) return Status::NotFound("no migration of vm '" + name + "' is waiting here");
    vms_.SettleMoveIntent(VmManager::kMigrateIn, *copies);
    return Status::Ok();
  }
  Drop(*in);
  log::Info("vm {}: incoming migration from host {} abandoned", name, in->from);
  return Status::Ok();
}

void Migrations::StartReaper() {
  reaper_ = std::thread([this] { ReaperLoop(); });
}

bool Migrations::Reap(Incoming& in) {
  QmpClient* qmp = in.hold.qmp();
  std::string status = qmp ? MigrationStatus(*qmp) : "error: QEMU is gone";
  auto age = Clock::now() - in.since;
  if (status == "failed" || status == "cancelled") {
    return DropUnlessOurs(in, "incoming migration from host " + in.from + " ended (" + status + ")");
  }
  if (status.rfind("error", 0) == 0) return false;  // QEMU did not answer this time
  if (status == "completed") {
    if (!in.completed) in.completed = Clock::now();
    Status st = Adopt(in, /*run=*/!in.paused);
    if (st.ok()) {
      log::Warn("vm {}: migrated from host {}, which did not confirm: started here, as the store says", in.name,
                in.from);
      return true;
    }
    if (Clock::now() - *in.completed > 60s) {
      return DropUnlessOurs(in, "migration from host " + in.from + " completed but the store names another host");
    }
    return false;
  }
  // Nothing arrived, or it is still coming: the source drives it. Drop it
  // once the source says it is no longer sending it (its migration failed
  // and its abort did not reach this host).
  if (age < 15s) return false;
  auto source = cluster_.Call(in.from, {"GET", "/api/v1/vms/" + in.name, "", ""}, 5s);
  if (!source.ok()) return false;  // cannot tell: wait
  auto vm = json::parse(source->body, nullptr, false);
  bool sending = source->status == 200 && vm.is_object() && vm.value("busy", "") == Name(VmOp::kMigrate);
  if (sending) return false;
  return DropUnlessOurs(in, "host " + in.from + " no longer sends it (" +
                                (source->status == 200 ? "its migration ended" : "it does not have it") + ")");
}

bool Migrations::DropUnlessOurs(Incoming& in, const std::string& why) {
  auto owner = cluster_.OwnerOf(in.name);
  if (!owner.ok() || *owner == cluster_.config().host) {
    // The store names this host (or cannot say): this QEMU may hold the only copy.
    log::Warn(
        "vm {}: {}, but {}: kept, waiting to be adopted", in.name, why,
        owner.ok() ? "the store names this host" : "the store does not answer (" + owner.status().message() + ")");
    return false;
  }
  log::Warn("vm {}: {}: dropped", in.name, why);
  Drop(in);
  return true;
}

void Migrations::Drop(Incoming& in) {
  vms_.DropIncoming(in.hold);
  if (in.copies.disks.empty()) return;
  vms_.RemoveVolumes(in.copies);
  (void)vms_.ClearIntent(VmManager::kMigrateIn, in.name);
}

void Migrations::StopExport(Incoming& in) {
  if (!in.exported || !in.hold.qmp()) return;
  StopMirrorExport(*in.hold.qmp());
  in.exported = false;
}

Status Migrations::Adopt(Incoming& in, bool run, Clock::time_point* resumed) {
  StopExport(in);
  PAMPA_RETURN_IF_ERROR(vms_.AdoptIncoming(in.hold, run, resumed));
  if (!in.copies.disks.empty()) (void)vms_.ClearIntent(VmManager::kMigrateIn, in.name);
  return Status::Ok();
}

void Migrations::AdoptMovedHere() {
  auto specs = cluster_.MovedHere();
  if (!specs.ok()) return;
  for (const std::string& name : *specs) {
    if (vms_.Show(name).ok()) continue;
    {
      MutexLock lock(&mu_);
      if (incoming_.count(name)) continue;
    }
    Status st = vms_.Adopt(name);
    log::Info("vm {}: moved here while stopped; {}", name, st.ok() ? "taken in" : st.message());
  }
}

void Migrations::ReaperLoop() {
  int rounds = 0;
  while (true) {
    std::vector<std::string> names;
    // A stopped VM handed to this host whose word (accept) was lost.
    if (cluster_.pooled() && ++rounds % 10 == 0) AdoptMovedHere();
    {
      MutexLock lock(&mu_);
      if (lock.WaitFor(changed_, 1s, [this]() REQUIRES(mu_) { return stopping_; })) return;
      for (auto& [name, in] : incoming_) {
        if (Clock::now() - in->since > 10s) names.push_back(name);
      }
    }
    for (auto& name : names) {
      auto in = Take(name);
      if (in && !Reap(*in)) PutBack(std::move(in));
    }
  }
}

}  // namespace pampa
