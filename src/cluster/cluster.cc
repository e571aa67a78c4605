#include "cluster/cluster.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "base/clock.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/units.h"
#include "task/tasks.h"
#include "vm/vm_spec.h"
#include "vm/vm_state.h"

namespace pampa {
namespace {

using json = nlohmann::json;

std::string InfoKey(const std::string& host) { return "hosts/" + host + "/info"; }

// "hosts/<host>/info" -> host; "" for other keys under hosts/.
std::string HostOfInfoKey(const std::string& key) {
  const std::string prefix = "hosts/", suffix = "/info";
  if (key.size() <= prefix.size() + suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix))
    return "";
  std::string host = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
  return host.find('/') == std::string::npos ? host : "";
}

HostRecord RecordFromJson(const json& j) {
  HostRecord h;
  if (!j.is_object()) return h;
  h.name = j.value("name", "");
  h.url = j.value("url", "");
  h.version = j.value("version", "");
  h.cpus = j.value("cpus", 0);
  h.memory_bytes = j.value("memory_bytes", uint64_t{0});
  h.heartbeat_ms = j.value("heartbeat_ms", int64_t{0});
  h.maintenance = j.value("maintenance", false);
  h.pools = j.value("pools", std::vector<std::string>{});
  h.networks = j.value("networks", std::vector<std::string>{});
  return h;
}

json RecordJson(const HostRecord& h) {
  return {{"name", h.name},
          {"url", h.url},
          {"version", h.version},
          {"cpus", h.cpus},
          {"memory_bytes", h.memory_bytes},
          {"heartbeat_ms", h.heartbeat_ms},
          {"maintenance", h.maintenance},
          {"pools", h.pools},
          {"networks", h.networks}};
}

// What the VMs of the pool take from each host: specs say where a VM runs,
// runtime records whether it runs.
struct Usage {
  uint64_t memory = 0;
  int cpus = 0, vms = 0, running = 0;
};

}  // namespace

std::string HostAliveKey(const std::string& host) { return "hosts/" + host + "/alive"; }
std::string HostRuntimeKey(const std::string& host, const std::string& vm) {
  return "hosts/" + host + "/runtime/" + vm;
}

std::string_view Name(HostState s) {
  switch (s) {
    case HostState::kOnline:
      return "online";
    case HostState::kMaintenance:
      return "maintenance";
    case HostState::kLost:
      return "lost";
  }
  return "unknown";
}

json ToJson(const HostRecord& h) {
  json j = RecordJson(h);
  j["state"] = Name(h.state);
  j["memory_committed"] = h.memory_committed;
  j["cpus_committed"] = h.cpus_committed;
  j["vms"] = h.vms;
  j["running"] = h.running;
  int64_t age = h.heartbeat_ms > 0 ? NowMs() - h.heartbeat_ms : -1;
  j["heartbeat_age_ms"] = age;
  return j;
}

Cluster::Cluster(Store& store, EventBus& events, ClusterConfig config, std::string token)
    : store_(store), events_(events), config_(std::move(config)), token_(std::move(token)) {}

Cluster::~Cluster() { Stop(); }

HostRecord Cluster::LocalFacts() const {
  HostRecord h;
  h.name = config_.host;
  h.url = config_.url;
  h.version = config_.version;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  h.cpus = n > 0 ? static_cast<int>(n) : 1;
  h.memory_bytes = HostMemoryBytes();
  h.heartbeat_ms = NowMs();
  return h;
}

Status Cluster::WriteRecord(bool maintenance) {
  HostRecord h = LocalFacts();
  h.maintenance = maintenance;
  return store_.Put(InfoKey(config_.host), RecordJson(h).dump());
}

