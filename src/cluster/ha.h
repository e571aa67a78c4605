// High availability: VMs that come back by themselves when their host dies,
// and never run twice.
//
// Every host of a pool runs an HaManager:
//  - Fencing (its own thread, no store calls): the host's lease lives
//    ClusterConfig::lost_after from its last renewal. fence_after (shorter)
//    from that renewal, the host kills its HA VMs' QEMU itself, and the
//    fencing agent (fence_agent.h) does it too should pampad be dead or hung.
//    So by the time the lease can end and another host start a VM, the old
//    copy is gone. QEMU's image locks on the shared pool refuse a second
//    writer should all of that fail.
//  - Election: one host is the pool's HA manager: ha/manager names it, and
//    it stays manager while its lease (its alive key) lives; another host
//    takes the key over once it is gone.
//  - The manager: when a host's lease ends, each HA VM that ran there
//    (highest ha_priority first) is given to the online host with room and
//    the most free CPUs, in one transaction that holds only while the lost
//    host's alive key is absent and the manager is still manager. The chosen
//    host starts it (it watches ha/state/ for VMs given to it); a failed
//    start is placed again elsewhere, up to HaConfig::max_tries.
//  - Its own VMs: an HA VM that crashed (or was fenced while the lease lived
//    on: the store was away a few seconds) is started again by its host, when
//    the store still names that host and its lease lives.
//  - A host that comes back forgets the VMs the manager moved meanwhile.
//
// Records: ha/manager (host name), ha/state/<vm> (recovery state),
// ha/events/<ms>-<host>-<seq> (the decisions, newest kept; `pampa ha status`).
//
// Threads: Start runs two threads; Report may be called from any thread. No
// mutex is held across store calls or a VM operation.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "base/events.h"
#include "base/mutex.h"
#include "cluster/cluster.h"
#include "cluster/fence_agent.h"
#include "store/parsed_by_revision.h"
#include "store/store.h"
#include "vm/vm_manager.h"

namespace pampa {

struct HaConfig {
  std::chrono::milliseconds tick{500};          // how often each host looks at the pool's HA records
  std::chrono::milliseconds fence_after{7000};  // after the last lease renewal; < the lease's time to live
  int max_tries = 3;                            // starts of one VM (on any host) before it is failed
  size_t events_kept = 200;
};

// The state of an HA VM as `ha status` shows it.
enum class HaState {
  kStarted,     // runs on its host
  kStopped,     // stopped by its user: HA leaves it be
  kFenced,      // its host is lost (its copy was stopped there): waiting to be placed
  kRecovering,  // given to a new host, which is starting it
  kRestarting,  // crashed; its own host is starting it again
  kFailed,      // max_tries starts failed; a user's start clears it
};
std::string_view Name(HaState s);
bool ParseHaState(std::string_view text, HaState* out);

// ha/state/<vm>: what the manager and the hosts record of a recovery.
struct HaRecord {
  HaState state = HaState::kStarted;
  std::string host;  // the host the VM was on when its recovery began
  std::string to;    // the host given the VM ("" while it waits to be placed)
  int64_t lost_ms = 0;
  int tries = 0;
  std::vector<std::string> failed_on;
  std::string reason;
};
nlohmann::json ToJson(const HaRecord& r);
HaRecord HaRecordFromJson(const nlohmann::json& j);

class HaManager {
 public:
  HaManager(Store& store, Cluster& cluster, VmManager& vms, EventBus& events, FenceAgent& agent, HaConfig config);
  ~HaManager();

  // Nothing happens for a host alone (not pooled).
  void Start();
  void Stop();

  // GET /ha: {"manager", "settings", "vms": [...], "events": [...]}.
  Result<nlohmann::json> Report();

 private:
  void FenceLoop();
  void Loop();
  bool Sleep(std::chrono::milliseconds d);  // false once stopping

  bool Elect();
  void Manage();
  void RestartOwn();
  void TakeRecoveries();
  // Logs and publishes a decision, and queues it for the store (SaveEvents:
  // the fence thread never waits for the store, and a host cut off records
  // its decisions once it is back).
  void Event(const std::string& vm, const std::string& message);
  void SaveEvents();
  void TrimEvents();

  Store& store_;
  Cluster& cluster_;
  VmManager& vms_;
  EventBus& events_;
  FenceAgent& agent_;
  const HaConfig config_;
  const std::string host_;

  Mutex mu_;
  std::condition_variable wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread fence_thread_, loop_thread_;
  std::atomic<int64_t> event_seq_{0};
  std::vector<std::pair<std::string, std::string>> unsaved_ GUARDED_BY(mu_);  // (key, event) not stored yet

  // Owned by the loop thread.
  bool manager_ = false;
  std::map<std::string, int64_t> lost_since_;                 // host -> when the manager saw its lease gone
  std::map<std::string, std::string> unplaced_;               // vm -> why it could not be placed (said once)
  std::map<std::string, std::pair<int, int64_t>> own_tries_;  // vm -> restarts here, since when
  // The pool's specs; for an HA VM placed on a host, its spec.
  ParsedByRevision<std::optional<VmSpec>> ha_specs_;
};

}  // namespace pampa
