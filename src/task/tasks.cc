#include "task/tasks.h"

#include <chrono>
#include <optional>
#include <random>

#include "base/clock.h"
#include "base/log.h"
#include "base/retry.h"

namespace pampa {
namespace {

std::string NewId() {
  static Mutex mu;
  static std::mt19937_64 rng GUARDED_BY(mu){std::random_device{}()};
  MutexLock lock(&mu);
  // Time-ordered prefix so ids sort by start time.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%011llx%04x", static_cast<unsigned long long>(NowMs()),
                static_cast<unsigned>(rng() & 0xffff));
  return buf;
}

}  // namespace

TaskInfo TaskFromJson(const nlohmann::json& j) {
  TaskInfo t;
  t.id = j.value("id", "");
  t.type = j.value("type", "");
  t.target = j.value("target", "");
  t.state = j.value("state", "");
  t.progress = j.value("progress", 0.0);
  t.message = j.value("message", "");
  t.error = j.value("error", "");
  t.log = j.value("log", std::vector<std::string>{});
  t.started = j.value("started", int64_t{0});
  t.finished = j.value("finished", int64_t{0});
  t.result = j.value("result", nlohmann::json());
  t.host = j.value("host", "");
  return t;
}

nlohmann::json ToJson(const TaskInfo& t) {
  return {{"id", t.id},
          {"type", t.type},
          {"target", t.target},
          {"state", t.state},
          {"progress", t.progress},
          {"message", t.message},
          {"error", t.error},
          {"log", t.log},
          {"started", t.started},
          {"finished", t.finished},
          {"result", t.result},
          {"host", t.host}};
}

struct Tasks::Running final : TaskContext {
  Running(Tasks* owner, TaskInfo info) : owner(owner), info(std::move(info)) {}

  Tasks* const owner;
  Mutex mu;
  TaskInfo info GUARDED_BY(mu);
  std::atomic<bool> cancel{false};
  int64_t last_event_ms GUARDED_BY(mu) = 0;
  int64_t last_record_ms GUARDED_BY(mu) = 0;

  void Progress(double fraction, const std::string& message) override {
    nlohmann::json ev;
    std::optional<TaskInfo> record;
    {
      MutexLock lock(&mu);
      info.progress = std::clamp(fraction, 0.0, 1.0);
      if (!message.empty()) info.message = message;
      // Rate-limit progress events to 10 per second per task.
      int64_t now = NowMs();
      if (now - last_event_ms < 100 && fraction < 1.0) return;
      last_event_ms = now;
      ev = {{"type", "task"}, {"task", ToJson(info)}};
      if (owner->pooled_ && now - last_record_ms >= 1000) {
        last_record_ms = now;
        record = info;
      }
    }
    owner->events_.Publish(ev);
    if (record) owner->Persist(*record);  // other hosts show its progress from the store
  }
  void Log(const std::string& line) override {
    MutexLock lock(&mu);
    info.log.push_back(line);
  }
  const std::atomic<bool>* cancel_flag() const override { return &cancel; }
};

Tasks::Tasks(Store& store, EventBus& events, std::string host, bool pooled)
    : store_(store), events_(events), host_(std::move(host)), pooled_(pooled) {}

Tasks::~Tasks() { CancelAll(); }

void Tasks::CancelAll() {
  MutexLock lock(&mu_);
  for (auto& [id, r] : running_) r->cancel = true;
  lock.Wait(idle_, [&]() REQUIRES(mu_) { return active_ == 0; });
}

bool Tasks::Persist(const TaskInfo& t) {
  std::string record = ToJson(t).dump();
  Status st = RetryIdempotent([&] { return store_.Put("tasks/" + t.id, record); });
  if (!st.ok()) log::Warn("cannot record task {}: {}", t.id, st.message());
  return st.ok();
}

