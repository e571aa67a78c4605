#include "jobs/live_restore.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "backup/chunk_codec.h"
#include "backup/nbd_export.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"
#include "base/retry.h"
#include "base/units.h"
#include "jobs/backup_job.h"
#include "qmp/json_channel.h"

namespace pampa {

using json = nlohmann::json;

namespace {

constexpr auto kTick = std::chrono::seconds(1);
constexpr auto kExportStartTimeout = std::chrono::seconds(60);
constexpr int kCopyAttempts = 3;  // copies that fail with the export reporting errors
// The copy starts once the guest agent answers, or after this long (a guest without an agent).
constexpr auto kCopyAfterBootAtMost = std::chrono::seconds(60);

// The qcow2 backing that reads disk i from the export: QEMU's NBD client
// reconnects (holding the guest's reads up to reconnect-delay seconds) when
// the export server restarts, and a QEMU that starts while it is coming up
// waits for it (open-timeout).
std::string BackingSpec(const std::string& socket, size_t disk) {
  json nbd = {{"driver", "nbd"},
              {"server", {{"type", "unix"}, {"path", socket}}},
              {"export", BackupNbdServer::ExportName(disk)},
              {"reconnect-delay", 30},
              {"open-timeout", 30}};
  return "json:" + json{{"driver", "raw"}, {"file", nbd}}.dump();
}

}  // namespace

// What survives pampad: enough to run the export server again and to know
// when the copy is over. Paths live in a directory of their own under the
// run directory (tmpfs: a host reboot empties it, and SpawnExport refills it).
struct LiveRestores::Record {
  std::string id;  // this live restore's own: a later one of a VM of the same name has another
  std::string vm, backup;
  RepoInfo repo;
  size_t disks = 0;
  uint64_t copy_bps = 0;
  pid_t pid = 0;  // the export server's
  std::string dir;

  std::string config() const { return dir + "/export.json"; }
  std::string socket() const { return dir + "/nbd.sock"; }
  std::string status() const { return dir + "/status.json"; }
  std::string log() const { return dir + "/export.log"; }
  static std::string Key(const std::string& vm) { return "live-restores/" + vm; }

