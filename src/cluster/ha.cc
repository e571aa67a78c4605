#include "cluster/ha.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "base/clock.h"
#include "base/log.h"
#include "vm/vm_spec.h"
#include "vm/vm_state.h"

namespace pampa {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kManagerKey = "ha/manager";
constexpr int64_t kTriesWindowMs = 10 * 60 * 1000;  // a VM's own restarts are counted over this

constexpr std::string_view kStatePrefix = "ha/state/", kEventsPrefix = "ha/events/";
std::string StateKey(const std::string& vm) { return std::string(kStatePrefix) + vm; }
// "ha/state/<vm>" -> vm.
std::string VmOfStateKey(const std::string& key) { return key.substr(kStatePrefix.size()); }
std::string SpecKey(const std::string& vm) { return "vms/" + vm; }

struct StoredSpec {
  VmSpec spec;
  int64_t revision = 0;
};

struct StoredRecord {
  HaRecord record;
  int64_t revision = 0;  // 0: no record
};

// The state a host's runtime record gives a VM (kStopped when there is none).
VmState RecordedState(Store& store, const std::string& host, const std::string& vm) {
  VmState state = VmState::kStopped;
  auto text = store.Get(HostRuntimeKey(host, vm));
  if (!text.ok() || !*text) return state;
  auto j = json::parse(**text, nullptr, false);
  if (j.is_object()) ParseVmState(j.value("state", ""), &state);
  return state;
}

}  // namespace

std::string_view Name(HaState s) {
  switch (s) {
    case HaState::kStarted:
      return "started";
    case HaState::kStopped:
      return "stopped";
    case HaState::kFenced:
      return "fenced";
    case HaState::kRecovering:
      return "recovering";
    case HaState::kRestarting:
      return "restarting";
    case HaState::kFailed:
      return "failed";
  }
  return "unknown";
}

bool ParseHaState(std::string_view text, HaState* out) {
  for (HaState s : {HaState::kStarted, HaState::kStopped, HaState::kFenced, HaState::kRecovering, HaState::kRestarting,
                    HaState::kFailed}) {
    if (Name(s) == text) {
      *out = s;
      return true;
    }
  }
  return false;
}

json ToJson(const HaRecord& r) {
  return {{"state", Name(r.state)}, {"host", r.host},           {"to", r.to},        {"lost_ms", r.lost_ms},
          {"tries", r.tries},       {"failed_on", r.failed_on}, {"reason", r.reason}};
}

HaRecord HaRecordFromJson(const json& j) {
  HaRecord r;
  if (!j.is_object()) return r;
  ParseHaState(j.value("state", ""), &r.state);
  r.host = j.value("host", "");
  r.to = j.value("to", "");
  r.lost_ms = j.value("lost_ms", int64_t{0});
  r.tries = j.value("tries", 0);
  r.failed_on = j.value("failed_on", std::vector<std::string>{});
  r.reason = j.value("reason", "");
  return r;
}

HaManager::HaManager(Store& store, Cluster& cluster, VmManager& vms, EventBus& events, FenceAgent& agent,
                     HaConfig config)
    : store_(store),
      cluster_(cluster),
      vms_(vms),
      events_(events),
      agent_(agent),
      config_(config),
      host_(cluster.config().host) {}

HaManager::~HaManager() { Stop(); }

void HaManager::Start() {
  if (!cluster_.pooled()) return;
  if (config_.fence_after + 2s > cluster_.config().lost_after) {
    log::Error("HA: fencing after {} ms leaves too little time before the lease ({} ms) ends",
               config_.fence_after.count(), cluster_.config().lost_after.count());
  }
  {
    MutexLock lock(&mu_);
    stopping_ = false;
  }
  // A clean stop lets the lease end at once only when no HA VM runs here:
  // otherwise another host could start one before the fencing stops it.
  cluster_.SetRevokeOnStop([this] { return vms_.HaProcesses().empty(); });
  fence_thread_ = std::thread([this] { FenceLoop(); });
  loop_thread_ = std::thread([this] { Loop(); });
}

void HaManager::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (fence_thread_.joinable()) fence_thread_.join();
  if (loop_thread_.joinable()) loop_thread_.join();
}

bool HaManager::Sleep(std::chrono::milliseconds d) {
  MutexLock lock(&mu_);
  return !lock.WaitFor(wake_, d, [this]() REQUIRES(mu_) { return stopping_; });
}