Status Cluster::Start() {
  // Keep a maintenance mark this host had before a restart.
  PAMPA_ASSIGN_OR_RETURN(auto old, store_.Get(InfoKey(config_.host)));
  bool maintenance = old && RecordFromJson(json::parse(*old, nullptr, false)).maintenance;
  {
    MutexLock lock(&mu_);
    maintenance_ = maintenance;
    stopping_ = false;
  }
  PAMPA_RETURN_IF_ERROR(WriteRecord(maintenance));
  if (!config_.pooled) return Status::Ok();
  int64_t lease = 0;
  PAMPA_RETURN_IF_ERROR(RenewLiveness(&lease));

  PAMPA_ASSIGN_OR_RETURN(task_relay_, store_.WatchPrefix("tasks/", 0, [this](const WatchEvent& ev) {
    if (ev.type != WatchEvent::Type::kPut) return;
    auto j = json::parse(ev.value, nullptr, false);
    if (!j.is_object() || j.value("host", "") == config_.host || j.value("host", "").empty()) return;
    events_.Publish({{"type", "task"}, {"task", j}});
  }));
  heartbeat_ = std::thread([this, lease] { HeartbeatLoop(lease); });
  return Status::Ok();
}

void Cluster::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  task_relay_.reset();
}

std::optional<std::chrono::steady_clock::time_point> Cluster::LeaseRenewedAt() const {
  int64_t ns = renewed_at_ns_.load();
  if (ns == 0) return std::nullopt;
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

void Cluster::SetRevokeOnStop(std::function<bool()> may_revoke) {
  MutexLock lock(&mu_);
  may_revoke_ = std::move(may_revoke);
}

Status Cluster::RenewLiveness(int64_t* lease) {
  auto sent = std::chrono::steady_clock::now();
  Status st = RenewLease(lease);
  if (st.ok())
    renewed_at_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(sent.time_since_epoch()).count());
  return st;
}

Status Cluster::RenewLease(int64_t* lease) {
  if (*lease != 0) {
    Status st = store_.KeepAlive(*lease);
    if (st.code() != ErrorCode::kNotFound) return st;
    log::Warn("this host's lease ended (cut off from the store for {} s?): taking a new one",
              config_.lost_after.count() / 1000);
  }
  auto ttl = std::chrono::duration_cast<std::chrono::seconds>(config_.lost_after);
  PAMPA_ASSIGN_OR_RETURN(*lease, store_.GrantLease(ttl));
  return store_.PutWithLease(HostAliveKey(config_.host), std::to_string(NowMs()), *lease);
}

void Cluster::HeartbeatLoop(int64_t lease) {
  bool failing = false;
  auto last_record = std::chrono::steady_clock::now();
  while (true) {
    {
      MutexLock lock(&mu_);
      if (lock.WaitFor(wake_, config_.heartbeat, [this]() REQUIRES(mu_) { return stopping_; })) break;
    }
    // The lease says the host is alive (renewing it writes nothing); the
    // record's facts and heartbeat time are refreshed now and then.
    Status st = RenewLiveness(&lease);
    if (st.ok() && std::chrono::steady_clock::now() - last_record >= kRecordEvery) {
      // SetMaintenance may write the record meanwhile: whoever writes last
      // must write the latest mark, so write again until it held still.
      while (st.ok()) {
        bool maintenance;
        int64_t changes;
        {
          MutexLock lock(&mu_);
          maintenance = maintenance_;
          changes = maintenance_changes_;
        }
        st = WriteRecord(maintenance);
        MutexLock lock(&mu_);
        if (changes == maintenance_changes_) break;
      }
      last_record = std::chrono::steady_clock::now();
    }
    if (!st.ok() && !failing) log::Warn("heartbeat not recorded: {}", st.message());
    if (st.ok() && failing) log::Info("heartbeat recorded again");
    failing = !st.ok();
  }
  // A clean stop: the host is not lost, it left (its record says when),
  // unless HA VMs still run here (see SetRevokeOnStop).
  std::function<bool()> may_revoke;
  {
    MutexLock lock(&mu_);
    may_revoke = may_revoke_;
  }
  if (lease != 0 && (!may_revoke || may_revoke())) (void)store_.RevokeLease(lease);
}

