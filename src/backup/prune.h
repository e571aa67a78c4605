// Retention (which backups to keep) and garbage collection of chunks no
// backup references. GC never removes a chunk a running backup may be about
// to reference: backups hold "locks/<id>", GC holds "locks/gc-*", and each
// checks for the other after taking its own (see docs/formats).
#pragma once

#include <nlohmann/json.hpp>

#include "backup/repository.h"

namespace pampa {

struct RetentionPolicy {
  int keep_last = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0, keep_yearly = 0;
  bool empty() const { return !keep_last && !keep_daily && !keep_weekly && !keep_monthly && !keep_yearly; }
};

struct BackupStamp {
  std::string id;
  std::string vm;
  int64_t created_ms = 0;
};

// Which of the backups (of one VM) the policy keeps; pure, for unit tests.
std::vector<std::string> BackupsToKeep(std::vector<BackupStamp> backups, const RetentionPolicy& policy);

// Applies the policy per VM (all VMs, or only `vm`), deletes the manifests of
// the others unless dry_run, then collects garbage. Returns {"kept", "removed",
// "chunks_deleted", "bytes_freed", "gc"}.
Result<nlohmann::json> Prune(Repository& repo, const RetentionPolicy& policy, const std::string& vm, bool dry_run);

// Deletes unreferenced chunks (and stale temporary files); deferred while a backup runs.
Result<nlohmann::json> CollectGarbage(Repository& repo);

// Taken by a backup before it relies on any chunk being there; waits while a
// GC runs, then reloads the chunk index. Released with repo.RemoveLock(name).
// `previous`: a backup whose manifest the caller read before the lock (beside
// it, to save the round trips); the answer says whether that manifest still
// exists now that the lock is held, which means its chunks do too (a GC keeps
// what a manifest names and defers to the lock). True when previous is empty.
// Looked up beside the gc- lock listing.
Result<bool> LockForBackup(Repository& repo, const std::string& name, const std::string& previous = "");

}  // namespace pampa
