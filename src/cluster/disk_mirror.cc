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

// How long a plain cancel may wait for a copy before pampad cuts its
// connection, and how long after that for QEMU to end the job. A healthy
// target ends an in-step copy in ~60 ms (the switch-over's finish, measured
// in bench/pool_bench.py); 10 s without an end is a target that takes no
// writes, and every guest write waits for it meanwhile.
constexpr auto kCancelGrace = 10s;
constexpr auto kAfterCut = 15s;

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
  (void)EndJobs(disks_.size());
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

std::vector<Status> DiskMirror::EndJobs(size_t count) {
  // A plain cancel, never a forced one: a copy in step completes without
  // switching over, once the guest writes in it are done; one not yet in
  // step stops where it is (QEMU treats any cancel before `ready` as
  // forced). QEMU 7.2 frees a force-cancelled write-blocking mirror under a
  // guest write still in it: the source QEMU died with a corrupted heap in
  // each of 5 runs, within 1 to 13 force cancels of an in-step copy while
  // the guest wrote; plain cancels, 16 of 16 survived. A cut connection
  // ends a job through the same exit as a forced cancel, so only a job that
  // has not ended in 10 s is cut: its target takes no writes, and every
  // guest write waits for it meanwhile.
  std::vector<Status> cancels(count);
  std::vector<std::string> errors(count);  // each job's own, once concluded
  std::vector<bool> seen(count), concluded(count);
  for (size_t i = 0; i < count; ++i) {
    cancels[i] = qmp_.Execute("block-job-cancel", json{{"device", MirrorName(disks_[i].index)}}, 10s).status();
  }
  // Until every job has concluded (or is gone) or the deadline passed; a
  // query QEMU does not answer is asked again.
  auto wait_until = [&](std::chrono::steady_clock::time_point deadline) {
    while (true) {
      auto jobs = qmp_.Execute("query-block-jobs", nullptr, 5s);
      bool all = true;
      for (size_t i = 0; i < count; ++i) {
        if (jobs.ok() && !concluded[i]) {
          concluded[i] = true;  // or gone
          for (const json& j : *jobs) {
            if (j.value("device", "") != MirrorName(disks_[i].index)) continue;
            seen[i] = true;
            concluded[i] = j.value("status", "") == "concluded";
            errors[i] = j.value("error", "");
          }
        }
        all = all && concluded[i];
      }
      if (all || std::chrono::steady_clock::now() >= deadline) return all;
      std::this_thread::sleep_for(2ms);
    }
  };
  if (!wait_until(std::chrono::steady_clock::now() + kCancelGrace)) {
    for (size_t i = 0; i < count; ++i) {
      if (concluded[i]) continue;
      log::Warn("the copy of disk {} did not end in {} s: cutting its connection to the target", disks_[i].index,
                kCancelGrace.count());
      Cut(i);
    }
    wait_until(std::chrono::steady_clock::now() + kAfterCut);
  }
  std::vector<Status> ends(count);
  for (size_t i = 0; i < count; ++i) {
    std::string job = MirrorName(disks_[i].index);
    if (!concluded[i]) {
      // QEMU did not end it even so: a later move's Start cancels it again.
      ends[i] = Status::Unavailable("it did not end in " + std::to_string((kCancelGrace + kAfterCut).count()) +
                                    " s (does the target still answer?)");
    } else if (!errors[i].empty()) {
      ends[i] = Status::Unavailable(errors[i] + (cut_[i] ? " (pampad cut its connection to the target)" : ""));
    } else if (!seen[i]) {
      ends[i] = cancels[i];  // there was no such job: QEMU's answer to the cancel says so
    }
    (void)qmp_.Execute("job-dismiss", json{{"id", job}});
    (void)qmp_.Execute("blockdev-del", json{{"node-name", job}});
    ends[i] = ends[i].Context("finishing the copy of disk " + std::to_string(disks_[i].index));
  }
  return ends;
}

void DiskMirror::Cut(size_t i) {
  // QEMU's yank of an NBD node shuts its connection down and stops it for
  // good (no reconnect): the requests waiting for the target fail.
  json instance = {{"type", "block-node"}, {"node-name", MirrorName(disks_[i].index)}};
  Status st = qmp_.Execute("yank", json{{"instances", json::array({instance})}}, 5s).status();
  if (!st.ok()) {
    log::Warn("cannot cut the copy of disk {}: {}", disks_[i].index, st.message());
  } else {
    cut_[i] = true;
  }
}

void DiskMirror::CutLinks() {
  if (ended_) return;  // the nodes are gone
  for (size_t i = 0; i < started_; ++i) Cut(i);
}

Status DiskMirror::Finish() {
  ended_ = true;
  for (Status& st : EndJobs(started_)) {
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

void DiskMirror::Abandon() {
  if (ended_) return;
  ended_ = true;
  for (Status& st : EndJobs(started_)) {
    if (!st.ok()) log::Warn("{}", st.message());
  }
}

}  // namespace pampa
