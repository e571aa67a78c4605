// Long work (image import now; backup, restore, migration later) runs as a
// task: it gets an id at once, reports progress, can be cancelled, and leaves
// a log. Finished tasks are kept in the store so history survives restarts.
// Thread-safe; each task body runs on its own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/events.h"
#include "base/mutex.h"
#include "store/store.h"

namespace pampa {

struct TaskInfo {
  std::string id;
  std::string type;    // "import", "vm-create", "vm-shutdown", ...
  std::string target;  // the object it works on, e.g. a VM name
  std::string state;   // running | succeeded | failed | cancelled
  double progress = 0;
  std::string message;  // latest progress message
  std::string error;
  std::vector<std::string> log;
  int64_t started = 0, finished = 0;  // unix ms
  nlohmann::json result;
  std::string host;  // the host that runs it (in a pool of hosts)
};
TaskInfo TaskFromJson(const nlohmann::json& j);

nlohmann::json ToJson(const TaskInfo& t);

// The handle a task body reports through.
class TaskContext {
 public:
  virtual ~TaskContext() = default;
  virtual void Progress(double fraction, const std::string& message = "") = 0;
  virtual void Log(const std::string& line) = 0;
  virtual const std::atomic<bool>* cancel_flag() const = 0;
  bool cancelled() const { return cancel_flag()->load(); }
};

// One step of a task made of several (an evacuation moving VM after VM):
// the step's progress from 0 to 1 fills [from, to] of the whole task's, its
// message prefixed; log lines and cancel are the whole task's.
class SubtaskContext : public TaskContext {
 public:
  SubtaskContext(TaskContext& whole, double from, double to, std::string prefix)
      : whole_(whole), from_(from), to_(to), prefix_(std::move(prefix)) {}
  void Progress(double fraction, const std::string& message = "") override {
    whole_.Progress(from_ + (to_ - from_) * fraction, message.empty() ? "" : prefix_ + message);
  }
  void Log(const std::string& line) override { whole_.Log(line); }
  const std::atomic<bool>* cancel_flag() const override { return whole_.cancel_flag(); }

 private:
  TaskContext& whole_;
  double from_, to_;
  std::string prefix_;
};

class Tasks {
 public:
  using Body = std::function<Result<nlohmann::json>(TaskContext&)>;
  // host: this host's name, recorded with each task. pooled: other hosts
  // read the records (the store is shared), so running tasks also record
  // their progress, at most once a second.
  Tasks(Store& store, EventBus& events, std::string host = "", bool pooled = false);
  ~Tasks();  // CancelAll()
  // Asks every running task to stop and waits until all have ended: before
  // what their bodies use goes away.
  void CancelAll();

  // Marks this host's tasks that were running when pampad died as failed.
  void RecoverInterrupted();
  // Starts body on a new thread and returns the task id at once.
  std::string Start(const std::string& type, const std::string& target, Body body);
  Result<TaskInfo> Get(const std::string& id);
  std::vector<TaskInfo> List();
  // Asks a running task to stop; kConflict when it has finished already.
  Status Cancel(const std::string& id);

 private:
  struct Running;
  // Writes t's record (retried); false when it could not be written.
  bool Persist(const TaskInfo& t);
  // Writes the final records that could not be written when their tasks ended.
  void PersistUnrecorded();

  Store& store_;
  EventBus& events_;
  const std::string host_;
  const bool pooled_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<Running>> running_ GUARDED_BY(mu_);
  // Tasks that ended while their final record could not be written: Get and
  // List answer from here (never a stale "running" from the store), and the
  // next task start writes them again.
  std::map<std::string, TaskInfo> unrecorded_ GUARDED_BY(mu_);
  std::condition_variable idle_;
  int active_ GUARDED_BY(mu_) = 0;  // task threads still running
};

}  // namespace pampa