Result<std::vector<HostRecord>> Cluster::Hosts() {
  PAMPA_ASSIGN_OR_RETURN(auto host_kvs, store_.List("hosts/"));
  PAMPA_ASSIGN_OR_RETURN(auto spec_kvs, store_.List("vms/"));
  // Every host reaches the shared pools ("pools/": alone, its own) and
  // realises every network; its own pools are under hosts/<host>/pools/.
  PAMPA_ASSIGN_OR_RETURN(auto shared_kvs, store_.List("pools/"));
  PAMPA_ASSIGN_OR_RETURN(auto network_kvs, store_.List("networks/"));
  std::map<std::string, HostRecord> hosts;
  std::map<std::string, bool> running;  // "<host>/<vm>" -> QEMU runs
  std::map<std::string, std::vector<std::string>> own_pools;
  std::set<std::string> alive;
  const std::string runtime = "/runtime/", alive_suffix = "/alive", pools = "/pools/";
  for (auto& [key, value] : host_kvs) {
    std::string name = HostOfInfoKey(key);
    if (!name.empty()) {
      hosts[name] = RecordFromJson(json::parse(value, nullptr, false));
      continue;
    }
    if (key.size() > alive_suffix.size() &&
        key.compare(key.size() - alive_suffix.size(), alive_suffix.size(), alive_suffix) == 0) {
      alive.insert(key.substr(6, key.size() - 6 - alive_suffix.size()));
      continue;
    }
    if (auto p = key.find(pools); p != std::string::npos) {
      own_pools[key.substr(6, p - 6)].push_back(key.substr(p + pools.size()));
      continue;
    }
    auto r = key.find(runtime);
    if (r == std::string::npos) continue;
    std::string host = key.substr(6, r - 6), vm = key.substr(r + runtime.size());
    auto j = json::parse(value, nullptr, false);
    VmState state;
    running[host + "/" + vm] = j.is_object() && ParseVmState(j.value("state", ""), &state) && QemuAlive(state);
  }
  std::map<std::string, Usage> usage;
  for (auto& [key, value] : spec_kvs) {
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (!spec.ok()) continue;
    std::string host = spec->host.empty() ? config_.host : spec->host;
    Usage& u = usage[host];
    ++u.vms;
    if (!running[host + "/" + spec->name]) continue;
    ++u.running;
    u.memory += spec->memory_mib << 20;
    u.cpus += spec->cpus;
  }
  std::vector<HostRecord> out;
  int64_t now = NowMs();
  for (auto& [name, h] : hosts) {
    // Alone, this host is the pool; in a pool, a host is alive while its
    // lease is (the store deletes its alive key when the lease ends).
    bool fresh = name == config_.host ||
                 (config_.pooled ? alive.count(name) > 0 : now - h.heartbeat_ms < config_.lost_after.count());
    h.state = !fresh ? HostState::kLost : h.maintenance ? HostState::kMaintenance : HostState::kOnline;
    const Usage& u = usage[name];
    h.memory_committed = u.memory;
    h.cpus_committed = u.cpus;
    h.vms = u.vms;
    h.running = u.running;
    h.pools = own_pools[name];
    for (auto& kv : shared_kvs) h.pools.push_back(kv.first.substr(6));
    std::sort(h.pools.begin(), h.pools.end());
    h.networks.clear();
    for (auto& kv : network_kvs) h.networks.push_back(kv.first.substr(9));
    out.push_back(std::move(h));
  }
  return out;
}

Status Cluster::Remove(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(HostRecord h, Host(name));
  if (name == config_.host || h.state != HostState::kLost) {
    return Status::Conflict("host " + name + " is " + std::string(name == config_.host ? "this host" : Name(h.state)) +
                            ": stop pampad on it first (a stopped host is lost within " +
                            std::to_string(config_.lost_after.count() / 1000) + " s), then remove it");
  }
  PAMPA_ASSIGN_OR_RETURN(auto specs, store_.List("vms/"));
  std::vector<std::string> its;
  for (auto& [key, value] : specs) {
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (spec.ok() && spec->host == name) its.push_back(spec->name);
  }
  if (!its.empty()) {
    return Status::Conflict("host " + name + " still has " + std::to_string(its.size()) + " VM(s), e.g. " +
                            its.front() +
                            ": move them to another host (pampa vm migrate, while it runs) or delete them first");
  }
  // Its certificate record goes too, so the name can join again (the
  // certificate itself stays valid until the CA is replaced: docs/design.md).
  return CommitResolved(store_, Txn()
                                    .DeletePrefix("hosts/" + name + "/")
                                    .DeletePrefix("intents/" + name + "/")
                                    .Delete("cluster/certs/" + name))
      .status();
}

