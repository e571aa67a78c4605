// Backup and restore jobs on VMs. See docs/formats/backup-repository.md for what
// lands in the repository and docs/design.md for the flow:
//   running VM: [fsfreeze] -> one QMP transaction {new persistent bitmap on each
//   disk, a frozen copy of the previous bitmap on a fleecing overlay,
//   blockdev-backup sync=none disk->overlay} -> [thaw] -> NBD export of the
//   overlays -> read dirty chunks -> tear down; drop the old bitmap on success,
//   the new one on failure (so the next backup still sees every change).
//   stopped VM: qemu-nbd --bitmap on each image; bitmaps rotated with qemu-img.
#include "jobs/backup_job.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "backup/disk_transfer.h"
#include "backup/prune.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"
#include "base/units.h"
#include "qemu/bitmaps.h"
#include "qemu/nbd_server.h"
#include "qmp/json_channel.h"
#include "storage/image.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string RandomHex(int n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(hex[rng() & 15]);
  return s;
}

std::string NewBackupId(const std::string& vm) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf) + "-" + vm + "-" + RandomHex(4);
}

std::string StateKey(const std::string& repo, const std::string& vm) { return "backup-state/" + repo + "/" + vm; }

}  // namespace

namespace {

// Restores are bound by the target disk's writes, which go faster with more of
// them in flight than there are cores (8 against 4: 1.5 s -> 1.4 s for 1.4 GiB).
constexpr int kRestoreWorkers = 8;

}  // namespace

struct BackupJobs::BackupRun {
  std::shared_ptr<Repository> repo;
  std::string repo_name, id, new_bitmap, prev_bitmap, prev_backup;
  std::optional<Manifest> prev_manifest;  // none when there is no usable previous backup
  std::vector<std::string> paths;
  std::vector<DiskBackupResult> results;
  std::string consistency;
  std::vector<std::string> notes;
  // The repository's side of the start (identity checked, lock taken,
  // previous manifest read) takes a few round trips to a remote store and is
  // made while the disks are prepared: Ready() waits for it (once; later
  // calls return the same status) and fills prev_manifest.
  std::function<Status()> ready;
  bool locked = false;
};

namespace {

std::vector<std::string> ChunkList(const std::optional<Manifest>& manifest, size_t disk) {
  if (!manifest || disk >= manifest->disks.size()) return {};
  return manifest->disks[disk].chunks;
}

// Reads disk i of n from an NBD export into the repository; with a bitmap, only
// its dirty chunks (the others come from the previous manifest).
Status ReadOneDisk(Repository& repo, const std::optional<Manifest>& prev_manifest,
                   std::vector<DiskBackupResult>& results, size_t i, size_t n, const DiskSource& source,
                   const std::string& bitmap, TaskContext& ctx, std::function<void()> block_status_read = {}) {
  std::vector<std::string> prev = ChunkList(prev_manifest, i);
  DiskBackupOptions opt;
  opt.bitmap = bitmap;
  opt.previous = bitmap.empty() ? nullptr : &prev;
  opt.cancel = ctx.cancel_flag();
  opt.block_status_read = std::move(block_status_read);
  opt.progress = [&](uint64_t done, uint64_t total, const StageTimes& t) {
    ctx.Progress((i + (total ? double(done) / total : 1.0)) / n,
                 fmt::format("disk{}: read {:.0f} MiB/s, compress+encrypt {:.0f} MiB/s, upload {:.0f} MiB/s", i,
                             MibPerSecond(done, t.read), MibPerSecond(done, t.seal), MibPerSecond(done, t.upload)));
  };
  PAMPA_ASSIGN_OR_RETURN(auto res, BackupDisk(source, repo, opt));
  results.push_back(std::move(res));
  return Status::Ok();
}

}  // namespace

