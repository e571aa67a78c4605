#include "jobs/backup_schedules.h"

#include <ctime>

#include "backup/chunk_codec.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/units.h"

namespace pampa {
namespace {

using json = nlohmann::json;

json PolicyJson(const RetentionPolicy& p) {
  return {{"keep_last", p.keep_last},
          {"keep_daily", p.keep_daily},
          {"keep_weekly", p.keep_weekly},
          {"keep_monthly", p.keep_monthly},
          {"keep_yearly", p.keep_yearly}};
}

RetentionPolicy PolicyFromJson(const json& j) {
  RetentionPolicy p;
  p.keep_last = j.value("keep_last", 0);
  p.keep_daily = j.value("keep_daily", 0);
  p.keep_weekly = j.value("keep_weekly", 0);
  p.keep_monthly = j.value("keep_monthly", 0);
  p.keep_yearly = j.value("keep_yearly", 0);
  return p;
}

// A no-op context for runs started by the clock (their backups are tasks of their own).
class NullContext final : public TaskContext {
 public:
  void Progress(double, const std::string&) override {}
  void Log(const std::string& line) override { log::Info("schedule: {}", line); }
  const std::atomic<bool>* cancel_flag() const override { return &never_; }

 private:
  std::atomic<bool> never_{false};
};

}  // namespace

Status ValidateDailyTime(const std::string& t) {
  if (t.size() == 5 && t[2] == ':' && std::isdigit(t[0]) && std::isdigit(t[1]) && std::isdigit(t[3]) &&
      std::isdigit(t[4])) {
    int h = std::stoi(t.substr(0, 2)), m = std::stoi(t.substr(3, 2));
    if (h < 24 && m < 60) return Status::Ok();
  }
  return Status::Invalid("daily time '" + t + "' must be HH:MM in 24-hour local time, e.g. 02:30");
}

int64_t NextDailyRun(const std::string& hhmm, int64_t after_ms) {
  int h = std::stoi(hhmm.substr(0, 2)), m = std::stoi(hhmm.substr(3, 2));
  std::time_t after = after_ms / 1000;
  std::tm tm{};
  localtime_r(&after, &tm);
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = 0;
  tm.tm_isdst = -1;
  std::time_t candidate = std::mktime(&tm);
  if (candidate * 1000 <= after_ms) {
    tm.tm_mday += 1;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_isdst = -1;
    candidate = std::mktime(&tm);
  }
  return int64_t{candidate} * 1000;
}

BackupScheduler::BackupScheduler(Store& store, VmManager& vms, BackupJobs& jobs, Repos& repos, Tasks& tasks,
                                 EventBus& events)
    : store_(store), vms_(vms), jobs_(jobs), repos_(repos), tasks_(tasks), events_(events) {}

BackupScheduler::~BackupScheduler() { Stop(); }

void BackupScheduler::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void BackupScheduler::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<json> BackupScheduler::Add(const std::vector<std::string>& vms, const std::string& repo,
                                  const std::string& daily, const RetentionPolicy& keep) {
  if (vms.empty()) return Status::Invalid("name at least one VM to back up");
  for (auto& v : vms) PAMPA_RETURN_IF_ERROR(vms_.Show(v).status());
  PAMPA_RETURN_IF_ERROR(repos_.Get(repo).status());
  PAMPA_RETURN_IF_ERROR(ValidateDailyTime(daily));
  std::string id = "s-" + ToHex(RandomBytes(4));
  int64_t now = NowMs();
  json s = {{"id", id},
            {"vms", vms},
            {"repo", repo},
            {"daily", daily},
            {"keep", PolicyJson(keep)},
            {"created", now},
            {"last_run", 0},
            {"last_result", ""},
            {"next_run", NextDailyRun(daily, now)}};
  PAMPA_RETURN_IF_ERROR(store_.Create("schedules/" + id, s.dump()));
  return s;
}

Result<std::vector<json>> BackupScheduler::List() {
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("schedules/"));
  std::vector<json> out;
  for (auto& [k, v] : kvs) out.push_back(json::parse(v, nullptr, false));
  return out;
}

