#include "backup/prune.h"

#include <algorithm>
#include <ctime>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "backup/chunk_codec.h"
#include "base/log.h"

namespace pampa {

using json = nlohmann::json;

std::vector<std::string> BackupsToKeep(std::vector<BackupStamp> backups, const RetentionPolicy& p) {
  std::sort(backups.begin(), backups.end(),
            [](const BackupStamp& a, const BackupStamp& b) { return a.created_ms > b.created_ms; });  // newest first
  std::set<std::string> keep;
  for (int i = 0; i < p.keep_last && i < static_cast<int>(backups.size()); ++i) keep.insert(backups[i].id);
  // For each period kind: the newest backup of each of the N most recent periods.
  auto by_period = [&](int n, const char* fmt) {
    std::string last;
    int count = 0;
    for (auto& b : backups) {
      if (count >= n) break;
      std::time_t t = b.created_ms / 1000;
      std::tm tm{};
      gmtime_r(&t, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, fmt, &tm);
      if (buf == last) continue;
      last = buf;
      keep.insert(b.id);
      ++count;
    }
  };
  by_period(p.keep_daily, "%Y-%m-%d");
  by_period(p.keep_weekly, "%G-W%V");
  by_period(p.keep_monthly, "%Y-%m");
  by_period(p.keep_yearly, "%Y");
  std::vector<std::string> out;
  for (auto& b : backups) {
    if (keep.count(b.id)) out.push_back(b.id);
  }
  return out;
}

Result<bool> LockForBackup(Repository& repo, const std::string& name, const std::string& previous) {
  PAMPA_RETURN_IF_ERROR(repo.AddLock(name));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(30);
  auto kept = [&] { return previous.empty() ? Result<bool>(true) : repo.HasBackup(previous); };
  // Asked beside the listing, over another connection: the lock was whole
  // before either question.
  std::future<Result<bool>> first_look;
  if (!previous.empty()) first_look = std::async(std::launch::async, kept);
  bool waited = false;
  while (true) {
    auto locks = repo.ActiveLocks("gc-");
    if (!locks.ok()) {
      (void)repo.RemoveLock(name);
      return locks.status();
    }
    if (locks->empty()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      (void)repo.RemoveLock(name);
      return Status::Unavailable("a garbage collection has held the repository for 30 minutes");
    }
    waited = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  Result<bool> exists = first_look.valid() ? first_look.get() : Result<bool>(true);
  if (waited) {
    // Chunks (and the previous backup) may have gone while we waited: trust
    // only what exists now.
    Status reloaded = repo.ReloadChunkIndex();
    exists = reloaded.ok() ? kept() : Result<bool>(reloaded);
  }
  if (!exists.ok()) (void)repo.RemoveLock(name);
  return exists;
}

Result<json> CollectGarbage(Repository& repo) {
  std::string lock = "gc-" + ToHex(RandomBytes(6));
  PAMPA_RETURN_IF_ERROR(repo.AddLock(lock));
  // Its lock must not outlive it: a gc lock left behind holds every backup
  // to this repository in LockForBackup.
  auto release = [&] {
    if (Status st = repo.RemoveLock(lock); !st.ok()) log::Error("{} (ignored once this pampad restarts)", st.message());
  };
  auto locks = repo.ActiveLocks();
  if (!locks.ok()) {
    release();
    return locks.status();
  }
  for (auto& l : *locks) {
    if (l != lock) {
      release();
      return json{{"gc", "deferred: " + l + " holds the repository (a backup or another GC is running)"},
                  {"chunks_deleted", 0},
                  {"bytes_freed", 0}};
    }
  }
  std::set<std::string> referenced;
  auto ids = repo.ListBackups();
  if (!ids.ok()) {
    release();
    return ids.status();
  }
  for (auto& id : *ids) {
    auto m = repo.ReadManifest(id);
    if (!m.ok()) {
      // An unreadable manifest might still reference chunks: delete nothing.
      release();
      return json{{"gc", "skipped: manifest of " + id + " cannot be read (" + m.status().message() + ")"},
                  {"chunks_deleted", 0},
                  {"bytes_freed", 0}};
    }
    for (auto& d : m->disks) referenced.insert(d.chunks.begin(), d.chunks.end());
  }
  auto chunks = repo.ListChunks();
  if (!chunks.ok()) {
    release();
    return chunks.status();
  }
  uint64_t deleted = 0, freed = 0;
  for (auto& c : *chunks) {
    if (referenced.count(c)) continue;
    auto obj = repo.store().Get(Repository::ChunkObject(c));
    if (obj.ok()) freed += obj->size();
    if (repo.DeleteChunk(c).ok()) ++deleted;
  }
  release();
  return json{{"gc", "done"}, {"chunks_deleted", deleted}, {"bytes_freed", freed}};
}

Result<json> Prune(Repository& repo, const RetentionPolicy& policy, const std::string& vm, bool dry_run) {
  if (policy.empty())
    return Status::Invalid("give at least one --keep-last/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly");
  PAMPA_ASSIGN_OR_RETURN(auto ids, repo.ListBackups());
  std::map<std::string, std::vector<BackupStamp>> per_vm;
  for (auto& id : ids) {
    auto m = repo.ReadManifest(id);
    if (!m.ok()) continue;  // damaged manifests are verify's business, never pruned blindly
    const std::string& owner = m->vm;
    if (!vm.empty() && owner != vm) continue;
    per_vm[owner].push_back({id, owner, m->created});
  }
  json kept = json::array(), removed = json::array();
  for (auto& [owner, backups] : per_vm) {
    auto keep = BackupsToKeep(backups, policy);
    std::set<std::string> keep_set(keep.begin(), keep.end());
    for (auto& b : backups) {
      if (keep_set.count(b.id)) {
        kept.push_back(b.id);
        continue;
      }
      removed.push_back(b.id);
      if (!dry_run) PAMPA_RETURN_IF_ERROR(repo.DeleteManifest(b.id));
    }
  }
  json out = {{"kept", kept}, {"removed", removed}, {"dry_run", dry_run}};
  if (dry_run) {
    out["gc"] = "not run (dry run)";
    return out;
  }
  PAMPA_ASSIGN_OR_RETURN(auto gc, CollectGarbage(repo));
  out.update(gc);
  return out;
}

}  // namespace pampa
