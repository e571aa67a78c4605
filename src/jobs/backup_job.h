// Backup and restore jobs: long work on VMs that sits above vm/ (this room
// will also hold migration and restore drills). A job holds its VM through
// VmManager::Hold for as long as it runs and works with no lock held.
//
// A backup of a running VM reads a point-in-time view (fleecing) through
// QEMU's NBD server, only the blocks its persistent dirty bitmap marks when
// the previous backup to this repository is known; a stopped VM's disks are
// read through qemu-nbd (qemu/nbd_server.h) and their bitmaps rotated with
// qemu-img (qemu/bitmaps.h). See docs/design.md for the flow and
// docs/formats/backup-repository.md for what lands in the repository.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backup/repository.h"
#include "base/events.h"
#include "net/networks.h"
#include "storage/pools.h"
#include "store/store.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

// Registers the VM a backup restores as: named `name`, with a new uuid and
// MACs (no NICs unless network), its disks to be volumes NAME-diskN in pool
// ("" = default). Checks that the name is free, the pool and the networks
// exist and no such volume does. Held for VmOp::kRestore under the intent
// "restore" (a pampad that dies before Keep has it removed at its next start).
Result<VmManager::Hold> HoldRestoredVm(const Manifest& manifest, const std::string& name, const std::string& pool,
                                       bool network, VmManager& vms, Storage& storage, Networks& networks);

class BackupJobs {
 public:
  BackupJobs(VmManager& vms, Store& store, Storage& storage, Networks& networks, Tasks& tasks, EventBus& events);

  // Backs a VM up into repo (hot when it runs); returns the task id.
  // check_repo (Repos::Open's deferred check), when given, runs in the task
  // while the disks are prepared, before the lock; the backup fails if it does.
  Result<std::string> Backup(const std::string& vm, std::shared_ptr<Repository> repo, const std::string& repo_name,
                             std::function<Status()> check_repo = {});
  // Restores a backup as a new VM (new uuid and MACs), or in place over a
  // stopped VM; returns the task id. A failed or interrupted restore of a new
  // VM leaves nothing behind. In place over a VM with snapshots is refused
  // (naming them) unless discard_snapshots; a new VM's name must be free.
  Result<std::string> Restore(std::shared_ptr<Repository> repo, const std::string& backup_id,
                              const std::string& target_vm, const std::string& pool, bool in_place,
                              bool discard_snapshots = false);

 private:
  struct BackupRun;
  Status BackupRunning(VmManager::Hold& vm, BackupRun& run, TaskContext& ctx);
  Status BackupStopped(VmManager::Hold& vm, BackupRun& run, TaskContext& ctx);

  VmManager& vms_;
  Store& store_;
  Storage& storage_;
  Networks& networks_;
  Tasks& tasks_;
  EventBus& events_;
};

}  // namespace pampa