  json ToJson() const {
    return {{"id", id},         {"vm", vm},
            {"backup", backup}, {"repo", RepoInfoToJson(repo)},
            {"disks", disks},   {"copy_bps", copy_bps},
            {"pid", pid},       {"dir", dir}};
  }
  static std::optional<Record> FromJson(const std::string& text) {
    auto j = json::parse(text, nullptr, false);
    if (!j.is_object() || !j["vm"].is_string() || !j["dir"].is_string()) return std::nullopt;
    Record r;
    r.id = j.value("id", "");
    r.vm = j["vm"];
    r.backup = j.value("backup", "");
    r.repo = RepoInfoFromJson(j["repo"]);
    r.disks = j.value("disks", size_t{0});
    r.copy_bps = j.value("copy_bps", uint64_t{0});
    r.pid = j.value("pid", 0);
    r.dir = j["dir"];
    return r;
  }
};

LiveRestores::LiveRestores(VmManager& vms, Store& store, Storage& storage, Networks& networks, Tasks& tasks,
                           EventBus& events, std::string exporter)
    : vms_(vms),
      store_(store),
      storage_(storage),
      networks_(networks),
      tasks_(tasks),
      events_(events),
      exporter_(std::move(exporter)) {
  // A VM deleted mid-copy has its export stopped at once, by its watcher.
  subscription_ = events_.Subscribe([this](const json& e) {
    if (e.value("type", "") != "vm" || e.value("state", "") != "deleted") return;
    std::string vm = e.value("vm", "");
    MutexLock lock(&mu_);
    for (auto& [id, w] : watched_) {
      if (w.vm == vm) deleted_.insert(vm);  // only VMs being watched: the set stays small
    }
    changed_.notify_all();
  });
}

LiveRestores::~LiveRestores() {
  events_.Unsubscribe(subscription_);
  MutexLock lock(&mu_);
  stopping_ = true;
  changed_.notify_all();
  lock.Wait(changed_, [&]() REQUIRES(mu_) { return watched_.empty(); });
}

Result<std::optional<LiveRestores::Record>> LiveRestores::Load(const std::string& vm) {
  PAMPA_ASSIGN_OR_RETURN(auto text, store_.Get(Record::Key(vm)));
  if (!text) return std::optional<Record>();
  return Record::FromJson(*text);
}

Status LiveRestores::Save(const Record& rec) {
  return RetryIdempotent([&] { return store_.Put(Record::Key(rec.vm), rec.ToJson().dump()); });
}

Status LiveRestores::SpawnExport(Record& rec, bool wait) {
  if (rec.pid > 0 && ProcessAlive(rec.pid, rec.config())) return Status::Ok();
  PAMPA_RETURN_IF_ERROR(MakeDirs(rec.dir, 0700));
  json config = {
      {"repo", RepoInfoToJson(rec.repo)}, {"backup", rec.backup}, {"socket", rec.socket()}, {"status", rec.status()}};
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(rec.config(), config.dump(), 0600));
  unlink(rec.socket().c_str());
  PAMPA_ASSIGN_OR_RETURN(rec.pid, SpawnDetached({exporter_, rec.config()}, rec.log()));
  PAMPA_RETURN_IF_ERROR(Save(rec));
  if (!wait) return Status::Ok();
  auto deadline = std::chrono::steady_clock::now() + kExportStartTimeout;
  // Accepting, not only bound (as for qemu-nbd): a connection before listen() is refused.
  while (!JsonChannel().Connect(rec.socket(), std::chrono::milliseconds(0)).ok()) {
    // Any process with that pid: until its exec, its command line is still pampad's.
    if (!ProcessAlive(rec.pid, "")) {
      return Status::Unavailable("the backup's export server stopped: " + LastLogLine(rec.log(), 400));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      StopExport(rec);
      return Status::Unavailable("the backup's export server did not answer within 60 s (see " + rec.log() + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::Ok();
}

void LiveRestores::StopExport(const Record& rec) {
  if (rec.pid <= 0) return;
  // Just spawned, it may not have exec'd yet: wait a moment for its command line.
  for (int i = 0; i < 20 && ProcessAlive(rec.pid, "") && !ProcessAlive(rec.pid, rec.config()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  StopProcess(rec.pid, rec.config(), std::chrono::seconds(5));
}

Result<VmManager::Hold> LiveRestores::Prepare(const Request& req, Manifest* manifest) {
  if (!HaveExecutable(exporter_)) {
    return Status::Unavailable("live restore needs " + exporter_ + ", which is missing: reinstall pampa");
  }
  PAMPA_ASSIGN_OR_RETURN(*manifest, req.repository->ReadManifest(req.backup));
  if (req.name.empty()) return Status::Invalid("give the new VM's name with --as NAME (a live restore makes a new VM)");
  return HoldRestoredVm(*manifest, req.name, req.pool, req.network, vms_, storage_, networks_);
}

Result<std::string> LiveRestores::Start(Request req) {
  Manifest manifest;
  PAMPA_ASSIGN_OR_RETURN(auto hold, Prepare(req, &manifest));
  auto held = std::make_shared<VmManager::Hold>(std::move(hold));
  return tasks_.Start("restore", req.name, [this, req, manifest, held](TaskContext& ctx) {
    return Begin(req, manifest, std::move(*held), ctx);
  });
}

Result<json> LiveRestores::StartNow(Request req, TaskContext& ctx) {
  Manifest manifest;
  PAMPA_ASSIGN_OR_RETURN(auto hold, Prepare(req, &manifest));
  return Begin(req, manifest, std::move(hold), ctx);
}

Result<json> LiveRestores::Begin(const Request& req, const Manifest& manifest, VmManager::Hold hold, TaskContext& ctx) {
  auto t0 = std::chrono::steady_clock::now();
  const VmSpec spec = hold.spec();
  // The name is ours now: a record left under it is of a VM deleted before its copy ended.
  if (Status st = DropRecord(spec.name, ""); !st.ok()) log::Warn("live restore of vm {}: {}", spec.name, st.message());
  Record rec;
  rec.id = ToHex(RandomBytes(6));
  rec.vm = spec.name;
  rec.backup = manifest.id;
  rec.repo = req.repo;
  rec.disks = manifest.disks.size();
  rec.copy_bps = req.copy_bps;
  rec.dir = vms_.config().run_dir + "/exports/" + rec.id;  // its own: an older one may still be going away
  auto fail = [&](const Status& st) -> Result<json> {
    StopExport(rec);
    vms_.RemoveVolumes(spec);
    vms_.Abandon(hold, "restore");
    (void)store_.Delete(Record::Key(rec.vm));
    return st;
  };
  // Recorded first: whatever happens next, the next pampad start finds the
  // export server (and stops it when the VM never came to be).
  if (Status st = Save(rec); !st.ok()) return fail(st);
  ctx.Progress(0, "starting the backup's export server");
  if (Status st = SpawnExport(rec); !st.ok()) return fail(st.Context("serving backup " + manifest.id));
  ctx.Progress(0, "creating the disks");
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& d = spec.disks[i];
    auto vol = storage_.CreateVolume(d.pool, d.volume, manifest.disks[i].size, "qcow2");
    if (!vol.ok()) return fail(vol.status());
    auto set = RunChecked(
        {"qemu-img", "rebase", "-u", "-f", "qcow2", "-F", "raw", "-b", BackingSpec(rec.socket(), i), vol->path});
    if (!set.ok()) return fail(set.status().Context("linking " + d.volume + " to the backup"));
  }
  if (Status st = vms_.Keep(hold, "restore"); !st.ok()) return fail(st);
  hold.Release();
  ctx.Progress(0, "starting the VM");
  Status started = vms_.Start(spec.name);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string copy = WatchCopy(rec);
  events_.Publish({{"type", "live-restore"}, {"vm", spec.name}, {"backup", manifest.id}, {"state", "started"}});
  if (!started.ok()) {
    return started.Context("vm '" + spec.name + "' is restored but did not start (it reads from the backup until " +
                           "its copy ends, which goes on once it runs: pampa vm start " + spec.name + ")");
  }
  ctx.Log(fmt::format("vm {} runs from backup {} after {:.1f} s; its disks are copied in task {}", spec.name,
                      manifest.id, secs, copy));
  return json{{"vm", spec.name}, {"backup", manifest.id}, {"live", true}, {"seconds", secs}, {"copy_task", copy}};
}

void LiveRestores::RestartExports() {
  auto records = store_.List("live-restores/");
  if (!records.ok()) {
    log::Error("live restores: {}", records.status().message());
    return;
  }
  for (auto& [key, text] : *records) {
    auto rec = Record::FromJson(text);
    if (!rec) continue;
    // Not waited for: a repository slow to open must not hold pampad's start
    // (QEMU waits for the export at open and reconnects to it).
    if (Status st = SpawnExport(*rec, /*wait=*/false); !st.ok()) {
      log::Error("live restore of vm {}: {}", rec->vm, st.message());
    }
  }
}

void LiveRestores::ResumeCopies() {
  auto records = store_.List("live-restores/");
  if (!records.ok()) return;
  for (auto& [key, text] : *records) {
    if (auto rec = Record::FromJson(text)) WatchCopy(*rec);
  }
}

std::string LiveRestores::CopyTask(const std::string& vm) {
  auto rec = Load(vm);
  if (!rec.ok() || !*rec) return "";
  MutexLock lock(&mu_);
  auto it = watched_.find((*rec)->id);
  return it == watched_.end() ? "" : it->second.task;
}

void LiveRestores::Forget(const std::string& vm) {
  if (vms_.Show(vm).ok()) return;  // still there: its copy goes on
  if (Status st = DropRecord(vm, ""); !st.ok()) log::Warn("live restore of vm {}: {}", vm, st.message());
}

Status LiveRestores::DropRecord(const std::string& vm, const std::string& id) {
  PAMPA_ASSIGN_OR_RETURN(auto got, store_.GetVersioned(Record::Key(vm)));
  if (!got) return Status::Ok();
  auto rec = Record::FromJson(got->value);
  if (!rec || (!id.empty() && rec->id != id)) return Status::Ok();
  StopExport(*rec);
  std::error_code ec;
  std::filesystem::remove_all(rec->dir, ec);
  // Only this record: a new live restore of the name may have replaced it meanwhile.
  return store_.CompareAndDelete(Record::Key(vm), got->mod_revision);
}

std::string LiveRestores::WatchCopy(const Record& rec) {
  MutexLock lock(&mu_);
  if (stopping_) return "";
  if (watched_.count(rec.id)) return watched_[rec.id].task;
  watched_[rec.id] = {rec.vm, ""};  // claimed before the task exists: a second WatchCopy finds it
  lock.Unlock();
  std::string id = tasks_.Start("live-restore-copy", rec.vm, [this, rec](TaskContext& ctx) -> Result<json> {
    auto result = Copy(rec.vm, rec.id, ctx);
    MutexLock done(&mu_);
    watched_.erase(rec.id);
    changed_.notify_all();
    return result;
  });
  lock.Lock();
  if (watched_.count(rec.id)) watched_[rec.id].task = id;
  return id;
}

Result<json> LiveRestores::Copy(const std::string& vm, const std::string& restore_id, TaskContext& ctx) {
  auto t0 = std::chrono::steady_clock::now();
  uint64_t export_errors = 0;
  int failures = 0;
  std::vector<bool> streaming;  // a block-stream was started for disk i in this QEMU
  bool announced_stop = false;
  // The copy waits for the boot: on a busy host it would take the CPU and
  // the disk the guest needs to come up (measured: bench/restore_bench.py).
  bool booted = false;
  for (;;) {
    {
      MutexLock lock(&mu_);
      lock.WaitFor(changed_, kTick, [&]() REQUIRES(mu_) { return stopping_ || deleted_.count(vm) > 0; });
      if (stopping_) {
        return Status::Unavailable("pampad is stopping: the copy of vm " + vm + " resumes at its next start");
      }
      deleted_.erase(vm);
    }
    PAMPA_ASSIGN_OR_RETURN(auto rec, Load(vm));
    // Gone, or another live restore's (this VM was deleted and its name restored again).
    if (!rec || rec->id != restore_id) return json{{"vm", vm}, {"state", "gone"}};
    streaming.resize(rec->disks, false);
    if (!vms_.Show(vm).ok()) {  // deleted meanwhile: nothing left to copy into
      PAMPA_RETURN_IF_ERROR(DropRecord(vm, restore_id));
      return json{{"vm", vm}, {"state", "deleted"}};
    }
    if (!ProcessAlive(rec->pid, rec->config())) {
      ctx.Log("the backup's export server is not running: starting it again");
      if (Status st = SpawnExport(*rec); !st.ok()) {
        ctx.Log(st.message());
        continue;
      }
    }
    // Reads the export server could not answer are I/O errors in the guest:
    // each new one is an event naming the chunk.
    uint64_t errors = export_errors;
    std::string last_error;
    if (auto status = ReadFile(rec->status()); status.ok()) {
      auto j = json::parse(*status, nullptr, false);
      if (j.is_object()) {
        errors = j.value("errors", export_errors);
        last_error = j.value("last_error", "");
      }
    }
    bool new_errors = errors > export_errors;
    if (new_errors) {
      std::string what = "reading backup " + rec->backup + " failed " + std::to_string(errors - export_errors) +
                         " time(s): " + last_error;
      ctx.Log(what);
      events_.Publish({{"type", "live-restore"}, {"vm", vm}, {"state", "read-error"}, {"error", what}});
      export_errors = errors;
    }

    if (!booted) {
      booted = vms_.AgentPing(vm).ok() || std::chrono::steady_clock::now() - t0 > kCopyAfterBootAtMost;
      if (!booted) {
        ctx.Progress(0, "waiting for the guest to boot before copying");
        continue;
      }
    }
    auto hold = vms_.TryHold(vm);
    if (!hold) continue;
    QmpClient* qmp = hold->qmp();
    if (!qmp) {
      streaming.assign(rec->disks, false);
      if (!announced_stop) ctx.Progress(0, "vm stopped: the copy goes on once it runs");
      announced_stop = true;
      continue;
    }
    announced_stop = false;
    auto jobs = qmp->Execute("query-block-jobs");
    auto block = qmp->Execute("query-block");
    if (!jobs.ok() || !block.ok()) continue;
    uint64_t done = 0, total = 0;
    size_t copied = 0;
    for (size_t i = 0; i < rec->disks; ++i) {
      std::string node = DiskNode(DiskSlot(hold->spec(), i)), job_id = "restore-" + node;
      const json* job = nullptr;
      for (auto& j : *jobs) {
        if (j.value("device", "") == job_id) job = &j;
      }
      bool backed = false;
      uint64_t size = 0;
      for (auto& dev : *block) {
        const json& ins = dev.contains("inserted") ? dev["inserted"] : json();
        if (!ins.is_object() || ins.value("node-name", "") != node) continue;
        backed = ins.contains("backing_file");
        if (ins.contains("image")) size = ins["image"].value("virtual-size", uint64_t{0});
      }
      if (job) {
        done += job->value("offset", uint64_t{0});
        total += job->value("len", uint64_t{0});
        continue;
      }
      total += size;
      if (!backed) {
        done += size;
        ++copied;
        continue;
      }
      if (streaming[i] && new_errors && ++failures >= kCopyAttempts) {
        hold->Release();
        return Status::Unavailable("the copy of vm " + vm + " failed " + std::to_string(failures) +
                                   " times reading the backup (" + last_error +
                                   "); the VM still reads what it can from the backup");
      }
      json args = {{"job-id", job_id}, {"device", node}};
      if (rec->copy_bps) args["speed"] = rec->copy_bps;
      auto st = qmp->Execute("block-stream", args);
      if (!st.ok()) {
        ctx.Log("cannot start copying " + node + ": " + st.status().message());
      } else if (!streaming[i]) {
        ctx.Log("copying " + node + " from backup " + rec->backup);
      }
      streaming[i] = st.ok();
    }
    hold->Release();
    if (copied == rec->disks) {
      PAMPA_RETURN_IF_ERROR(DropRecord(vm, restore_id));
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      events_.Publish({{"type", "live-restore"}, {"vm", vm}, {"backup", rec->backup}, {"state", "copied"}});
      return json{{"vm", vm}, {"backup", rec->backup}, {"state", "copied"}, {"seconds", secs}};
    }
    ctx.Progress(total ? double(done) / total : 0,
                 "copying from backup " + rec->backup + ": " + FormatSize(done) + " of " + FormatSize(total));
  }
}

}  // namespace pampa
