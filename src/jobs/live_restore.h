// Live restore: a backup comes back as a new VM that runs at once, its disks
// read from the repository on demand while a background copy fills them.
//
//   pampa-backup-export (its own process)     QEMU
//     NBD export "diskN" of the backup   <--  qcow2 volume NAME-diskN, whose backing
//     (backup/nbd_export.h)                   is that export; the guest's writes stay
//                                             in the volume, and block-stream copies
//                                             the rest into it, then drops the backing
//
// The export server is not pampad, and the copy is a QEMU block job: a pampad
// restart or crash interrupts neither. What pampad keeps is a record
// ("live-restores/<vm>") from which it restarts a dead export server (QEMU's
// NBD client reconnects) and resumes watching the copy; once every disk has
// lost its backing the export server is stopped and the record goes.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "backup/repos.h"
#include "base/events.h"
#include "base/mutex.h"
#include "net/networks.h"
#include "storage/pools.h"
#include "store/store.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

class LiveRestores {
 public:
  // exporter: the path of the pampa-backup-export binary.
  LiveRestores(VmManager& vms, Store& store, Storage& storage, Networks& networks, Tasks& tasks, EventBus& events,
               std::string exporter);
  // Stops watching (the copies go on in QEMU and are watched again at the next start).
  ~LiveRestores();
  LiveRestores(const LiveRestores&) = delete;
  LiveRestores& operator=(const LiveRestores&) = delete;

  struct Request {
    RepoInfo repo;  // handed to the export server, which opens the repository itself
    std::shared_ptr<Repository> repository;
    std::string backup, name, pool;
    bool network = true;    // false: the new VM has no NICs (a restore drill's scratch VM)
    uint64_t copy_bps = 0;  // the background copy's speed limit in bytes/s (0: none)
  };
  // Checks the request, then starts the VM in a task ("restore") whose result
  // names the task of the background copy ("live-restore-copy").
  Result<std::string> Start(Request req);
  // The same, run in the caller's task: returns once the VM runs.
  Result<nlohmann::json> StartNow(Request req, TaskContext& ctx);

  // At pampad start, before VMs are loaded: the export servers of unfinished
  // live restores run again, so that VMs reading from them can start.
  void RestartExports();
  // After VMs are loaded: each unfinished copy is watched again, in a task.
  void ResumeCopies();
  // The copy task's id while vm is being copied, "" otherwise.
  std::string CopyTask(const std::string& vm);
  // For a VM deleted during its live restore: stops the export server and
  // drops the record now (its watcher would at its next look, a second later).
  void Forget(const std::string& vm);

 private:
  struct Record;
  Result<VmManager::Hold> Prepare(const Request& req, Manifest* manifest);
  Result<nlohmann::json> Begin(const Request& req, const Manifest& manifest, VmManager::Hold hold, TaskContext& ctx);
  // Starts rec's export server unless it runs; with wait, returns once it
  // accepts connections (or why it could not).
  Status SpawnExport(Record& rec, bool wait = true);
  void StopExport(const Record& rec);
  Result<std::optional<Record>> Load(const std::string& vm);
  Status Save(const Record& rec);
  // Starts the task that watches rec's copy (once per live restore); its id.
  std::string WatchCopy(const Record& rec);
  Result<nlohmann::json> Copy(const std::string& vm, const std::string& restore_id, TaskContext& ctx);
  // Stops the export and removes the record and files of vm's live restore
  // (only the one with this id, unless id is empty); Ok when there is none.
  Status DropRecord(const std::string& vm, const std::string& id);

  VmManager& vms_;
  Store& store_;
  Storage& storage_;
  Networks& networks_;
  Tasks& tasks_;
  EventBus& events_;
  const std::string exporter_;

  Mutex mu_;
  std::condition_variable changed_;  // stopping_, or a watcher ended
  bool stopping_ GUARDED_BY(mu_) = false;
  struct Watched {
    std::string vm, task;  // the VM and its copy task's id
  };
  std::map<std::string, Watched> watched_ GUARDED_BY(mu_);  // by live restore id
  std::set<std::string> deleted_ GUARDED_BY(mu_);           // VMs deleted since their watcher last looked
  int subscription_ = 0;                                    // to the event bus: VM deletions wake their watcher
};

}  // namespace pampa
