// Restore drills ("drills/<id>" in the store): proof, before a disaster, that
// a VM's latest backup boots, and how long recovery takes. A drill
// live-restores the backup to a scratch VM without network, waits for the
// guest agent, runs the drill's check inside (exit 0 = healthy), records the
// time from start to healthy (the recovery time), lets the background copy
// read every chunk of the backup back (a damaged chunk fails the drill, named),
// then deletes the scratch VM. Weekly, or on demand; one drill at a time, and
// none when the host lacks the memory for the scratch VM.
#pragma once

#include <chrono>
#include <condition_variable>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backup/repos.h"
#include "base/events.h"
#include "base/mutex.h"
#include "jobs/backup_schedules.h"
#include "jobs/live_restore.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

// "mon".."sun" (or the whole English name, any case) -> 0 (Sunday) .. 6; -1 when unknown.
int ParseWeekday(const std::string& day);
// The first local time on weekday (0 = Sunday) at HH:MM strictly after after_ms (unix ms).
int64_t NextWeeklyRun(int weekday, const std::string& hhmm, int64_t after_ms);

struct DrillRequest {
  std::string vm, repo;
  std::string day, time;              // weekly: "sun".."sat" (or names), "HH:MM" local
  std::string check;                  // run in the guest with /bin/sh -c; empty: the agent answering is healthy
  std::chrono::seconds timeout{600};  // from start to healthy
};

class RestoreDrills {
 public:
  RestoreDrills(Store& store, VmManager& vms, LiveRestores& live, Repos& repos, Tasks& tasks, EventBus& events);
  ~RestoreDrills();
  void Start();
  void Stop();

  Result<nlohmann::json> Add(const DrillRequest& req);
  Result<std::vector<nlohmann::json>> List();
  Status Remove(const std::string& id);
  // Runs a drill now, in a task ("drill"); returns the task id. The task
  // fails when the drill does.
  Result<std::string> RunNow(const std::string& id);

 private:
  // Runs one drill and records its result (waits while another runs).
  nlohmann::json Run(const nlohmann::json& drill, TaskContext& ctx);
  // The drill itself; its result, or why it failed.
  Result<nlohmann::json> Drill(const nlohmann::json& drill, const std::string& scratch, TaskContext& ctx);
  void RemoveScratch(const std::string& scratch);
  void Loop();

  Store& store_;
  VmManager& vms_;
  LiveRestores& live_;
  Repos& repos_;
  Tasks& tasks_;
  EventBus& events_;
  Mutex mu_;
  std::condition_variable cv_;  // stopping_ changed
  bool stopping_ GUARDED_BY(mu_) = false;
  OneAtATime one_drill_;  // one drill at a time
  std::thread thread_;
};

}  // namespace pampa