Status BackupJobs::BackupStopped(VmManager::Hold& vm, BackupRun& run, TaskContext& ctx) {
  size_t n = run.paths.size();
  PAMPA_RETURN_IF_ERROR(MakeDirs(vm.paths().dir, 0700));
  run.consistency = "consistent (the VM was stopped)";
  KillStaleNbd(vm.paths().dir);
  for (size_t i = 0; i < n; ++i) {
    const std::string& path = run.paths[i];
    // qemu-nbd answers which blocks are allocated and dirty; the data itself is
    // read straight from the image file when its layout allows (no copies
    // through a socket), else through qemu-nbd. Three processes at once: the
    // layout, the image's bitmaps, and qemu-nbd exporting the previous bitmap
    // (started again without it when the image cannot serve it whole).
    auto layout = std::async(std::launch::async, [&path] { return MapImage(path, "qcow2"); });
    auto listed = std::async(std::launch::async, [&path] { return ImageBitmaps(path); });
    std::string socket = vm.paths().dir + "/nbd" + std::to_string(i) + ".sock";
    auto first = QemuNbdServer::Start(path, socket, run.prev_bitmap);
    std::unique_ptr<QemuNbdServer> server = first.ok() ? std::move(*first) : nullptr;
    auto bitmaps = listed.get();
    // Whether the exported bitmap is used depends on the previous manifest, read meanwhile.
    std::string bitmap, why_full;
    if (!run.prev_bitmap.empty()) {
      auto it = bitmaps.find(run.prev_bitmap);
      if (it == bitmaps.end()) {
        why_full = "disk" + std::to_string(i) + ": dirty bitmap missing, reading the whole disk";
      } else if (!it->second) {
        why_full = "disk" + std::to_string(i) + ": dirty bitmap inconsistent (host crash?), reading the whole disk";
      } else {
        bitmap = run.prev_bitmap;
      }
    }
    if (bitmap != run.prev_bitmap) {
      server.reset();  // stopped before the next one starts
      PAMPA_ASSIGN_OR_RETURN(server, QemuNbdServer::Start(path, socket, bitmap));
    } else if (!server) {
      return first.status();
    }
    DiskSource source{{server->socket(), QemuNbdServer::kExportName}, "", {}};
    if (auto map = layout.get(); map.ok()) {
      source.file = path;
      source.extents = std::move(*map);
    }
    PAMPA_RETURN_IF_ERROR(run.ready());
    if (ChunkList(run.prev_manifest, i).empty()) {
      bitmap.clear();
    } else if (!why_full.empty()) {
      run.notes.push_back(why_full);
    }
    // Nothing writes a stopped VM's disk, so its next bitmap may start at any
    // moment of the backup: once qemu-nbd is no longer needed, the bitmaps are
    // rotated while the chunks are still being compressed.
    std::future<Status> rotated;
    auto stop_server_and_rotate = [&] {
      server.reset();
      rotated = std::async(std::launch::async, [&] {
        return RotateBitmaps(path, bitmaps, run.repo_name, run.new_bitmap, run.prev_bitmap);
      });
    };
    Status st = ReadOneDisk(*run.repo, run.prev_manifest, run.results, i, n, source, bitmap, ctx,
                            source.file.empty() ? std::function<void()>() : stop_server_and_rotate);
    if (st.ok() && !rotated.valid()) stop_server_and_rotate();
    Status rotation = rotated.valid() ? rotated.get() : Status::Ok();
    PAMPA_RETURN_IF_ERROR(st);
    PAMPA_RETURN_IF_ERROR(rotation);
  }
  return Status::Ok();
}