Result<HostRecord> Cluster::Host(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto hosts, Hosts());
  for (auto& h : hosts) {
    if (h.name == name) return h;
  }
  return Status::NotFound("host '" + name + "' is not in the pool (see: pampa host list)");
}

Status Cluster::SetMaintenance(const std::string& name, bool on) {
  if (name != config_.host) return Status::Invalid("maintenance of " + name + " is set by that host");
  if (!config_.pooled) return Status::Invalid("this host is not in a pool (start pampad with --cluster)");
  {
    MutexLock lock(&mu_);
    maintenance_ = on;
    ++maintenance_changes_;
  }
  return WriteRecord(on);
}

Result<std::string> Cluster::OwnerOf(const std::string& vm) {
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get("vms/" + vm));
  if (!v) return std::string();
  auto spec = VmSpecFromJson(json::parse(*v, nullptr, false));
  if (!spec.ok() || spec->host.empty() || !config_.pooled) return config_.host;
  return spec->host;
}

Result<std::vector<json>> Cluster::RemoteVms() {
  std::vector<json> out;
  if (!config_.pooled) return out;
  PAMPA_ASSIGN_OR_RETURN(auto specs, store_.List("vms/"));
  PAMPA_ASSIGN_OR_RETURN(auto hosts, Hosts());
  std::map<std::string, HostState> host_state;
  for (auto& h : hosts) host_state[h.name] = h.state;
  for (auto& [key, value] : specs) {
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (!spec.ok() || spec->host.empty() || spec->host == config_.host) continue;
    json j = ToJson(*spec);
    std::string state = "stopped", reason;
    auto runtime = store_.Get(HostRuntimeKey(spec->host, spec->name));
    if (runtime.ok() && *runtime) {
      auto r = json::parse(**runtime, nullptr, false);
      if (r.is_object()) {
        state = r.value("state", "stopped");
        reason = r.value("reason", "");
        j["pid"] = r.value("pid", 0);
        j["accel"] = r.value("accel", "");
        j["started"] = r.value("started", int64_t{0});
      }
    }
    auto hs = host_state.find(spec->host);
    if (hs == host_state.end() || hs->second == HostState::kLost) {
      reason = "host " + spec->host + " is lost: state as last recorded";
    }
    VmState parsed = VmState::kStopped;
    ParseVmState(state, &parsed);
    j["state"] = state;
    j["reason"] = reason;
    j["busy"] = Name(VmOp::kNone);
    j["actions"] = AllowedActions(parsed, VmOp::kNone, spec->is_template);
    out.push_back(std::move(j));
  }
  return out;
}

Result<std::vector<std::string>> Cluster::MovedHere() {
  PAMPA_ASSIGN_OR_RETURN(auto specs, store_.List("vms/"));
  std::vector<std::string> out;
  for (auto& [key, value] : specs) {
    auto spec = VmSpecFromJson(json::parse(value, nullptr, false));
    if (spec.ok() && spec->host == config_.host) out.push_back(spec->name);
  }
  return out;
}

Result<Cluster::NamedTexts> Cluster::RemoteVmTexts() {
  PAMPA_ASSIGN_OR_RETURN(int64_t revision, store_.Revision());
  {
    MutexLock lock(&mu_);
    if (revision == remote_revision_) return remote_texts_;
  }
  PAMPA_ASSIGN_OR_RETURN(auto vms, RemoteVms());
  NamedTexts texts;
  texts.reserve(vms.size());
  for (auto& vm : vms) texts.emplace_back(vm.value("name", ""), std::make_shared<const std::string>(vm.dump()));
  MutexLock lock(&mu_);
  remote_revision_ = revision;
  remote_texts_ = texts;
  return texts;
}

