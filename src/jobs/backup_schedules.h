// Daily backup schedules ("schedules/<id>" in the store), run by pampad: each
// run backs up its VMs, applies its retention policy, and records its result,
// which `schedule list` and `host check` show until the next success.
// Thread-safe; the schedule thread runs one schedule at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backup/prune.h"
#include "backup/repos.h"
#include "base/mutex.h"
#include "jobs/backup_job.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

// The first local time HH:MM strictly after after_ms (unix ms).
int64_t NextDailyRun(const std::string& hhmm, int64_t after_ms);
Status ValidateDailyTime(const std::string& hhmm);

class BackupScheduler {
 public:
  BackupScheduler(Store& store, VmManager& vms, BackupJobs& jobs, Repos& repos, Tasks& tasks, EventBus& events);
  ~BackupScheduler();
  void Start();
  void Stop();

  Result<nlohmann::json> Add(const std::vector<std::string>& vms, const std::string& repo, const std::string& daily,
                             const RetentionPolicy& keep);
  Result<std::vector<nlohmann::json>> List();
  Status Delete(const std::string& id);
  // Runs a schedule now, in a task; returns the task id.
  Result<std::string> RunNow(const std::string& id);

 private:
  nlohmann::json RunSchedule(nlohmann::json schedule, TaskContext* ctx);
  void Loop();

  Store& store_;
  VmManager& vms_;
  BackupJobs& jobs_;
  Repos& repos_;
  Tasks& tasks_;
  EventBus& events_;
  Mutex mu_;
  std::condition_variable cv_;  // stopping_ changed
  bool stopping_ GUARDED_BY(mu_) = false;
  OneAtATime one_run_;  // one schedule run at a time
  std::thread thread_;
};

}  // namespace pampa
