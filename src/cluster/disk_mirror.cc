#include "cluster/disk_mirror.h"

#include <chrono>
#include <thread>

#include "base/log.h"
#include "qemu/machine.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// NBD ports tried in turn on the target (Proxmox uses 60000-60050 the same way).
constexpr int kFirstNbdPort = 60000;
constexpr int kNbdPorts = 100;

std::string MirrorName(size_t index) { return "mirror-disk" + std::to_string(index); }

}  // namespace

json ToJson(const LocalDisk& disk) { return json{{"index", disk.index}, {"format", disk.format}, {"size", disk.size}}; }

Result<std::vector<LocalDisk>> LocalDisksFromJson(const json& j, size_t disk_count) {
  if (!j.is_array()) return Status::Invalid("field 'disks' must be a list of {index, format, size}");
  std::vector<LocalDisk> out;
  for (const json& d : j) {
    if (!d.is_object() || !d.contains("index") || !d["index"].is_number_unsigned() || !d.contains("size") ||
        !d["size"].is_number_unsigned() || !d.contains("format") || !d["format"].is_string()) {
      return Status::Invalid("each of 'disks' must be {index, format, size} with whole numbers");
    }
    LocalDisk disk{d["index"].get<size_t>(), d["format"].get<std::string>(), d["size"].get<uint64_t>()};
    if (disk.index >= disk_count) {
      return Status::Invalid("disk " + std::to_string(disk.index) + " is not one of the VM's disks");
    }
    if (disk.format != "qcow2" && disk.format != "raw") return Status::Invalid("disk format must be qcow2 or raw");
    if (disk.size == 0) return Status::Invalid("disk " + std::to_string(disk.index) + " has no size");
    out.push_back(disk);
  }
  return out;
}

Status AddTlsCreds(QmpClient& qmp, const std::string& id, const std::string& dir, const std::string& endpoint) {
  (void)qmp.Execute("object-del", json{{"id", id}});  // none yet, or one from a move before
  return qmp
      .Execute(
          "object-add",
          json{{"qom-type", "tls-creds-x509"}, {"id", id}, {"dir", dir}, {"endpoint", endpoint}, {"verify-peer", true}})
      .status()
      .Context("loading the pool certificate into QEMU (" + dir + ")");
}

Result<int> ExportForMirror(QmpClient& qmp, const std::string& host, const std::vector<LocalDisk>& disks,
                            const StreamTls& tls) {
  Status st;
  int port = 0;
  for (int i = 0; i < kNbdPorts; ++i) {
    port = kFirstNbdPort + i;
    json args = {{"addr", {{"type", "inet"}, {"data", {{"host", host}, {"port", std::to_string(port)}}}}}};
    if (!tls.creds.empty()) args["tls-creds"] = tls.creds;
    st = qmp.Execute("nbd-server-start", args).status();
    if (st.ok()) break;  // else: that port is taken; the next
  }
  if (!st.ok()) {
    return st.Context("no free port for the disk copy in " + std::to_string(kFirstNbdPort) + "-" +
                      std::to_string(kFirstNbdPort + kNbdPorts - 1));
  }
  for (const LocalDisk& d : disks) {
    st = qmp.Execute("block-export-add", json{{"type", "nbd"},
                                              {"id", MirrorName(d.index)},
                                              {"node-name", DiskNode(d.slot)},
                                              {"name", DiskNode(d.slot)},
                                              {"writable", true}})
             .status();
    if (!st.ok()) {
      StopMirrorExport(qmp);
      return st.Context("exporting disk " + std::to_string(d.index) + " for its copy");
    }
  }
  return port;
}

void StopMirrorExport(QmpClient& qmp) { (void)qmp.Execute("nbd-server-stop", nullptr, 10s); }

Status DiskMirror::Start(const std::string& host, int port, uint64_t bytes_per_s, const StreamTls& tls) {
  // A pampad killed during an earlier move may have left these behind.
  for (size_t i = 0; i < disks_.size(); ++i) (void)EndJob(i, Ending::kAbandon);
  for (const LocalDisk& d : disks_) {
    std::string what = "disk " + std::to_string(d.index);
    json node = {{"driver", "nbd"},
                 {"node-name", MirrorName(d.index)},
                 {"server", {{"type", "inet"}, {"host", host}, {"port", std::to_string(port)}}},
                 {"export", DiskNode(d.slot)}};
    if (!tls.creds.empty()) {
      node["tls-creds"] = tls.creds;
      node["tls-hostname"] = tls.hostname;
    }
    PAMPA_RETURN_IF_ERROR(
        qmp_.Execute("blockdev-add", node).status().Context("connecting " + what + " to the target's copy"));
    json args = {{"job-id", MirrorName(d.index)},
                 {"device", DiskNode(d.slot)},
                 {"target", MirrorName(d.index)},
                 {"sync", "full"},
                 // Once in step, a guest write returns when both copies have
                 // it: nothing is left to copy while the guest is stopped.
                 {"copy-mode", "write-blocking"},
                 {"auto-finalize", true},
                 {"auto-dismiss", false}};
    if (bytes_per_s > 0) args["speed"] = bytes_per_s;
    Status st = qmp_.Execute("blockdev-mirror", args).status();
    if (!st.ok()) {
      (void)qmp_.Execute("blockdev-del", json{{"node-name", MirrorName(d.index)}});
      return st.Context("starting the copy of " + what);
    }
    ++started_;
  }
  return Status::Ok();
}