Status BackupScheduler::Delete(const std::string& id) {
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get("schedules/" + id));
  if (!v) return Status::NotFound("schedule '" + id + "' does not exist (see: pampa backup schedule list)");
  return store_.Delete("schedules/" + id);
}

Result<std::string> BackupScheduler::RunNow(const std::string& id) {
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get("schedules/" + id));
  if (!v) return Status::NotFound("schedule '" + id + "' does not exist (see: pampa backup schedule list)");
  json s = json::parse(*v, nullptr, false);
  return tasks_.Start("schedule", id, [this, s](TaskContext& ctx) -> Result<json> {
    json r = RunSchedule(s, &ctx);
    if (r.value("result", "") != "ok") return Status::Invalid(r.value("result", ""));
    return r;
  });
}

json BackupScheduler::RunSchedule(json s, TaskContext* ctx) {
  auto pass = one_run_.Enter();
  NullContext null;
  TaskContext& c = ctx ? *ctx : null;
  std::string id = s.value("id", ""), repo_name = s.value("repo", "");
  std::vector<std::string> failures;
  json backups = json::array();
  json removed = json::object();  // vm -> the backups retention removed
  auto repo = repos_.Open(repo_name);
  if (!repo.ok()) failures.push_back("repository " + repo_name + ": " + repo.status().message());
  auto vms = s.value("vms", std::vector<std::string>{});
  for (size_t i = 0; repo.ok() && i < vms.size(); ++i) {
    // In a pool every host runs the schedule for the VMs it runs.
    if (vms_.Show(vms[i]).status().code() == ErrorCode::kNotFound && vms_.config().pooled) continue;
    auto task = jobs_.Backup(vms[i], *repo, repo_name);
    if (!task.ok()) {
      failures.push_back(vms[i] + ": " + task.status().message());
      continue;
    }
    TaskInfo t;
    while (true) {
      auto got = tasks_.Get(*task);
      if (got.ok() && got->state != "running") {
        t = *got;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (t.state != "succeeded") {
      failures.push_back(vms[i] + ": " + t.error);
      continue;
    }
    backups.push_back(t.result.value("id", ""));
    c.Log("backed up " + vms[i] + ": " + t.result.value("id", ""));
    c.Progress(double(i + 1) / vms.size(), "backing up");
    RetentionPolicy keep = PolicyFromJson(s.value("keep", json::object()));
    if (!keep.empty()) {
      auto pruned = Prune(**repo, keep, vms[i], false);
      if (!pruned.ok())
        failures.push_back(vms[i] + " retention: " + pruned.status().message());
      else {
        removed[vms[i]] = (*pruned)["removed"];
        c.Log("retention for " + vms[i] + ": removed " + std::to_string((*pruned)["removed"].size()) + " backup(s)");
      }
    }
  }
  std::string result = "ok";
  if (!failures.empty()) {
    result = "failed: ";
    for (size_t i = 0; i < failures.size(); ++i) result += (i ? "; " : "") + failures[i];
  }
  // Re-read and update only the run fields: the schedule may have been deleted meanwhile.
  auto cur = store_.Get("schedules/" + id);
  if (cur.ok() && cur->has_value()) {
    json now = json::parse(**cur, nullptr, false);
    int64_t t = NowMs();
    now["last_run"] = t;
    now["last_result"] = result;
    now["last_backups"] = backups;
    now["next_run"] = NextDailyRun(now.value("daily", "00:00"), t);
    if (result == "ok") now["last_success"] = t;
    (void)store_.Put("schedules/" + id, now.dump());
  }
  log::Info("schedule {}: {}, {} backup(s) made", id, result, backups.size());
  json report = {{"schedule", id}, {"result", result}, {"backups", backups}, {"removed", removed}};
  json event = report;
  event["type"] = "schedule";
  events_.Publish(event);
  return report;
}

void BackupScheduler::Loop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    lock.Unlock();
    auto list = List();
    if (list.ok()) {
      for (auto& s : *list) {
        if (NowMs() < s.value("next_run", int64_t{0})) continue;
        RunSchedule(s, nullptr);
      }
    }
    lock.Lock();
    lock.WaitFor(cv_, std::chrono::seconds(15), [&]() REQUIRES(mu_) { return stopping_; });
  }
}

}  // namespace pampa