void HaManager::FenceLoop() {
  bool armed_before = false, failing = false;
  while (Sleep(250ms)) {
    auto renewed = cluster_.LeaseRenewedAt();
    if (!renewed) continue;
    auto deadline = *renewed + config_.fence_after;
    auto procs = vms_.HaProcesses();
    if (procs.empty() && !armed_before) continue;  // no HA here yet: no agent needed
    armed_before = true;
    std::vector<FenceTarget> targets;
    for (auto& p : procs) targets.push_back({p.pid, p.uuid});
    // The agent acts a little after pampad itself would: pampad's own kill
    // comes first when it is healthy, and records why.
    Status st = agent_.Arm(deadline + 500ms, targets);
    if (!st.ok() && !failing) log::Error("HA: the fencing agent: {}", st.message());
    if (st.ok() && failing) log::Info("HA: the fencing agent answers again");
    failing = !st.ok();
    auto now = std::chrono::steady_clock::now();
    if (now < deadline) continue;
    auto late = std::chrono::duration_cast<std::chrono::seconds>(now - *renewed).count();
    for (auto& p : procs) {
      std::string why = "this host has not renewed its lease for " + std::to_string(late) +
                        " s (cut off from the store?): another host may start the VM";
      if (vms_.Fence(p.name, why)) Event(p.name, "fenced: " + why);
    }
  }
}

void HaManager::Loop() {
  while (Sleep(config_.tick)) {
    for (auto& name : vms_.DropMovedAway())
      Event(name, "moved or deleted by the pool while this host was cut off: forgotten here");
    if (Elect()) Manage();
    TakeRecoveries();
    RestartOwn();
    SaveEvents();
  }
}

bool HaManager::Elect() {
  auto current = store_.GetVersioned(kManagerKey);
  if (!current.ok()) return manager_ = false;
  bool was = manager_;
  if (*current && (*current)->value == host_) {
    manager_ = true;
  } else {
    // Take the key over when nobody holds it or its holder's lease ended.
    Txn txn;
    if (!*current) {
      txn.IfAbsent(kManagerKey);
    } else {
      txn.IfModRevision(kManagerKey, (*current)->mod_revision).IfAbsent(HostAliveKey((*current)->value));
    }
    txn.IfExists(HostAliveKey(host_)).Put(kManagerKey, host_);
    manager_ = store_.Commit(txn).ok();
    if (manager_) {
      Event("", *current ? "HA manager is now this host (host " + (*current)->value + " is lost)"
                         : "HA manager is now this host");
    }
  }
  if (was && !manager_) log::Info("HA: this host is no longer the HA manager");
  return manager_;
}

