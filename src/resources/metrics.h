// Metrics and memory control of one host: every 5 s a sampler thread reads
// each running VM (CPU, memory, disks, NICs) and the host (CPU, memory, load,
// KSM) into fixed-size history files (resources/rrd.h, DATA/metrics/), keeps
// the latest counters for Prometheus (/metrics), and runs the balloon
// controller (resources/balloon.h) on what it read.
//
// Threads: the sampler thread writes; API worker threads read. mu_ guards the
// map of VMs and the latest values, held for copies only: QMP, /proc and the
// history files are read and written with no lock held (an Rrd guards itself).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/events.h"
#include "base/mutex.h"
#include "base/status.h"
#include "resources/balloon.h"
#include "resources/rrd.h"
#include "storage/pools.h"
#include "vm/vm_manager.h"

namespace pampa {

struct MetricsConfig {
  std::string data_dir;  // history goes to DATA/metrics/
  std::string hostname;
  // The host's available memory the balloon controller keeps; 0: the default
  // (DefaultMemoryReserve).
  uint64_t memory_reserve = 0;
  std::chrono::milliseconds interval{5000};
  // The pools whose space the host's metrics show; none when null.
  Storage* storage = nullptr;
};

// A tenth of the host's memory, at least 512 MiB.
uint64_t DefaultMemoryReserve();

class Metrics {
 public:
  Metrics(MetricsConfig config, VmManager& vms, EventBus& events);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void Start();
  void Stop();

  // {"vm", "step", "series": {"time": [...], NAME: [...]}} since `since`
  // seconds ago; null where nothing is known.
  Result<nlohmann::json> VmStats(const std::string& vm, int64_t since_s);
  nlohmann::json HostStats(int64_t since_s);
  // The Prometheus text exposition of the latest sample.
  std::string Prometheus();
  // Physical against committed CPU and memory, the savings of the balloon
  // and KSM, and how many more VMs of (cpus, memory) fit.
  nlohmann::json Capacity(int cpus, uint64_t memory_bytes);
  // KSM: {"run", "pages_shared", "pages_sharing", "saved_bytes"}.
  static nlohmann::json Ksm();
  static Result<nlohmann::json> SetKsm(bool on);
  uint64_t memory_reserve() const { return reserve_; }
  // What the balloon leaves a running VM with dynamic memory, from the
  // latest sample; none for a static or stopped one.
  std::optional<uint64_t> Assigned(const std::string& uuid);

  // Counters and gauges of one VM at one moment (what a sample reads).
  struct VmReading {
    std::string name, uuid;
    int64_t at_ms = 0;
    uint64_t cpu_ns = 0;
    uint64_t memory_bytes = 0;                // its configured (maximum) memory
    uint64_t min_bytes = 0;                   // dynamic memory's minimum; 0: static
    std::optional<uint64_t> actual;           // what the balloon leaves the guest
    std::optional<uint64_t> guest_available;  // the guest's MemAvailable
    std::optional<uint64_t> guest_total;      // the guest's MemTotal
    std::optional<uint64_t> disk_rd_bytes, disk_wr_bytes, disk_rd_ops, disk_wr_ops;
    uint64_t net_rx_bytes = 0, net_tx_bytes = 0;  // the guest's view
    uint64_t rss_bytes = 0;
  };

 private:
  struct VmEntry {
    std::shared_ptr<Rrd> rrd;
    std::optional<VmReading> last;
  };
  struct HostReading {
    int64_t at_ms = 0;
    uint64_t cpu_busy_ticks = 0, cpu_total_ticks = 0;
    uint64_t memory_total = 0, memory_available = 0;
    double load1 = 0;
    uint64_t ksm_saved = 0;
    // Each pool's space, and the sum over the file systems they are on.
    std::vector<PoolInfo> pools;
    uint64_t pool_total = 0, pool_available = 0;
  };

  void Loop();
  bool Sleep(std::chrono::milliseconds d);  // false once stopping
  void SampleOnce();
  std::optional<VmReading> ReadVm(const nlohmann::json& vm);
  void RecordVm(const VmReading& now);
  // Samples the host; returns its available memory (for the balloons).
  uint64_t RecordHost();
  void Balance(const std::vector<VmReading>& readings, uint64_t host_available);
  std::shared_ptr<Rrd> OpenRrd(const std::string& file, const std::vector<std::string>& series);
  std::string VmFile(const std::string& uuid) const;

  MetricsConfig config_;
  VmManager& vms_;
  EventBus& events_;
  const uint64_t reserve_;

  Mutex mu_;
  std::map<std::string, VmEntry> entries_ GUARDED_BY(mu_);  // by uuid
  std::optional<HostReading> host_last_ GUARDED_BY(mu_);
  std::shared_ptr<Rrd> host_rrd_ GUARDED_BY(mu_);

  std::condition_variable wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pampa
