#include "jobs/restore_drills.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "backup/chunk_codec.h"
#include "base/clock.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "vm/vm_spec.h"

namespace pampa {

using json = nlohmann::json;

namespace {

constexpr const char* kDays[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
// What a scratch VM needs beyond its own memory (QEMU itself).
constexpr uint64_t kQemuOverhead = 128ull << 20;

std::string Key(const std::string& id) { return "drills/" + id; }

Status NoSuchDrill(const std::string& id) {
  return Status::NotFound("drill '" + id + "' does not exist (see: pampa backup drill list)");
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int ParseWeekday(const std::string& day) {
  std::string d = day;
  for (auto& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (int i = 0; i < 7; ++i) {
    std::string full = kDays[i];
    if (d == full || d == full.substr(0, 3)) return i;
  }
  return -1;
}

int64_t NextWeeklyRun(int weekday, const std::string& hhmm, int64_t after_ms) {
  int64_t t = NextDailyRun(hhmm, after_ms);
  for (int i = 0; i < 8; ++i) {
    std::time_t secs = t / 1000;
    std::tm tm{};
    localtime_r(&secs, &tm);
    if (tm.tm_wday == weekday) return t;
    t = NextDailyRun(hhmm, t);
  }
  return t;
}

RestoreDrills::RestoreDrills(Store& store, VmManager& vms, LiveRestores& live, Repos& repos, Tasks& tasks,
                             EventBus& events)
    : store_(store), vms_(vms), live_(live), repos_(repos), tasks_(tasks), events_(events) {}

RestoreDrills::~RestoreDrills() {
  Stop();
  one_drill_.WaitIdle();  // a drill started by hand ends soon: it sees stopping_
}

void RestoreDrills::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void RestoreDrills::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<json> RestoreDrills::Add(const DrillRequest& req) {
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", req.vm));
  PAMPA_RETURN_IF_ERROR(repos_.Get(req.repo).status());
  int day = ParseWeekday(req.day);
  if (day < 0) return Status::Invalid("day '" + req.day + "' must be a weekday: mon, tue, wed, thu, fri, sat or sun");
  PAMPA_RETURN_IF_ERROR(ValidateDailyTime(req.time));
  if (req.timeout < std::chrono::seconds(10) || req.timeout > std::chrono::hours(24)) {
    return Status::Invalid("the drill's timeout must be from 10s to 24h");
  }
  if (req.check.find('\n') != std::string::npos) return Status::Invalid("the check must be one line");
  std::string id = "d-" + ToHex(RandomBytes(4));
  int64_t now = NowMs();
  json d = {{"id", id},
            {"vm", req.vm},
            {"repo", req.repo},
            {"day", std::string(kDays[day]).substr(0, 3)},
            {"time", req.time},
            {"check", req.check},
            {"timeout", req.timeout.count()},
            {"created", now},
            {"last_run", 0},
            {"last_result", ""},
            {"next_run", NextWeeklyRun(day, req.time, now)}};
  PAMPA_RETURN_IF_ERROR(store_.Create(Key(id), d.dump()));
  return d;
}

Result<std::vector<json>> RestoreDrills::List() {
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("drills/"));
  std::vector<json> out;
  for (auto& [k, v] : kvs) out.push_back(json::parse(v, nullptr, false));
  return out;
}

Status RestoreDrills::Remove(const std::string& id) {
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get(Key(id)));
  if (!v) return NoSuchDrill(id);
  return store_.Delete(Key(id));
}

Result<std::string> RestoreDrills::RunNow(const std::string& id) {
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get(Key(id)));
  if (!v) return NoSuchDrill(id);
  json d = json::parse(*v, nullptr, false);
  return tasks_.Start("drill", id, [this, d](TaskContext& ctx) -> Result<json> {
    json r = Run(d, ctx);
    if (r.value("result", "") != "ok") return Status::Invalid(r.value("result", ""));
    return r;
  });
}

void RestoreDrills::RemoveScratch(const std::string& scratch) {
  if (!vms_.Show(scratch).ok()) return;
  (void)vms_.Stop(scratch);  // already stopped is fine
  if (Status st = vms_.Delete(scratch); !st.ok()) log::Warn("drill: cannot delete {}: {}", scratch, st.message());
  live_.Forget(scratch);
}

json RestoreDrills::Run(const json& drill, TaskContext& ctx) {
  auto pass = one_drill_.Enter();
  std::string id = drill.value("id", ""), vm = drill.value("vm", "");
  // The scratch VM is named after the drill: one a crashed pampad left is this drill's to remove.
  std::string scratch = "drill-" + id;
  RemoveScratch(scratch);
  auto outcome = Drill(drill, scratch, ctx);
  RemoveScratch(scratch);

  json report = {{"drill", id}, {"vm", vm}};
  std::string result = "ok";
  if (outcome.ok()) {
    report.update(*outcome);
    if (outcome->contains("skipped")) result = "skipped: " + (*outcome)["skipped"].get<std::string>();
  } else {
    result = "failed: " + outcome.status().message();
  }
  report["result"] = result;
  auto cur = store_.Get(Key(id));
  if (cur.ok() && cur->has_value()) {  // the drill may have been removed meanwhile
    json now = json::parse(**cur, nullptr, false);
    int64_t t = NowMs();
    now["last_run"] = t;
    now["last_result"] = result;
    now["last_backup"] = report.value("backup", "");
    if (result == "ok") {
      now["last_success"] = t;
      now["last_recovery_seconds"] = report["recovery_seconds"];
    }
    now["next_run"] = NextWeeklyRun(ParseWeekday(now.value("day", "sun")), now.value("time", "00:00"), t);
    (void)store_.Put(Key(id), now.dump());
  }
  log::Info("drill {} of vm {}: {}", id, vm, result);
  json event = report;
  event["type"] = "drill";
  events_.Publish(event);
  return report;
}

Result<json> RestoreDrills::Drill(const json& drill, const std::string& scratch, TaskContext& ctx) {
  const std::string vm = drill.value("vm", ""), repo_name = drill.value("repo", ""), check = drill.value("check", "");
  const auto timeout = std::chrono::seconds(drill.value("timeout", 600));
  auto stopping = [&] {
    MutexLock lock(&mu_);
    return stopping_ || ctx.cancelled();
  };
  PAMPA_ASSIGN_OR_RETURN(auto info, repos_.Get(repo_name));
  PAMPA_ASSIGN_OR_RETURN(auto repo, repos_.Open(repo_name));
  // The latest backup of the VM (ids start with their UTC time).
  PAMPA_ASSIGN_OR_RETURN(auto ids, repo->ListBackups());
  std::sort(ids.rbegin(), ids.rend());
  std::optional<Manifest> latest;
  for (auto& id : ids) {
    if (id.find("-" + vm + "-") == std::string::npos) continue;
    auto m = repo->ReadManifest(id);
    if (m.ok() && m->vm == vm) {
      latest = std::move(*m);
      break;
    }
  }
  if (!latest) return Status::NotFound("repository '" + repo_name + "' holds no backup of vm '" + vm + "'");
  PAMPA_ASSIGN_OR_RETURN(VmSpec spec, VmSpecFromJson(latest->spec));
  uint64_t need = (uint64_t{spec.memory_mib} << 20) + kQemuOverhead, avail = HostAvailableMemoryBytes();
  if (avail < need) {
    return json{{"backup", latest->id},
                {"skipped", "the scratch VM needs " + FormatSize(need) + " of memory and the host has " +
                                FormatSize(avail) + " available"}};
  }

  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + timeout;
  ctx.Progress(0.05, "live-restoring backup " + latest->id + " as " + scratch + " (no network)");
  PAMPA_ASSIGN_OR_RETURN(json started,
                         live_.StartNow({info, repo, latest->id, scratch, "", /*network=*/false, 0}, ctx));
  ctx.Progress(0.2, "waiting for the guest agent");
  while (!vms_.AgentPing(scratch).ok()) {
    if (stopping()) return Status::Cancelled("the drill was interrupted");
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("the guest agent did not answer within " + std::to_string(timeout.count()) +
                                 " s of the restore");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  double agent = SecondsSince(t0);
  ctx.Log(fmt::format("the guest agent answered {:.1f} s after the restore began", agent));
  if (!check.empty()) {
    ctx.Progress(0.3, "running the check: " + check);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
      auto r = vms_.Exec(scratch, {"/bin/sh", "-c", check}, std::max(left, std::chrono::seconds(1)));
      if (r.ok() && r->exit_code == 0) break;
      std::string why = r.ok() ? "exited with " + std::to_string(r->exit_code) + (r->err.empty() ? "" : ": " + r->err)
                               : r.status().message();
      while (!why.empty() && why.back() == '\n') why.pop_back();
      if (stopping()) return Status::Cancelled("the drill was interrupted");
      if (std::chrono::steady_clock::now() + std::chrono::seconds(2) > deadline) {
        return Status::Unavailable("the check '" + check + "' did not succeed within " +
                                   std::to_string(timeout.count()) + " s: it " + why);
      }
      ctx.Log("the check " + why + "; trying again");
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
  }
  double recovery = SecondsSince(t0);
  ctx.Log(fmt::format("healthy {:.1f} s after the restore began: that is the recovery time", recovery));

  // The background copy reads every chunk of the backup back: a damaged one fails the drill.
  ctx.Progress(0.5, "reading the rest of the backup back (the background copy)");
  std::string copy = started.value("copy_task", "");
  if (copy.empty()) return Status::Internal("the live restore of " + scratch + " named no copy task");
  for (;;) {
    PAMPA_ASSIGN_OR_RETURN(auto t, tasks_.Get(copy));
    if (t.state == "succeeded") break;
    if (t.state != "running") return Status::Invalid("the backup did not read back whole: " + t.error);
    if (stopping()) return Status::Cancelled("the drill was interrupted");
    ctx.Progress(0.5 + t.progress / 2, "reading the rest of the backup back: " + t.message);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  double copied = SecondsSince(t0);
  return json{{"backup", latest->id},
              {"agent_seconds", agent},
              {"recovery_seconds", recovery},
              {"copy_seconds", copied},
              {"check", check}};
}

void RestoreDrills::Loop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    lock.Unlock();
    if (auto list = List(); list.ok()) {
      for (auto& d : *list) {
        if (NowMs() < d.value("next_run", int64_t{0})) continue;
        auto task = RunNow(d.value("id", ""));
        // One after another: wait for this drill before looking at the next.
        while (task.ok()) {
          auto t = tasks_.Get(*task);
          if (!t.ok() || t->state != "running") break;
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
      }
    }
    lock.Lock();
    lock.WaitFor(cv_, std::chrono::seconds(15), [&]() REQUIRES(mu_) { return stopping_; });
  }
}

}  // namespace pampa