Result<DiskMirror::Progress> DiskMirror::Poll() {
  PAMPA_ASSIGN_OR_RETURN(json jobs, qmp_.Execute("query-block-jobs", nullptr, 5s));
  Progress p;
  p.ready = true;
  for (size_t i = 0; i < started_; ++i) {
    const json* job = nullptr;
    for (const json& j : jobs) {
      if (j.value("device", "") == MirrorName(disks_[i].index)) job = &j;
    }
    std::string what = "the copy of disk " + std::to_string(disks_[i].index);
    if (!job) return Status::Unavailable(what + " ended unexpectedly");
    if (job->value("status", "") == "concluded") {
      return Status::Unavailable(what + " failed: " + job->value("error", std::string("no reason given")));
    }
    p.done += job->value("offset", uint64_t{0});
    p.total += job->value("len", uint64_t{0});
    p.ready = p.ready && job->value("ready", false);
  }
  return p;
}

Result<bool> DiskMirror::WaitConcluded(const std::string& job, std::chrono::seconds limit, std::string* error) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    PAMPA_ASSIGN_OR_RETURN(json jobs, qmp_.Execute("query-block-jobs", nullptr, 5s));
    bool concluded = true;  // or gone
    for (const json& j : jobs) {
      if (j.value("device", "") != job) continue;
      concluded = j.value("status", "") == "concluded";
      *error = j.value("error", "");
    }
    if (concluded) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
}

Status DiskMirror::EndJob(size_t i, Ending how) {
  std::string job = MirrorName(disks_[i].index);
  // A copy in step ends with a plain cancel, which completes it without
  // switching over and first waits for the guest writes in it. QEMU 7.2
  // frees a force-cancelled write-blocking mirror under such a write: the
  // source QEMU died with a corrupted heap in 3 of 4 runs of 25 force
  // cancels of an in-step copy while the guest wrote, and never in 16 plain
  // cancels (nor in 15 force cancels of a copy not yet in step).
  bool force = false;
  if (how == Ending::kAbandon) {
    auto jobs = qmp_.Execute("query-block-jobs", nullptr, 5s);
    force = true;
    for (const json& j : jobs.ok() ? *jobs : json::array()) {
      if (j.value("device", "") == job) force = !j.value("ready", false);
    }
  }
  std::string error;
  Status st = qmp_.Execute("block-job-cancel", json{{"device", job}, {"force", force}}, 10s).status();
  Result<bool> concluded = false;
  if (st.ok()) concluded = WaitConcluded(job, force || how == Ending::kFinish ? 30s : 10s, &error);
  if (st.ok() && concluded.ok() && !*concluded && !force && how == Ending::kAbandon) {
    // The target takes no more writes (a hung host, a cut link), and so
    // neither does the guest: only a force cancel frees its writes.
    log::Warn("{}: the copy of disk {} did not end in 10 s; force-cancelling it", job, disks_[i].index);
    st = qmp_.Execute("block-job-cancel", json{{"device", job}, {"force", true}}, 10s).status();
    if (st.ok()) concluded = WaitConcluded(job, 30s, &error);
  }
  if (st.ok()) st = concluded.status();
  if (st.ok() && !*concluded) st = Status::Unavailable("it did not end in 30 s");
  (void)qmp_.Execute("job-dismiss", json{{"id", job}});
  (void)qmp_.Execute("blockdev-del", json{{"node-name", job}});
  if (st.ok() && !error.empty()) st = Status::Unavailable(error);
  return st.Context("finishing the copy of disk " + std::to_string(disks_[i].index));
}

Status DiskMirror::Finish() {
  Status first;
  for (size_t i = 0; i < started_; ++i) {
    Status st = EndJob(i, Ending::kFinish);
    if (first.ok()) first = st;
  }
  ended_ = true;
  return first;
}

void DiskMirror::Abandon() {
  if (ended_) return;
  ended_ = true;
  for (size_t i = 0; i < started_; ++i) {
    Status st = EndJob(i, Ending::kAbandon);
    if (!st.ok()) log::Warn("{}", st.message());
  }
}

}  // namespace pampa