void Tasks::PersistUnrecorded() {
  std::vector<TaskInfo> pending;
  {
    MutexLock lock(&mu_);
    for (auto& [id, t] : unrecorded_) pending.push_back(t);
  }
  for (auto& t : pending) {
    if (!Persist(t)) continue;
    MutexLock lock(&mu_);
    unrecorded_.erase(t.id);
  }
}

void Tasks::RecoverInterrupted() {
  auto kvs = store_.List("tasks/");
  if (!kvs.ok()) return;
  for (auto& [k, v] : *kvs) {
    auto t = TaskFromJson(nlohmann::json::parse(v, nullptr, false));
    if (t.state != "running" || (!t.host.empty() && t.host != host_)) continue;
    t.state = "failed";
    t.error = "interrupted: pampad stopped while this task was running";
    t.finished = NowMs();
    Persist(t);
  }
}

std::string Tasks::Start(const std::string& type, const std::string& target, Body body) {
  TaskInfo info;
  info.id = NewId();
  info.type = type;
  info.target = target;
  info.state = "running";
  info.started = NowMs();
  info.host = host_;
  PersistUnrecorded();
  Persist(info);
  events_.Publish({{"type", "task"}, {"task", ToJson(info)}});
  auto r = std::make_shared<Running>(this, info);
  MutexLock lock(&mu_);
  running_[info.id] = r;
  ++active_;
  std::thread([this, r, body = std::move(body)] {
    Result<nlohmann::json> result = Status::Internal("task did not run");
    try {
      result = body(*r);
    } catch (const std::exception& e) {
      result = Status::Internal(std::string("task crashed: ") + e.what());
    }
    TaskInfo done;
    {
      MutexLock l(&r->mu);
      r->info.finished = NowMs();
      if (result.ok()) {
        r->info.state = "succeeded";
        r->info.progress = 1.0;
        r->info.result = result.value();
      } else {
        bool cancelled = r->cancel || result.status().code() == ErrorCode::kCancelled;
        r->info.state = cancelled ? "cancelled" : "failed";
        r->info.error = result.status().message();
      }
      done = r->info;
    }
    bool recorded = Persist(done);
    events_.Publish({{"type", "task"}, {"task", ToJson(done)}});
    MutexLock l(&mu_);
    if (!recorded) unrecorded_[done.id] = done;
    running_.erase(done.id);
    --active_;
    idle_.notify_all();
  }).detach();
  return info.id;
}

Result<TaskInfo> Tasks::Get(const std::string& id) {
  {
    MutexLock lock(&mu_);
    auto it = running_.find(id);
    if (it != running_.end()) {
      MutexLock l(&it->second->mu);
      return it->second->info;
    }
    auto ended = unrecorded_.find(id);
    if (ended != unrecorded_.end()) return ended->second;
  }
  auto v = store_.Get("tasks/" + id);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Status::NotFound("task '" + id + "' does not exist (see: pampa task list)");
  return TaskFromJson(nlohmann::json::parse(**v, nullptr, false));
}

std::vector<TaskInfo> Tasks::List() {
  std::vector<TaskInfo> out;
  std::map<std::string, TaskInfo> unrecorded;
  {
    MutexLock lock(&mu_);
    unrecorded = unrecorded_;
  }
  auto kvs = store_.List("tasks/");
  if (kvs.ok()) {
    for (auto& [k, v] : *kvs) {
      unrecorded.erase(k.substr(6));
      auto t = Get(k.substr(6));
      if (t.ok()) out.push_back(*t);
    }
  }
  for (auto& [id, t] : unrecorded) out.push_back(t);  // not even its first record was written
  return out;
}

Status Tasks::Cancel(const std::string& id) {
  MutexLock lock(&mu_);
  auto it = running_.find(id);
  if (it == running_.end()) {
    auto v = store_.Get("tasks/" + id);
    if (v.ok() && v->has_value()) return Status::Conflict("task " + id + " has already finished");
    return Status::NotFound("task '" + id + "' does not exist");
  }
  it->second->cancel = true;
  return Status::Ok();
}

}  // namespace pampa