Status Cluster::CheckPlacement(const std::string& host, uint64_t memory_mib, int cpus) {
  PAMPA_ASSIGN_OR_RETURN(HostRecord h, Host(host));
  return CheckPlacement(h, memory_mib);
}

Status Cluster::CheckPlacement(const HostRecord& h, uint64_t memory_mib) {
  const std::string& host = h.name;
  if (h.state == HostState::kLost) {
    return Status::Unavailable("host " + host + " is lost (its pampad has not renewed its lease): pick another host");
  }
  if (h.state == HostState::kMaintenance) {
    return Status::Conflict("host " + host + " is in maintenance and takes no new VMs (pampa host maintenance " + host +
                            " off)");
  }
  uint64_t want = memory_mib << 20;
  uint64_t free = h.memory_bytes > h.memory_committed ? h.memory_bytes - h.memory_committed : 0;
  if (want > free) {
    return Status::Conflict("host " + host + " has " + FormatSize(free) + " of memory free, the VM needs " +
                            FormatSize(want));
  }
  return Status::Ok();
}

Result<std::string> Cluster::Place(uint64_t memory_mib, int cpus) {
  if (!config_.pooled) return config_.host;
  PAMPA_ASSIGN_OR_RETURN(auto hosts, Hosts());
  std::string best, why;
  double best_free_cpus = -1e9;
  for (auto& h : hosts) {
    Status st = CheckPlacement(h, memory_mib);
    if (!st.ok()) {
      why += (why.empty() ? "" : "; ") + st.message();
      continue;
    }
    double free_cpus = h.cpus - h.cpus_committed;
    if (free_cpus > best_free_cpus || (free_cpus == best_free_cpus && h.name == config_.host)) {
      best = h.name;
      best_free_cpus = free_cpus;
    }
  }
  if (best.empty()) return Status::Conflict("no host can take the VM: " + (why.empty() ? "the pool is empty" : why));
  return best;
}

Result<PeerReply> Cluster::Call(const std::string& host, PeerRequest req, std::chrono::milliseconds timeout) {
  PAMPA_ASSIGN_OR_RETURN(HostRecord h, Host(host));
  if (h.url.empty())
    return Status::Unavailable("host " + host + " has no API address (start its pampad with --listen)");
  req.forwarded_from = config_.host;
  auto reply = CallPeer({h.url, h.name, config_.tls.get()}, token_, req, timeout);
  if (!reply.ok() && h.state == HostState::kLost) {
    return Status::Unavailable("host " + host + " is lost (last heartbeat " +
                               std::to_string((NowMs() - h.heartbeat_ms) / 1000) +
                               " s ago): " + reply.status().message());
  }
  return reply;
}

Result<PeerReply> Cluster::PutFile(const std::string& host, const std::string& target, const std::string& file,
                                   std::chrono::milliseconds timeout) {
  PAMPA_ASSIGN_OR_RETURN(HostRecord h, Host(host));
  if (h.url.empty() || h.state == HostState::kLost) return Status::Unavailable("host " + host + " cannot be reached");
  return PutFileToPeer({h.url, h.name, config_.tls.get()}, token_, target, file, timeout);
}

Result<std::string> PoolToken(Store& store, const std::string& local_token) {
  Status st = store.Create("cluster/token", local_token);
  if (!st.ok() && st.code() != ErrorCode::kConflict) return st;
  PAMPA_ASSIGN_OR_RETURN(auto token, store.Get("cluster/token"));
  if (!token || token->size() < 32) {
    return Status::Internal(
        "the pool's token in the store (cluster/token) is damaged: write a host's DATA_DIR/token "
        "there with etcdctl, then restart pampad");
  }
  return *token;
}

}  // namespace pampa