void HaManager::Manage() {
  auto hosts = cluster_.Hosts();
  auto specs = store_.ListVersioned("vms/");
  auto records = store_.ListVersioned(std::string(kStatePrefix));
  if (!hosts.ok() || !specs.ok() || !records.ok()) return;
  std::map<std::string, HostRecord> by_name;
  for (auto& h : *hosts) by_name[h.name] = h;
  int64_t now = NowMs();
  for (auto it = lost_since_.begin(); it != lost_since_.end();) {
    auto h = by_name.find(it->first);
    it = h != by_name.end() && h->second.state != HostState::kLost ? lost_since_.erase(it) : std::next(it);
  }
  std::map<std::string, StoredRecord> recs;
  for (auto& [key, v] : records->items) {
    recs[VmOfStateKey(key)] = {HaRecordFromJson(json::parse(v.value, nullptr, false)), v.mod_revision};
  }
  std::vector<StoredSpec> ha;
  ha_specs_.Refresh(
      *specs,
      [](const std::string& value) -> std::optional<VmSpec> {
        auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
        if (spec.ok() && spec->ha && !spec->host.empty()) return std::move(*spec);
        return std::nullopt;
      },
      [&](const std::string&, int64_t revision, const std::optional<VmSpec>& spec) {
        if (spec) ha.push_back({*spec, revision});
      });
  // A record of a VM deleted or no longer HA is stale: a new VM of that name
  // must not inherit it (a "failed" would keep it from ever being recovered).
  std::set<std::string> names;
  for (auto& s : ha) names.insert(s.spec.name);
  for (auto it = recs.begin(); it != recs.end();) {
    if (names.count(it->first)) {
      ++it;
      continue;
    }
    (void)store_.CompareAndDelete(StateKey(it->first), it->second.revision);
    it = recs.erase(it);
  }
  std::sort(ha.begin(), ha.end(), [](const StoredSpec& a, const StoredSpec& b) {
    return a.spec.ha_priority != b.spec.ha_priority ? a.spec.ha_priority > b.spec.ha_priority
                                                    : a.spec.name < b.spec.name;
  });
  std::map<std::string, uint64_t> placed;  // memory given to each host in this round

  // The online host with room and the most free CPUs, not among exclude.
  auto pick = [&](const VmSpec& spec, const std::set<std::string>& exclude, std::string* why) -> std::string {
    std::string best;
    double best_free = -1e9;
    for (auto& [name, h] : by_name) {
      if (exclude.count(name)) continue;
      HostRecord room = h;
      room.memory_committed += placed[name];
      Status st = cluster_.CheckPlacement(room, spec.memory_mib);
      if (!st.ok()) {
        *why += (why->empty() ? "" : "; ") + st.message();
        continue;
      }
      double free = h.cpus - h.cpus_committed;
      if (free > best_free) {
        best = name;
        best_free = free;
      }
    }
    if (best.empty() && why->empty()) *why = "no other host in the pool";
    return best;
  };

  for (auto& [spec, spec_revision] : ha) {
    const std::string& name = spec.name;
    StoredRecord& rec = recs[name];
    auto h = by_name.find(spec.host);
    bool lost = h == by_name.end() || h->second.state == HostState::kLost;
    HaState recorded = rec.revision ? rec.record.state : HaState::kStarted;
    if (!lost && rec.revision && recorded == HaState::kFailed) {
      // A user started it again: it is an HA VM like any other from now on.
      if (QemuAlive(RecordedState(store_, spec.host, name)))
        (void)store_.CompareAndDelete(StateKey(name), rec.revision);
      continue;
    }
    bool retry = !lost && rec.revision && recorded == HaState::kRecovering && rec.record.to.empty();
    if (!lost && !retry) continue;
    if (recorded == HaState::kFailed) continue;
    int64_t lost_ms = rec.record.lost_ms;
    if (lost) {
      if (!lost_since_.count(spec.host)) {
        lost_since_[spec.host] = now;
        Event("", "host " + spec.host + " is lost: its lease ended (no renewal for " +
                      std::to_string(cluster_.config().lost_after.count() / 1000) +
                      " s); its HA VMs were fenced there");
      }
      lost_ms = lost_since_[spec.host];
      // Only what ran there (or was being recovered) comes back.
      bool should_run = rec.revision && (recorded == HaState::kRecovering || recorded == HaState::kFenced ||
                                         recorded == HaState::kRestarting);
      if (!should_run) {
        VmState was = RecordedState(store_, spec.host, name);
        should_run = QemuAlive(was) || was == VmState::kCrashed;
      }
      if (!should_run) continue;
    }
    if (rec.record.tries >= config_.max_tries) {
      HaRecord failed = rec.record;
      failed.state = HaState::kFailed;
      if (store_.CompareAndPut(StateKey(name), ToJson(failed).dump(), rec.revision).ok()) {
        Event(name, "failed: " + std::to_string(failed.tries) + " starts did not work (last: " + failed.reason +
                        "); pampa vm start " + name + " once the cause is fixed");
      }
      continue;
    }
    std::set<std::string> exclude(rec.record.failed_on.begin(), rec.record.failed_on.end());
    exclude.insert(spec.host);
    std::string why;
    std::string target = pick(spec, exclude, &why);
    if (target.empty()) {
      if (unplaced_[name] != why) {
        unplaced_[name] = why;
        Event(name, "cannot be placed: " + why);
        HaRecord waiting = rec.record;
        waiting.state = HaState::kFenced;
        waiting.host = spec.host;
        waiting.lost_ms = lost_ms;
        waiting.reason = why;
        (void)store_.CompareAndPut(StateKey(name), ToJson(waiting).dump(), rec.revision);
      }
      continue;
    }
    unplaced_.erase(name);
    VmSpec moved = spec;
    moved.host = target;
    HaRecord next = rec.record;
    next.state = HaState::kRecovering;
    next.host = spec.host;
    next.to = target;
    next.lost_ms = lost_ms;
    next.reason.clear();
    Txn txn;
    txn.IfValue(kManagerKey, host_)
        .IfModRevision(SpecKey(name), spec_revision)
        .IfModRevision(StateKey(name), rec.revision)
        .Put(SpecKey(name), ToJson(moved).dump())
        .Put(StateKey(name), ToJson(next).dump());
    // The lost host's copy: fenced by now, as long as its lease is still gone.
    if (lost) txn.IfAbsent(HostAliveKey(spec.host)).Delete(HostRuntimeKey(spec.host, name));
    auto committed = store_.Commit(txn);
    if (!committed.ok()) {
      log::Warn("HA: vm {}: not given to host {}: {}", name, target, committed.status().message());
      continue;
    }
    placed[target] += spec.memory_mib << 20;
    Event(name, lost ? "host " + spec.host + " lost " + std::to_string((now - lost_ms) / 1000) +
                           " s ago: starting the VM on host " + target
                     : "host " + spec.host + " could not start it (" + rec.record.reason + "): starting it on host " +
                           target);
  }
  TrimEvents();
}

