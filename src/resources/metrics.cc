#include "resources/metrics.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "base/fs.h"
#include "base/log.h"
#include "qemu/cgroups.h"
#include "resources/prometheus.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr uint64_t kMiB = 1ull << 20;

const std::vector<std::string> kVmSeries = {
    "cpu_percent",    "memory_assigned_bytes", "memory_used_bytes", "balloon_bytes", "disk_read_bps",
    "disk_write_bps", "disk_read_iops",        "disk_write_iops",   "net_rx_bps",    "net_tx_bps"};
const std::vector<std::string> kHostSeries = {"cpu_percent",     "memory_total_bytes", "memory_used_bytes", "load1",
                                              "ksm_saved_bytes", "pool_total_bytes",   "pool_used_bytes"};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t ReadNumber(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return 0;
  try {
    return std::stoull(*text);
  } catch (...) {
    return 0;
  }
}

// utime + stime of a process, in ns.
std::optional<uint64_t> ProcessCpuNs(pid_t pid) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return std::nullopt;
  size_t paren = text->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream f(text->substr(paren + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // After the name: state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 13 && f >> field; ++i) {
  }
  if (!(f >> utime >> stime)) return std::nullopt;
  return (utime + stime) * (1'000'000'000ull / static_cast<uint64_t>(sysconf(_SC_CLK_TCK)));
}

uint64_t ProcessRss(pid_t pid) {
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/statm");
  if (!text.ok()) return 0;
  std::istringstream f(*text);
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

double Rate(uint64_t now, uint64_t before, double seconds) {
  if (now < before || seconds <= 0) return kNaN;  // a restart set the counter back
  return static_cast<double>(now - before) / seconds;
}

double Rate(const std::optional<uint64_t>& now, const std::optional<uint64_t>& before, double seconds) {
  return now && before ? Rate(*now, *before, seconds) : kNaN;
}

double Gauge(const std::optional<uint64_t>& v) { return v ? static_cast<double>(*v) : kNaN; }

json SeriesJson(const Rrd::Series& s, const std::vector<std::string>& names) {
  json series = {{"time", s.times}};
  for (size_t i = 0; i < names.size(); ++i) {
    json values = json::array();
    for (double v : s.values[i]) values.push_back(std::isnan(v) ? json(nullptr) : json(v));
    series[names[i]] = std::move(values);
  }
  return {{"step", s.step_s}, {"series", std::move(series)}};
}

}  // namespace

uint64_t DefaultMemoryReserve() { return std::max<uint64_t>(512 * kMiB, HostMemoryBytes() / 10); }

Metrics::Metrics(MetricsConfig config, VmManager& vms, EventBus& events)
    : config_(std::move(config)),
      vms_(vms),
      events_(events),
      reserve_(config_.memory_reserve ? config_.memory_reserve : DefaultMemoryReserve()) {}

Metrics::~Metrics() { Stop(); }

void Metrics::Start() {
  if (Status st = MakeDirs(config_.data_dir + "/metrics", 0700); !st.ok()) {
    log::Warn("metrics: no history will be kept: {}", st.message());
  }
  thread_ = std::thread([this] { Loop(); });
}

void Metrics::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Metrics::Sleep(std::chrono::milliseconds d) {
  MutexLock lock(&mu_);
  return !lock.WaitFor(wake_, d, [this]() REQUIRES(mu_) { return stopping_; });
}

void Metrics::Loop() {
  do {
    auto t0 = std::chrono::steady_clock::now();
    SampleOnce();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    if (took > config_.interval / 2) log::Warn("metrics: a sample took {} ms", took.count());
  } while (Sleep(config_.interval));
}

std::string Metrics::VmFile(const std::string& uuid) const { return config_.data_dir + "/metrics/vm-" + uuid + ".rrd"; }

std::shared_ptr<Rrd> Metrics::OpenRrd(const std::string& file, const std::vector<std::string>& series) {
  auto rrd = Rrd::Open(file, series);
  if (!rrd.ok()) {
    log::Warn("metrics: {}", rrd.status().message());
    return nullptr;
  }
  return std::shared_ptr<Rrd>(std::move(*rrd));
}

void Metrics::SampleOnce() {
  std::vector<json> vms = vms_.List();
  std::vector<VmReading> readings;
  std::set<std::string> known;
  for (const json& vm : vms) {
    if (!vm.is_object()) continue;
    known.insert(vm.value("uuid", ""));
    if (auto r = ReadVm(vm)) {
      RecordVm(*r);
      readings.push_back(std::move(*r));
    }
  }
  std::vector<std::string> gone;
  {
    MutexLock lock(&mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      bool running = std::any_of(readings.begin(), readings.end(), [&](auto& r) { return r.uuid == it->first; });
      if (!running) it->second.last.reset();  // Prometheus shows running VMs only
      if (!known.count(it->first)) {
        gone.push_back(it->first);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const std::string& uuid : gone) unlink(VmFile(uuid).c_str());  // the VM was deleted
  Balance(readings, RecordHost());
}

std::optional<Metrics::VmReading> Metrics::ReadVm(const json& vm) {
  std::string state = vm.value("state", "");
  pid_t pid = vm.value("pid", 0);
  if ((state != "running" && state != "paused") || pid <= 0) return std::nullopt;
  VmReading r;
  r.name = vm.value("name", "");
  r.uuid = vm.value("uuid", "");
  r.memory_bytes = vm.value("memory_mib", uint64_t{0}) * kMiB;
  uint64_t min = vm.value("memory_min_mib", uint64_t{0}) * kMiB;
  r.min_bytes = min > 0 && min < r.memory_bytes ? min : 0;
  // What only QEMU knows, asked in one short look; a VM busy with a long
  // operation (a backup, a migration) goes without it this time.
  if (auto hold = vms_.TryHold(r.name)) {
    if (QmpClient* qmp = hold->qmp(); qmp && hold->spec().uuid == r.uuid) {
      // Only the controller moves balloons, and only of dynamic VMs: a static
      // VM has its memory, and one QMP call less a sample.
      if (r.min_bytes > 0) {
        if (auto b = qmp->Execute("query-balloon", nullptr, 1s); b.ok()) r.actual = b->value("actual", uint64_t{0});
      }
      auto stats = qmp->Execute("qom-get", {{"path", "/machine/peripheral/balloon0"}, {"property", "guest-stats"}}, 1s);
      if (stats.ok() && stats->contains("stats")) {
        const json& s = (*stats)["stats"];
        auto stat = [&](const char* key) -> std::optional<uint64_t> {
          if (!s.contains(key) || !s[key].is_number_integer() || s[key].get<int64_t>() < 0) return std::nullopt;
          return s[key].get<uint64_t>();
        };
        r.guest_available = stat("stat-available-memory");
        r.guest_total = stat("stat-total-memory");
      }
      if (auto blocks = qmp->Execute("query-blockstats", nullptr, 1s); blocks.ok() && blocks->is_array()) {
        uint64_t rd = 0, wr = 0, rops = 0, wops = 0;
        for (const json& b : *blocks) {
          std::string qdev = b.value("qdev", "");
          if (qdev.find("disk") == std::string::npos || !b.contains("stats")) continue;  // not a CD
          const json& s = b["stats"];
          rd += s.value("rd_bytes", uint64_t{0});
          wr += s.value("wr_bytes", uint64_t{0});
          rops += s.value("rd_operations", uint64_t{0});
          wops += s.value("wr_operations", uint64_t{0});
        }
        r.disk_rd_bytes = rd;
        r.disk_wr_bytes = wr;
        r.disk_rd_ops = rops;
        r.disk_wr_ops = wops;
      }
    }
  }
  r.at_ms = NowMs();
  auto cpu = ProcessCpuNs(pid);
  if (!cpu) return std::nullopt;  // QEMU is gone
  r.cpu_ns = *cpu;
  r.rss_bytes = ProcessRss(pid);
  VmSpec taps;  // what names the taps: the uuid and the NICs' slots
  taps.uuid = r.uuid;
  if (vm.contains("nics") && vm["nics"].is_array()) {
    for (const json& n : vm["nics"]) {
      NicSpec nic;
      if (n.is_object() && n.contains("slot") && n["slot"].is_number_unsigned()) nic.slot = n["slot"].get<uint32_t>();
      taps.nics.push_back(std::move(nic));
    }
  }
  for (size_t i = 0; i < taps.nics.size(); ++i) {
    std::string dir = "/sys/class/net/" + TapName(taps, i) + "/statistics/";
    // The tap's transmit is the guest's receive.
    r.net_rx_bytes += ReadNumber(dir + "tx_bytes");
    r.net_tx_bytes += ReadNumber(dir + "rx_bytes");
  }
  return r;
}

void Metrics::RecordVm(const VmReading& now) {
  std::shared_ptr<Rrd> rrd;
  std::optional<VmReading> before;
  {
    MutexLock lock(&mu_);
    VmEntry& e = entries_[now.uuid];
    rrd = e.rrd;
    before = e.last;
    e.last = now;
  }
  if (!rrd) {
    rrd = OpenRrd(VmFile(now.uuid), kVmSeries);
    MutexLock lock(&mu_);
    entries_[now.uuid].rrd = rrd;
  }
  if (!rrd) return;
  double dt = before ? static_cast<double>(now.at_ms - before->at_ms) / 1000 : 0;
  auto rate = [&](auto field) { return before ? Rate(now.*field, (*before).*field, dt) : kNaN; };
  double assigned = now.actual ? static_cast<double>(*now.actual) : static_cast<double>(now.memory_bytes);
  double used = now.guest_total && now.guest_available && *now.guest_total >= *now.guest_available
                    ? static_cast<double>(*now.guest_total - *now.guest_available)
                    : kNaN;
  double balloon = now.actual && *now.actual <= now.memory_bytes ? static_cast<double>(now.memory_bytes - *now.actual)
                   : now.min_bytes == 0                          ? 0.0  // static memory: no balloon
                                                                 : kNaN;
  std::vector<double> values = {rate(&VmReading::cpu_ns) / 1e7,  // ns per s -> percent of one core
                                assigned,
                                used,
                                balloon,
                                rate(&VmReading::disk_rd_bytes),
                                rate(&VmReading::disk_wr_bytes),
                                rate(&VmReading::disk_rd_ops),
                                rate(&VmReading::disk_wr_ops),
                                rate(&VmReading::net_rx_bytes),
                                rate(&VmReading::net_tx_bytes)};
  if (Status st = rrd->Add(now.at_ms / 1000, values); !st.ok()) log::Warn("metrics: vm {}: {}", now.name, st.message());
}

uint64_t Metrics::RecordHost() {
  HostReading h;
  h.at_ms = NowMs();
  {
    std::ifstream in("/proc/stat");
    std::string cpu;
    uint64_t v[8] = {};
    in >> cpu;
    for (auto& x : v) in >> x;
    // user nice system idle iowait irq softirq steal
    h.cpu_busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    h.cpu_total_ticks = h.cpu_busy_ticks + v[3] + v[4];
  }
  h.memory_total = HostMemoryBytes();
  h.memory_available = HostAvailableMemoryBytes();
  {
    std::ifstream in("/proc/loadavg");
    in >> h.load1;
  }
  h.ksm_saved = Ksm().value("saved_bytes", uint64_t{0});
  if (config_.storage) {
    auto pools = config_.storage->ListPools();
    if (pools.ok()) h.pools = std::move(*pools);
    std::set<uint64_t> counted;  // pools on one file system count once
    for (const PoolInfo& p : h.pools) {
      struct statvfs fs;
      if (statvfs(p.path.c_str(), &fs) != 0 || !counted.insert(fs.f_fsid).second) continue;
      h.pool_total += p.capacity;
      h.pool_available += p.available;
    }
  }
  std::shared_ptr<Rrd> rrd;
  std::optional<HostReading> before;
  {
    MutexLock lock(&mu_);
    before = host_last_;
    host_last_ = h;
    rrd = host_rrd_;
  }
  if (!rrd) {
    rrd = OpenRrd(config_.data_dir + "/metrics/host.rrd", kHostSeries);
    MutexLock lock(&mu_);
    host_rrd_ = rrd;
  }
  if (!rrd) return h.memory_available;
  double cpu = kNaN;
  if (before && h.cpu_total_ticks > before->cpu_total_ticks && h.cpu_busy_ticks >= before->cpu_busy_ticks) {
    cpu = 100.0 * static_cast<double>(h.cpu_busy_ticks - before->cpu_busy_ticks) /
          static_cast<double>(h.cpu_total_ticks - before->cpu_total_ticks);
  }
  std::vector<double> values = {cpu,
                                static_cast<double>(h.memory_total),
                                static_cast<double>(h.memory_total - std::min(h.memory_total, h.memory_available)),
                                h.load1,
                                static_cast<double>(h.ksm_saved),
                                static_cast<double>(h.pool_total),
                                static_cast<double>(h.pool_total - std::min(h.pool_total, h.pool_available))};
  if (Status st = rrd->Add(h.at_ms / 1000, values); !st.ok()) log::Warn("metrics: host: {}", st.message());
  return h.memory_available;
}

void Metrics::Balance(const std::vector<VmReading>& readings, uint64_t host_available) {
  std::vector<BalloonVm> dynamic;
  for (const VmReading& r : readings) {
    if (r.min_bytes == 0 || !r.actual) continue;
    dynamic.push_back({r.name, r.min_bytes, r.memory_bytes, *r.actual, r.guest_available});
  }
  if (dynamic.empty()) return;
  BalloonPolicy policy;
  policy.reserve = reserve_;
  // Giving a guest memory never leaves the host with less than this.
  policy.floor = std::min(reserve_, std::max<uint64_t>(256 * kMiB, HostMemoryBytes() / 50));
  for (const BalloonMove& m : PlanBalloons(host_available, policy, dynamic)) {
    auto hold = vms_.TryHold(m.name);
    QmpClient* qmp = hold ? hold->qmp() : nullptr;
    if (!qmp) continue;  // busy: the next round decides again
    auto r = qmp->Execute("balloon", {{"value", m.target}}, 2s);
    if (!r.ok()) {
      log::Warn("balloon: vm {}: {}", m.name, r.status().message());
      continue;
    }
    log::Info("balloon: vm {} to {} MiB: {}", m.name, m.target / kMiB, m.reason);
    events_.Publish({{"type", "balloon"}, {"vm", m.name}, {"target_bytes", m.target}, {"reason", m.reason}});
  }
}

std::optional<uint64_t> Metrics::Assigned(const std::string& uuid) {
  MutexLock lock(&mu_);
  auto it = entries_.find(uuid);
  if (it == entries_.end() || !it->second.last || it->second.last->min_bytes == 0) return std::nullopt;
  return it->second.last->actual;
}

Result<json> Metrics::VmStats(const std::string& vm, int64_t since_s) {
  PAMPA_ASSIGN_OR_RETURN(json shown, vms_.Show(vm));
  std::string uuid = shown.value("uuid", "");
  std::shared_ptr<Rrd> rrd;
  {
    MutexLock lock(&mu_);
    if (auto it = entries_.find(uuid); it != entries_.end()) rrd = it->second.rrd;
  }
  int64_t now = NowMs() / 1000;
  if (!rrd && Exists(VmFile(uuid))) rrd = OpenRrd(VmFile(uuid), kVmSeries);
  Rrd::Series s;
  if (rrd) s = rrd->Read(now - since_s, now);
  if (!rrd) s.values.resize(kVmSeries.size());
  json j = SeriesJson(s, kVmSeries);
  j["vm"] = vm;
  if (!rrd) j["step"] = 5;
  return j;
}

json Metrics::HostStats(int64_t since_s) {
  std::shared_ptr<Rrd> rrd;
  {
    MutexLock lock(&mu_);
    rrd = host_rrd_;
  }
  int64_t now = NowMs() / 1000;
  Rrd::Series s;
  if (rrd) s = rrd->Read(now - since_s, now);
  if (!rrd) s.values.resize(kHostSeries.size());
  json j = SeriesJson(s, kHostSeries);
  j["host"] = config_.hostname;
  return j;
}

std::string Metrics::Prometheus() {
  std::vector<VmReading> vms;
  std::optional<HostReading> host;
  {
    MutexLock lock(&mu_);
    for (auto& [uuid, e] : entries_) {
      if (e.last) vms.push_back(*e.last);
    }
    host = host_last_;
  }
  PromText p;
  auto vm_family = [&](const std::string& name, const std::string& type, const std::string& help, auto value) {
    p.Family(name, type, help);
    for (const VmReading& r : vms) {
      double v = value(r);
      if (!std::isnan(v)) p.Sample(name, {{"host", config_.hostname}, {"vm", r.name}}, v);
    }
  };
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  vm_family("pampa_vm_cpu_seconds_total", "counter", "CPU time the VM's QEMU used since it started",
            [&](const VmReading& r) { return d(r.cpu_ns) / 1e9; });
  vm_family("pampa_vm_memory_bytes", "gauge", "The VM's configured (maximum) memory",
            [&](const VmReading& r) { return d(r.memory_bytes); });
  vm_family("pampa_vm_memory_assigned_bytes", "gauge", "Memory the balloon leaves the guest",
            [&](const VmReading& r) { return r.actual ? d(*r.actual) : d(r.memory_bytes); });
  vm_family("pampa_vm_memory_used_bytes", "gauge",
            "Memory the guest uses (total less available, by its balloon driver)", [&](const VmReading& r) {
              return r.guest_total && r.guest_available && *r.guest_total >= *r.guest_available
                         ? d(*r.guest_total - *r.guest_available)
                         : kNaN;
            });
  vm_family("pampa_vm_rss_bytes", "gauge", "Host memory the VM's QEMU process holds",
            [&](const VmReading& r) { return d(r.rss_bytes); });
  vm_family("pampa_vm_disk_read_bytes_total", "counter", "Bytes the guest read from its disks",
            [&](const VmReading& r) { return Gauge(r.disk_rd_bytes); });
  vm_family("pampa_vm_disk_write_bytes_total", "counter", "Bytes the guest wrote to its disks",
            [&](const VmReading& r) { return Gauge(r.disk_wr_bytes); });
  vm_family("pampa_vm_disk_read_ops_total", "counter", "Read operations of the guest's disks",
            [&](const VmReading& r) { return Gauge(r.disk_rd_ops); });
  vm_family("pampa_vm_disk_write_ops_total", "counter", "Write operations of the guest's disks",
            [&](const VmReading& r) { return Gauge(r.disk_wr_ops); });
  vm_family("pampa_vm_net_rx_bytes_total", "counter", "Bytes the guest received on its NICs",
            [&](const VmReading& r) { return d(r.net_rx_bytes); });
  vm_family("pampa_vm_net_tx_bytes_total", "counter", "Bytes the guest sent on its NICs",
            [&](const VmReading& r) { return d(r.net_tx_bytes); });
  std::vector<std::pair<std::string, std::string>> h = {{"host", config_.hostname}};
  if (host) {
    p.Family("pampa_host_cpu_seconds_total", "counter", "CPU time the host's CPUs were busy");
    p.Sample("pampa_host_cpu_seconds_total", h, d(host->cpu_busy_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)));
    p.Family("pampa_host_memory_total_bytes", "gauge", "The host's memory");
    p.Sample("pampa_host_memory_total_bytes", h, d(host->memory_total));
    p.Family("pampa_host_memory_available_bytes", "gauge", "The host's available memory (MemAvailable)");
    p.Sample("pampa_host_memory_available_bytes", h, d(host->memory_available));
    p.Family("pampa_host_load1", "gauge", "The host's load average over a minute");
    p.Sample("pampa_host_load1", h, host->load1);
    p.Family("pampa_host_ksm_saved_bytes", "gauge", "Memory KSM saves by sharing equal pages");
    p.Sample("pampa_host_ksm_saved_bytes", h, d(host->ksm_saved));
    p.Family("pampa_pool_capacity_bytes", "gauge", "A storage pool's file system size");
    for (const PoolInfo& pool : host->pools)
      p.Sample("pampa_pool_capacity_bytes", {h[0], {"pool", pool.name}}, d(pool.capacity));
    p.Family("pampa_pool_available_bytes", "gauge", "Space left in a storage pool's file system");
    for (const PoolInfo& pool : host->pools) {
      p.Sample("pampa_pool_available_bytes", {h[0], {"pool", pool.name}}, d(pool.available));
    }
  }
  p.Family("pampa_host_memory_reserve_bytes", "gauge", "Available memory the balloon controller keeps on the host");
  p.Sample("pampa_host_memory_reserve_bytes", h, d(reserve_));
  return p.str();
}

json Metrics::Capacity(int cpus, uint64_t memory_bytes) {
  int host_cpus = static_cast<int>(OnlineCpus().size());
  uint64_t total = HostMemoryBytes(), available = HostAvailableMemoryBytes();
  uint64_t vcpus = 0, committed = 0, min_committed = 0, running = 0;
  for (const json& vm : vms_.List()) {
    if (!vm.is_object() || (vm.value("state", "") != "running" && vm.value("state", "") != "paused")) continue;
    ++running;
    vcpus += vm.value("cpus", 1);
    uint64_t mem = vm.value("memory_mib", uint64_t{0}) * kMiB, min = vm.value("memory_min_mib", uint64_t{0}) * kMiB;
    committed += mem;
    min_committed += min > 0 && min < mem ? min : mem;
  }
  uint64_t balloon_saved = 0;
  {
    MutexLock lock(&mu_);
    for (auto& [uuid, e] : entries_) {
      if (e.last && e.last->actual && *e.last->actual < e.last->memory_bytes) {
        balloon_saved += e.last->memory_bytes - *e.last->actual;
      }
    }
  }
  json ksm = Ksm();
  uint64_t usable = available > reserve_ ? available - reserve_ : 0;
  uint64_t fit = memory_bytes ? usable / memory_bytes : 0;
  auto ratio = [](double a, double b) { return b > 0 ? std::round(a / b * 100) / 100 : 0.0; };
  return {{"host", config_.hostname},
          {"cpus", host_cpus},
          {"vms_running", running},
          {"vcpus", vcpus},
          {"cpu_overcommit", ratio(static_cast<double>(vcpus), host_cpus)},
          {"memory_bytes", total},
          {"memory_committed_bytes", committed},
          {"memory_min_committed_bytes", min_committed},
          {"memory_overcommit", ratio(static_cast<double>(committed), static_cast<double>(total))},
          {"balloon_saved_bytes", balloon_saved},
          {"ksm", ksm},
          {"reserve_bytes", reserve_},
          {"free_bytes", available},
          {"fits", {{"cpus", cpus}, {"memory_bytes", memory_bytes}, {"count", fit}}}};
}

json Metrics::Ksm() {
  const std::string dir = "/sys/kernel/mm/ksm/";
  uint64_t sharing = ReadNumber(dir + "pages_sharing");
  return {{"available", Exists(dir + "run")},
          {"run", ReadNumber(dir + "run") == 1},
          {"pages_shared", ReadNumber(dir + "pages_shared")},
          {"pages_sharing", sharing},
          {"saved_bytes", sharing * static_cast<uint64_t>(sysconf(_SC_PAGESIZE))}};
}

Result<json> Metrics::SetKsm(bool on) {
  const std::string run = "/sys/kernel/mm/ksm/run";
  if (!Exists(run)) return Status::Unavailable("this kernel has no KSM (/sys/kernel/mm/ksm is missing)");
  PAMPA_RETURN_IF_ERROR(WriteKernelValue(run, on ? "1" : "0").Context("turning KSM " + std::string(on ? "on" : "off")));
  log::Info("ksm: turned {}", on ? "on" : "off");
  return Ksm();
}

}  // namespace pampa