Status BackupJobs::BackupRunning(VmManager::Hold& vm, BackupRun& run, TaskContext& ctx) {
  size_t n = run.paths.size();
  if (!vm.qmp()) return Status::Unavailable("QEMU does not answer on QMP");
  std::string tmpdir = vms_.config().data_dir + "/backup-tmp";
  PAMPA_RETURN_IF_ERROR(MakeDirs(tmpdir, 0700));
  std::string nbd_sock = vm.paths().dir + "/nbd.sock";

  // A backup interrupted by a pampad crash may have left its fleecing nodes,
  // export and bitmap in QEMU: clear them first (errors mean "not there").
  for (size_t i = 0; i < n; ++i) {
    (void)vm.qmp()->Execute("block-export-del", {{"id", "exp" + std::to_string(i)}, {"mode", "hard"}}, 5s);
  }
  (void)vm.qmp()->Execute("nbd-server-stop", nullptr, 5s);
  for (size_t i = 0; i < n; ++i) {
    (void)vm.qmp()->Execute("block-job-cancel", {{"device", "fleece-job" + std::to_string(i)}, {"force", true}}, 5s);
  }
  for (int t = 0; t < 100; ++t) {
    auto jobs = vm.qmp()->Execute("query-block-jobs", nullptr, 5s);
    if (!jobs.ok() || jobs->empty()) break;
    std::this_thread::sleep_for(20ms);
  }
  for (size_t i = 0; i < n; ++i)
    (void)vm.qmp()->Execute("blockdev-del", {{"node-name", "fleece" + std::to_string(i)}}, 5s);
  PAMPA_RETURN_IF_ERROR(run.ready());

  // Which disks have a usable previous bitmap (present, not inconsistent)?
  std::vector<bool> incremental(n, false);
  if (!run.prev_bitmap.empty() && run.prev_manifest) {
    auto nodes = vm.qmp()->Execute("query-named-block-nodes", {{"flat", true}}, 10s);
    if (nodes.ok()) {
      for (auto& node : *nodes) {
        std::string name = node.value("node-name", "");
        for (size_t i = 0; i < n; ++i) {
          if (name != DiskNode(DiskSlot(vm.spec(), i))) continue;
          for (auto& b : node.value("dirty-bitmaps", json::array())) {
            std::string bname = b.value("name", "");
            if (bname == run.prev_bitmap && !b.value("inconsistent", false)) incremental[i] = true;
            // Bitmaps of this repository from interrupted backups only cost write overhead.
            if (bname != run.prev_bitmap && bname.starts_with(RepoBitmapPrefix(run.repo_name))) {
              (void)vm.qmp()->Execute("block-dirty-bitmap-remove", {{"node", name}, {"name", bname}}, 5s);
            }
          }
        }
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (!incremental[i])
        run.notes.push_back("disk" + std::to_string(i) +
                            ": dirty bitmap missing or inconsistent, reading the whole disk");
    }
  }

  std::vector<std::string> overlays(n);
  std::vector<bool> node_added(n, false), job_started(n, false), exported(n, false);
  bool nbd_started = false, bitmaps_added = false;
  auto qmp = [&](const std::string& cmd, const json& args) -> Result<json> {
    if (!vm.qmp()) return Status::Unavailable("QEMU does not answer on QMP");
    return vm.qmp()->Execute(cmd, args, 30s);
  };
  // Undoes whatever was set up, in reverse order. success decides which bitmap goes.
  auto teardown = [&](bool success) {
    for (size_t i = 0; i < n; ++i) {
      if (exported[i]) (void)qmp("block-export-del", {{"id", "exp" + std::to_string(i)}, {"mode", "hard"}});
    }
    for (int t = 0; t < 100; ++t) {
      auto exports = qmp("query-block-exports", nullptr);
      if (!exports.ok() || exports->empty()) break;
      std::this_thread::sleep_for(20ms);
    }
    if (nbd_started) (void)qmp("nbd-server-stop", nullptr);
    for (size_t i = 0; i < n; ++i) {
      if (job_started[i])
        (void)qmp("block-job-cancel", {{"device", "fleece-job" + std::to_string(i)}, {"force", true}});
    }
    for (int t = 0; t < 200; ++t) {
      auto jobs = qmp("query-block-jobs", nullptr);
      if (!jobs.ok() || jobs->empty()) break;
      std::this_thread::sleep_for(20ms);
    }
    for (size_t i = 0; i < n; ++i) {
      if (node_added[i]) {
        auto r = qmp("blockdev-del", {{"node-name", "fleece" + std::to_string(i)}});
        if (!r.ok()) log::Warn("vm {}: {}", vm.spec().name, r.status().message());
      }
      if (!overlays[i].empty()) unlink(overlays[i].c_str());
    }
    if (bitmaps_added) {
      for (size_t i = 0; i < n; ++i) {
        std::string drop = success ? run.prev_bitmap : run.new_bitmap;
        if (drop.empty()) continue;
        (void)qmp("block-dirty-bitmap-remove", {{"node", DiskNode(DiskSlot(vm.spec(), i))}, {"name", drop}});
      }
    }
  };

  auto setup = [&]() -> Status {
    for (size_t i = 0; i < n; ++i) {
      PAMPA_ASSIGN_OR_RETURN(auto vol, storage_.GetVolume(vm.spec().disks[i].pool, vm.spec().disks[i].volume));
      overlays[i] = tmpdir + "/" + vm.spec().uuid.substr(0, 8) + "-fleece" + std::to_string(i) + ".qcow2";
      PAMPA_RETURN_IF_ERROR(
          RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", overlays[i], std::to_string(vol.virtual_size)})
              .status());
      PAMPA_RETURN_IF_ERROR(qmp("blockdev-add", {{"driver", "qcow2"},
                                                 {"node-name", "fleece" + std::to_string(i)},
                                                 {"file", {{"driver", "file"}, {"filename", overlays[i]}}},
                                                 {"backing", DiskNode(DiskSlot(vm.spec(), i))}})
                                .status());
      node_added[i] = true;
    }
    json actions = json::array();
    for (size_t i = 0; i < n; ++i) {
      std::string disk = DiskNode(DiskSlot(vm.spec(), i)), fleece = "fleece" + std::to_string(i);
      actions.push_back({{"type", "block-dirty-bitmap-add"},
                         {"data", {{"node", disk}, {"name", run.new_bitmap}, {"persistent", true}}}});
      if (incremental[i]) {
        actions.push_back({{"type", "block-dirty-bitmap-add"},
                           {"data", {{"node", fleece}, {"name", "pampa-backup"}, {"disabled", true}}}});
        actions.push_back({{"type", "block-dirty-bitmap-merge"},
                           {"data",
                            {{"node", fleece},
                             {"target", "pampa-backup"},
                             {"bitmaps", json::array({{{"node", disk}, {"name", run.prev_bitmap}}})}}}});
      }
      actions.push_back(
          {{"type", "blockdev-backup"},
           {"data",
            {{"job-id", "fleece-job" + std::to_string(i)}, {"device", disk}, {"target", fleece}, {"sync", "none"}}}});
    }
    // Application consistency when the agent answers: freeze, one atomic
    // transaction, thaw, on one agent connection (the guest's writes wait from
    // the freeze to the thaw).
    double held_ms = 0;
    // A channel busy past 10 s (a long vm exec) makes the backup crash-consistent.
    auto channel = vm.agent().Claim("a backup's filesystem freeze", 10s);
    Result<std::unique_ptr<GuestAgentSession>> agent =
        channel.ok() ? GuestAgentSession::Open(vm.paths().qga(), 1500ms)
                     : Result<std::unique_ptr<GuestAgentSession>>(channel.status());
    // After a command of the session went unanswered: thaw on a new connection
    // (the agent serves one at a time, and its resync skips the late answer).
    auto thaw_anew = [&] {
      agent->reset();
      return GuestAgent(vm.paths().qga()).Call("guest-fsfreeze-thaw", nullptr, 20s);
    };
    bool frozen = false;
    if (agent.ok()) {
      auto freeze = (*agent)->Call("guest-fsfreeze-freeze", nullptr, 20s);
      frozen = freeze.ok();
      // A freeze that timed out may still happen in the guest: never leave it frozen.
      if (!frozen && freeze.status().code() == ErrorCode::kUnavailable) (void)thaw_anew();
    }
    auto t0 = std::chrono::steady_clock::now();
    auto tr = qmp("transaction", {{"actions", actions}});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (frozen) {
      auto thaw = (*agent)->Call("guest-fsfreeze-thaw", nullptr, 20s);
      if (!thaw.ok()) thaw = thaw_anew();
      if (!thaw.ok())
        log::Error("vm {}: could not thaw the guest filesystems: {}", vm.spec().name, thaw.status().message());
      held_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    if (channel.ok()) channel->Release();
    if (!tr.ok()) return tr.status().Context("starting the point-in-time view");
    bitmaps_added = true;
    for (size_t i = 0; i < n; ++i) job_started[i] = true;
    run.consistency = frozen         ? "application-consistent (guest filesystems frozen through the agent)"
                      : channel.ok() ? "crash-consistent (the guest agent did not answer)"
                                     : "crash-consistent (" + channel.status().message() + ")";
    ctx.Log(fmt::format("point in time taken for {} disk(s) in {:.0f} ms; {}", n, ms, run.consistency));
    if (frozen) ctx.Log(fmt::format("guest writes waited {:.0f} ms for the thaw", held_ms));
    PAMPA_RETURN_IF_ERROR(
        qmp("nbd-server-start", {{"addr", {{"type", "unix"}, {"data", {{"path", nbd_sock}}}}}}).status());
    nbd_started = true;
    for (size_t i = 0; i < n; ++i) {
      json exp = {{"type", "nbd"},
                  {"id", "exp" + std::to_string(i)},
                  {"node-name", "fleece" + std::to_string(i)},
                  {"name", "disk" + std::to_string(i)},
                  {"writable", false}};
      if (incremental[i]) exp["bitmaps"] = json::array({"pampa-backup"});
      PAMPA_RETURN_IF_ERROR(qmp("block-export-add", exp).status());
      exported[i] = true;
    }
    return Status::Ok();
  };

  Status st = setup();
  if (st.ok()) {
    for (size_t i = 0; i < n && st.ok(); ++i) {
      st = ReadOneDisk(*run.repo, run.prev_manifest, run.results, i, n, {{nbd_sock, "disk" + std::to_string(i)}},
                       incremental[i] ? "pampa-backup" : "", ctx);
    }
  }
  teardown(st.ok());
  return st;
}

BackupJobs::BackupJobs(VmManager& vms, Store& store, Storage& storage, Networks& networks, Tasks& tasks,
                       EventBus& events)
    : vms_(vms), store_(store), storage_(storage), networks_(networks), tasks_(tasks), events_(events) {}

Result<std::string> BackupJobs::Backup(const std::string& name, std::shared_ptr<Repository> repo,
                                       const std::string& repo_name, std::function<Status()> check_repo) {
  PAMPA_ASSIGN_OR_RETURN(auto hold, vms_.HoldVm(name, VmOp::kBackup, VmAction::kBackup));
  PAMPA_RETURN_IF_ERROR(vms_.Qcow2Disks(hold.spec()).status());
  auto held = std::make_shared<VmManager::Hold>(std::move(hold));
  return tasks_.Start("backup", name, [this, held, repo, repo_name, check_repo](TaskContext& ctx) -> Result<json> {
    VmManager::Hold owned = std::move(*held);  // given back on every return
    VmManager::Hold* vm = &owned;
    auto start = std::chrono::steady_clock::now();
    BackupRun run;
    run.repo = repo;
    run.repo_name = repo_name;
    run.id = NewBackupId(vm->spec().name);
    run.new_bitmap = RepoBitmapPrefix(repo_name) + RandomHex(8);
    auto paths = vms_.Qcow2Disks(vm->spec());
    if (!paths.ok()) return Result<json>(paths.status());
    run.paths = *paths;
    // The previous backup to this repository, and the bitmap that has tracked writes since.
    auto state = store_.Get(StateKey(repo_name, vm->spec().name));
    if (state.ok() && state->has_value()) {
      auto j = json::parse(**state, nullptr, false);
      run.prev_bitmap = j.value("bitmap", "");
      run.prev_backup = j.value("backup", "");
    }
    // The repository's side, on a thread of its own. Garbage collection must
    // not delete chunks this backup is about to reference: the lock comes
    // before the previous manifest is read, and before anything is uploaded.
    std::string lock = "backup-" + run.id;
    struct RepoSide {
      Status status;
      bool locked = false;
      std::optional<Manifest> prev;
      std::string note;
    };
    auto repo_side =
        std::async(std::launch::async, [repo, check_repo, lock, prev = run.prev_backup, disks = run.paths.size()] {
          RepoSide out;
          // Is it still this repository (not an empty mount point, not another
          // one)? Asked before anything is written there.
          out.status = check_repo ? check_repo() : Status::Ok();
          if (!out.status.ok()) return out;
          // The previous manifest is read beside the lock, and trusted only
          // if it still exists once the lock is held (LockForBackup says).
          std::future<Result<Manifest>> read;
          if (!prev.empty()) read = std::async(std::launch::async, [&] { return repo->ReadManifest(prev); });
          auto kept = LockForBackup(*repo, lock, prev);
          out.status = kept.status();
          out.locked = kept.ok();
          if (!kept.ok() || prev.empty()) return out;
          auto m = read.get();
          if (*kept && m.ok() && m->disks.size() == disks)
            out.prev = std::move(*m);
          else
            out.note = "previous backup " + prev + " is not in the repository: full read";
          return out;
        });
    std::optional<Status> repo_ready;
    run.ready = [&]() -> Status {
      if (!repo_ready) {
        RepoSide side = repo_side.get();
        run.locked = side.locked;
        run.prev_manifest = std::move(side.prev);
        if (!side.note.empty()) run.notes.push_back(side.note);
        repo_ready = side.status;
      }
      return *repo_ready;
    };
    auto finish = [&](Result<json> r) {
      (void)run.ready();  // the lock is taken or not only once the repository's side is over
      if (!run.locked) return r;
      if (Status st = repo->RemoveLock(lock); !st.ok()) log::Warn("{}", st.message());
      return r;
    };
    VmState vm_state = vm->state();
    bool running = vm_state == VmState::kRunning || vm_state == VmState::kPaused;
    Status st = running ? BackupRunning(*vm, run, ctx) : BackupStopped(*vm, run, ctx);
    if (st.ok()) st = run.ready();  // (both wait for it before they read; this says so for the manifest)
    if (!st.ok()) {
      for (auto& note : run.notes) ctx.Log(note);
      return finish(st);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t read = 0, uploaded = 0, size = 0, chunks_up = 0;
    StageTimes t;
    bool incremental = true;
    std::vector<ManifestDisk> disks;
    for (size_t i = 0; i < run.results.size(); ++i) {
      auto& r = run.results[i];
      read += r.bytes_read;
      uploaded += r.bytes_uploaded;
      size += r.size;
      chunks_up += r.chunks_uploaded;
      t.read += r.times.read;
      t.seal += r.times.seal;
      t.upload += r.times.upload;
      incremental &= r.incremental;
      disks.push_back({i, vm->spec().disks[i].pool, vm->spec().disks[i].volume, r.size, r.chunks});
    }
    // Stage throughput: bytes through each stage per second of that stage.
    auto rate = [&](double s) { return MibPerSecond(read, s); };
    json stages = {{"read", {{"seconds", t.read}, {"mib_per_s", rate(t.read)}}},
                   {"compress_encrypt", {{"seconds", t.seal}, {"mib_per_s", rate(t.seal)}}},
                   {"upload", {{"seconds", t.upload}, {"mib_per_s", rate(t.upload)}}}};
    std::string slowest = t.read >= t.seal && t.read >= t.upload ? "read"
                          : t.seal >= t.upload                   ? "compress_encrypt"
                                                                 : "upload";
    Manifest manifest;
    manifest.id = run.id;
    manifest.vm = vm->spec().name;
    manifest.created = NowMs();
    manifest.spec = ToJson(vm->spec());
    manifest.disks = std::move(disks);
    manifest.incremental = incremental && run.prev_manifest.has_value();
    manifest.parent = run.prev_manifest ? run.prev_backup : "";
    manifest.consistency = run.consistency;
    manifest.bytes_read = read;
    manifest.bytes_uploaded = uploaded;
    manifest.size = size;
    manifest.seconds = secs;
    manifest.chunk_size = repo->config().chunk_size;
    Status w = repo->WriteManifest(manifest);
    if (!w.ok()) return finish(w.Context("writing the manifest"));
    Status ps = store_.Put(StateKey(run.repo_name, vm->spec().name),
                           json({{"bitmap", run.new_bitmap}, {"backup", run.id}}).dump());
    if (!ps.ok()) log::Warn("vm {}: backup state not recorded: {}", vm->spec().name, ps.message());
    for (auto& note : run.notes) ctx.Log(note);
    ctx.Log(run.consistency);
    ctx.Log("read " + FormatSize(read) + " of " + FormatSize(size) + ", uploaded " + FormatSize(uploaded) + " in " +
            std::to_string(chunks_up) + " new chunk(s); slowest stage: " + slowest);
    events_.Publish({{"type", "backup"}, {"vm", vm->spec().name}, {"backup", run.id}, {"action", "created"}});
    return finish(json{{"id", run.id},
                       {"vm", vm->spec().name},
                       {"repo", run.repo_name},
                       {"bytes_read", read},
                       {"bytes_uploaded", uploaded},
                       {"size", size},
                       {"seconds", secs},
                       {"incremental", manifest.incremental},
                       {"consistency", run.consistency},
                       {"stages", stages},
                       {"slowest_stage", slowest},
                       {"notes", run.notes}});
  });
}

Result<VmManager::Hold> HoldRestoredVm(const Manifest& manifest, const std::string& name, const std::string& pool,
                                       bool network, VmManager& vms, Storage& storage, Networks& networks) {
  PAMPA_ASSIGN_OR_RETURN(VmSpec spec, VmSpecFromJson(manifest.spec));
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", name));
  if (vms.Show(name).ok()) return Status::Conflict("vm '" + name + "' already exists; pick another --as name");
  std::string use_pool = pool.empty() ? "default" : pool;
  PAMPA_RETURN_IF_ERROR(storage.GetPool(use_pool).status());
  spec.name = name;
  spec.uuid = NewUuid();
  if (!network) spec.nics.clear();
  for (auto& nic : spec.nics) {
    nic.mac = NewMac();
    if (!networks.Get(nic.network).ok())
      return Status::NotFound("the backup's network '" + nic.network + "' does not exist here");
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    // New volumes of its own (no linked-clone base); the bus, limits and slot
    // stay, so the guest finds its disks where it had them.
    DiskSpec& disk = spec.disks[i];
    disk.pool = use_pool;
    disk.volume = name + "-disk" + std::to_string(i);
    disk.base.clear();
    if (storage.GetVolume(use_pool, disk.volume).ok()) {
      return Status::Conflict("volume '" + disk.volume + "' already exists in pool '" + use_pool + "'");
    }
  }
  // Should pampad die mid-way, its next start removes the new VM and its volumes.
  auto fresh = vms.HoldNewVm(spec, VmOp::kRestore, "restore");
  if (!fresh.ok() && fresh.status().code() == ErrorCode::kConflict) {
    return Status::Conflict("vm '" + name + "' already exists; pick another --as name");
  }
  return fresh;
}

Result<std::string> BackupJobs::Restore(std::shared_ptr<Repository> repo, const std::string& backup_id,
                                        const std::string& target, const std::string& pool, bool in_place,
                                        bool discard_snapshots) {
  PAMPA_ASSIGN_OR_RETURN(auto manifest, repo->ReadManifest(backup_id));
  PAMPA_ASSIGN_OR_RETURN(VmSpec spec, VmSpecFromJson(manifest.spec));
  std::string name = target.empty() ? spec.name : target;
  VmManager::Hold hold;
  if (in_place) {
    PAMPA_ASSIGN_OR_RETURN(hold, vms_.HoldVm(name, VmOp::kRestore, VmAction::kRestoreInPlace));
    if (hold.spec().disks.size() != manifest.disks.size()) {
      return Status::Invalid("vm '" + name + "' has " + std::to_string(hold.spec().disks.size()) +
                             " disk(s) but the backup has " + std::to_string(manifest.disks.size()));
    }
    // The new disks carry no snapshots: say what would be lost before losing it.
    PAMPA_ASSIGN_OR_RETURN(auto snapshots, store_.List("snapshots/" + name + "/"));
    if (!snapshots.empty() && !discard_snapshots) {
      std::string names;
      for (auto& [key, value] : snapshots) {
        auto meta = json::parse(value, nullptr, false);
        names += (names.empty() ? "" : ", ") + key.substr(key.rfind('/') + 1) +
                 (meta.is_object() && meta.value("memory", false) ? " (with RAM)" : "");
      }
      return Status::Conflict("vm '" + name + "' has " + std::to_string(snapshots.size()) + " snapshot(s): " + names +
                              "; an in-place restore discards them: add --discard-snapshots, or restore "
                              "--as a new VM");
    }
  } else {
    if (target.empty()) return Status::Invalid("give the new VM's name with --as NAME (or restore --in-place)");
    PAMPA_ASSIGN_OR_RETURN(hold, HoldRestoredVm(manifest, name, pool, /*network=*/true, vms_, storage_, networks_));
  }
  std::string intent = in_place ? "restore-in-place" : "restore";
  // Over an existing VM: should pampad die mid-way, its next start marks the VM incomplete.
  if (in_place) PAMPA_RETURN_IF_ERROR(vms_.WriteIntent(intent, hold.spec()));
  auto held = std::make_shared<VmManager::Hold>(std::move(hold));
  return tasks_.Start(
      "restore", name, [this, held, repo, manifest, in_place, intent](TaskContext& ctx) -> Result<json> {
        VmManager::Hold owned = std::move(*held);
        VmManager::Hold* vm = &owned;
        const VmSpec& spec = vm->spec();
        auto start = std::chrono::steady_clock::now();
        auto fail = [&](const Status& st) -> Result<json> {
          if (!in_place) {
            vms_.RemoveVolumes(spec);
            vms_.Abandon(owned, intent);
          } else {
            (void)vms_.ClearIntent(intent, spec.name);
            vm->Note("a restore over this VM failed: its disks are incomplete; run the restore again");
          }
          return st;
        };
        uint64_t total = 0, done_before = 0;
        StageTimes times;
        for (auto& d : manifest.disks) total += d.DataChunks() * repo->config().chunk_size;
        if (Status st = MakeDirs(vm->paths().dir, 0700); !st.ok()) return fail(st);
        KillStaleNbd(vm->paths().dir);
        for (size_t i = 0; i < spec.disks.size(); ++i) {
          const ManifestDisk& disk = manifest.disks[i];
          uint64_t size = disk.size;
          const std::vector<std::string>& chunks = disk.chunks;
          const auto& d = spec.disks[i];
          if (in_place) {
            Status del = storage_.DeleteVolume(d.pool, d.volume);
            if (!del.ok() && del.code() != ErrorCode::kNotFound) return fail(del);
          }
          auto vol = storage_.CreateVolume(d.pool, d.volume, size, "qcow2", /*preallocate=*/true);
          if (!vol.ok()) return fail(vol.status());
          auto map = MapImage(vol->path, "qcow2");
          if (!map.ok()) return fail(map.status());
          Status st = RestoreDisk(
              *repo, chunks, size, {vol->path, std::move(*map)}, kRestoreWorkers,
              [&](uint64_t done, uint64_t) {
                ctx.Progress(total ? double(done_before + done) / total : 1.0, "restoring " + d.volume);
              },
              ctx.cancel_flag(), &times);
          if (!st.ok()) return fail(st.Context("restoring " + d.volume));
          for (auto& c : chunks) done_before += c != kZeroChunk ? repo->config().chunk_size : 0;
          ctx.Log("restored " + d.volume + " (" + FormatSize(size) + ")");
        }
        if (in_place) {
          // The new images carry no dirty bitmaps and no snapshots: their
          // records go, with the intent, in one transaction.
          Txn txn;
          txn.DeletePrefix("snapshots/" + spec.name + "/")
              .Delete("snapshot-current/" + spec.name)
              .Delete(vms_.IntentKey(intent, spec.name));
          if (auto states = store_.List("backup-state/"); states.ok()) {
            for (auto& [k, v] : *states) {
              if (k.ends_with("/" + spec.name)) txn.Delete(k);
            }
          }
          if (auto done = CommitResolved(store_, txn); !done.ok()) return fail(done.status());
        } else {
          Status st = vms_.Keep(owned, intent);
          if (!st.ok()) return fail(st);
        }
        std::string vm_name = spec.name;
        if (in_place) vm->Note("");
        owned.Release();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        events_.Publish({{"type", "vm"}, {"vm", vm_name}, {"state", "stopped"}, {"restored", manifest.id}});
        ctx.Log(fmt::format("stage seconds summed over threads: fetch {:.2f}, decrypt+decompress {:.2f}, write {:.2f}",
                            times.read, times.seal, times.upload));
        return json{{"vm", vm_name},
                    {"backup", manifest.id},
                    {"seconds", secs},
                    {"in_place", in_place},
                    {"stages", {{"fetch", times.read}, {"open", times.seal}, {"write", times.upload}}}};
      });
}

}  // namespace pampa