void HaManager::TakeRecoveries() {
  auto records = store_.ListVersioned(std::string(kStatePrefix));
  if (!records.ok()) return;
  for (auto& [key, v] : records->items) {
    HaRecord rec = HaRecordFromJson(json::parse(v.value, nullptr, false));
    if (rec.state != HaState::kRecovering || rec.to != host_) continue;
    std::string name = VmOfStateKey(key);
    Status st = vms_.Adopt(name);
    if (st.ok()) {
      auto shown = vms_.Show(name);
      VmState state = VmState::kStopped;
      if (shown.ok()) ParseVmState(shown->value("state", ""), &state);
      if (!QemuAlive(state)) st = vms_.Start(name);
    }
    HaRecord next = rec;
    if (st.ok()) {
      next.state = HaState::kStarted;
      next.reason.clear();
      next.tries = 0;
      next.failed_on.clear();
    } else {
      next.to.clear();
      ++next.tries;
      next.failed_on.push_back(host_);
      next.reason = st.message();
    }
    if (!store_.CompareAndPut(key, ToJson(next).dump(), v.mod_revision).ok()) continue;
    if (st.ok()) {
      std::string took =
          rec.lost_ms ? fmt::format(", {:.1f} s after host {} was lost", double(NowMs() - rec.lost_ms) / 1000, rec.host)
                      : "";
      Event(name, "started on host " + host_ + took);
    } else {
      Event(name, "could not start on host " + host_ + ": " + st.message());
    }
  }
}

void HaManager::RestartOwn() {
  int64_t now = NowMs();
  for (auto& v : vms_.List()) {
    // (A VM registered a moment ago has published nothing yet.)
    if (!v.is_object() || !v.value("ha", false) || v.value("state", "") != Name(VmState::kCrashed)) continue;
    std::string name = v.value("name", ""), why = v.value("reason", "");
    auto& [count, since] = own_tries_[name];
    if (now - since > kTriesWindowMs) {
      count = 0;
      since = now;
    }
    if (count >= config_.max_tries) {
      if (count++ == config_.max_tries) {
        Event(name, "crashed " + std::to_string(config_.max_tries) +
                        " times in 10 minutes: not started again (pampa vm start " + name +
                        " once the cause is fixed)");
      }
      continue;
    }
    // Started again here only while the store names this host and its
    // lease lives (else the manager may be giving it to another host).
    auto spec_text = store_.GetVersioned(SpecKey(name));
    auto rec_text = store_.GetVersioned(StateKey(name));
    if (!spec_text.ok() || !*spec_text || !rec_text.ok()) continue;
    auto spec = VmSpecFromJson(json::parse((*spec_text)->value, nullptr, false));
    if (!spec.ok() || spec->host != host_) continue;
    HaRecord next;
    next.state = HaState::kRestarting;
    next.host = host_;
    next.tries = count + 1;
    next.reason = why;
    auto claimed = store_.Commit(Txn()
                                     .IfExists(HostAliveKey(host_))
                                     .IfModRevision(SpecKey(name), (*spec_text)->mod_revision)
                                     .IfModRevision(StateKey(name), *rec_text ? (*rec_text)->mod_revision : 0)
                                     .Put(StateKey(name), ToJson(next).dump()));
    if (!claimed.ok()) continue;
    ++count;
    Status st = vms_.Start(name);
    next.state = st.ok() ? HaState::kStarted : HaState::kRestarting;
    if (!st.ok()) next.reason = st.message();
    (void)store_.Put(StateKey(name), ToJson(next).dump());
    Event(name, st.ok() ? "stopped unexpectedly (" + why + "): started again on host " + host_
                        : "stopped unexpectedly; starting it again failed: " + st.message());
  }
}

void HaManager::Event(const std::string& vm, const std::string& message) {
  int64_t now = NowMs();
  json e = {{"time_ms", now}, {"host", host_}, {"vm", vm}, {"message", message}};
  log::Info("HA: {}{}", vm.empty() ? "" : "vm " + vm + ": ", message);
  events_.Publish({{"type", "ha"}, {"event", e}});
  std::string key = fmt::format("{}{:013d}-{}-{:06d}", kEventsPrefix, now, host_, event_seq_++ % 1000000);
  MutexLock lock(&mu_);
  if (unsaved_.size() < config_.events_kept) unsaved_.emplace_back(std::move(key), e.dump());
}

void HaManager::SaveEvents() {
  std::vector<std::pair<std::string, std::string>> batch;
  {
    MutexLock lock(&mu_);
    batch.swap(unsaved_);
  }
  size_t saved = 0;
  while (saved < batch.size() && store_.Put(batch[saved].first, batch[saved].second).ok()) ++saved;
  if (saved == batch.size()) return;
  // The store is away: keep the rest, in order, for the next tick.
  MutexLock lock(&mu_);
  unsaved_.insert(unsaved_.begin(), batch.begin() + static_cast<long>(saved), batch.end());
}

void HaManager::TrimEvents() {
  auto events = store_.List(std::string(kEventsPrefix));
  if (!events.ok() || events->size() <= config_.events_kept) return;
  Txn txn;
  for (size_t i = 0; i + config_.events_kept < events->size(); ++i) txn.Delete((*events)[i].first);
  (void)store_.Commit(txn);
}

Result<json> HaManager::Report() {
  PAMPA_ASSIGN_OR_RETURN(auto manager, store_.Get(kManagerKey));
  PAMPA_ASSIGN_OR_RETURN(auto hosts, cluster_.Hosts());
  PAMPA_ASSIGN_OR_RETURN(auto specs, store_.List("vms/"));
  PAMPA_ASSIGN_OR_RETURN(auto records, store_.List(std::string(kStatePrefix)));
  PAMPA_ASSIGN_OR_RETURN(auto events, store_.List(std::string(kEventsPrefix)));
  std::map<std::string, HostState> host_state;
  for (auto& h : hosts) host_state[h.name] = h.state;
  std::map<std::string, HaRecord> recs;
  for (auto& [key, value] : records) {
    recs[VmOfStateKey(key)] = HaRecordFromJson(json::parse(value, nullptr, false));
  }
  json vms = json::array();
  for (auto& [key, value] : specs) {
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (!spec.ok() || !spec->ha) continue;
    std::string host = spec->host.empty() ? host_ : spec->host;
    HaState state = HaState::kStopped;
    std::string reason;
    auto rec = recs.find(spec->name);
    bool host_lost = host_state.count(host) && host_state[host] == HostState::kLost;
    if (rec != recs.end() &&
        (rec->second.state == HaState::kRecovering || rec->second.state == HaState::kFailed ||
         rec->second.state == HaState::kRestarting || (rec->second.state == HaState::kFenced && host_lost))) {
      state = rec->second.state;
      reason = rec->second.reason;
    } else {
      VmState vm_state = RecordedState(store_, host, spec->name);
      if (host_lost && (QemuAlive(vm_state) || vm_state == VmState::kCrashed)) {
        state = HaState::kFenced;
        reason = "host " + host + " is lost";
      } else if (QemuAlive(vm_state)) {
        state = HaState::kStarted;
      } else if (vm_state == VmState::kCrashed) {
        state = HaState::kRestarting;
      }
    }
    json j = {{"name", spec->name},
              {"host", host},
              {"priority", spec->ha_priority},
              {"state", Name(state)},
              {"reason", reason}};
    if (rec != recs.end()) {
      j["tries"] = rec->second.tries;
      if (!rec->second.to.empty()) j["to"] = rec->second.to;
    }
    vms.push_back(std::move(j));
  }
  json recent = json::array();
  size_t first = events.size() > 50 ? events.size() - 50 : 0;
  for (size_t i = first; i < events.size(); ++i) recent.push_back(json::parse(events[i].second, nullptr, false));
  const ClusterConfig& c = cluster_.config();
  return json{{"manager", manager ? *manager : ""},
              {"enabled", cluster_.pooled()},
              {"settings",
               {{"heartbeat_ms", c.heartbeat.count()},
                {"lease_ms", c.lost_after.count()},
                {"fence_after_ms", config_.fence_after.count()},
                {"max_tries", config_.max_tries}}},
              {"vms", vms},
              {"events", recent}};
}

}  // namespace pampa
