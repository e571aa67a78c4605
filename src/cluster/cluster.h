// The pool of hosts as this host sees it: every pampad records itself under
// hosts/<name>/info (its API address, size, version, a heartbeat) in the
// shared store, reads the others' records there, places new VMs, and carries
// an action on another host's VM to that host (its owner does the work).
//
// Alone (no --cluster), the same object describes a pool of one: host list
// shows this host, and nothing is ever forwarded.
//
// Threads: public methods may be called from any thread; the heartbeat runs
// on a thread of its own (Start/Stop). No mutex is held across store calls.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/events.h"
#include "base/mutex.h"
#include "cluster/peer_client.h"
#include "store/store.h"

namespace pampa {

enum class HostState {
  kOnline,       // heartbeat is fresh
  kMaintenance,  // online, takes no new VMs
  kLost,         // its lease ended: no renewal for ClusterConfig::lost_after
};
std::string_view Name(HostState s);

// Exists while the host's pampad keeps its lease alive.
std::string HostAliveKey(const std::string& host);
// The host's record of a VM's QEMU (VmManager::PersistRuntime writes it).
std::string HostRuntimeKey(const std::string& host, const std::string& vm);

struct HostRecord {
  std::string name;
  std::string url;  // the API address peers use, "http://ADDR:PORT"
  std::string version;
  int cpus = 0;
  uint64_t memory_bytes = 0;
  int64_t heartbeat_ms = 0;  // wall clock of the last heartbeat
  bool maintenance = false;
  // Derived from the VMs in the store when listed:
  HostState state = HostState::kOnline;
  uint64_t memory_committed = 0;  // of the VMs it runs
  int cpus_committed = 0;
  int vms = 0, running = 0;
  std::vector<std::string> pools, networks;  // what it reaches
};
nlohmann::json ToJson(const HostRecord& h);

struct ClusterConfig {
  std::string host;                             // this host's name in the pool
  std::string url;                              // this host's API address for peers ("" alone)
  std::string version;                          // pampad's
  bool pooled = false;                          // false: a pool of one (no heartbeat, no forwarding)
  std::chrono::milliseconds heartbeat{1000};    // lease renewal
  std::chrono::milliseconds lost_after{10000};  // the lease's time to live
  std::shared_ptr<tls::PoolTls> tls;            // this host's pool certificate; null: plain HTTP between hosts
};

class Cluster {
 public:
  Cluster(Store& store, EventBus& events, ClusterConfig config, std::string token);
  ~Cluster();

  // Records this host (and, pooled, keeps its heartbeat and relays other
  // hosts' task records as events, so that a client following the events of
  // any host sees every task end).
  Status Start();
  void Stop();

  const ClusterConfig& config() const { return config_; }
  // The token hosts of the pool use between them.
  const std::string& token() const { return token_; }
  bool pooled() const { return config_.pooled; }

  // When this host's lease was last renewed: the moment the renewal that
  // succeeded was sent, so the lease lives at least lost_after from then
  // (nullopt before the first). What fencing counts from (cluster/ha.h).
  std::optional<std::chrono::steady_clock::time_point> LeaseRenewedAt() const;
  // Asked at a clean Stop whether the lease may end at once (the host shown
  // as gone at once) or must run out (HA VMs still run here: another host
  // may start them only once this host's fencing has stopped them).
  void SetRevokeOnStop(std::function<bool()> may_revoke);

  Result<std::vector<HostRecord>> Hosts();
  Result<HostRecord> Host(const std::string& name);
  // Marks a host in or out of maintenance (it takes no new VMs while in).
  Status SetMaintenance(const std::string& name, bool on);
  // A host that left the pool for good: its records go. Refused while it is
  // online (its pampad runs) or the store gives it VMs.
  Status Remove(const std::string& name);

  // The host that runs VM name per its spec ("" when the VM does not exist;
  // this host for a spec naming no host).
  Result<std::string> OwnerOf(const std::string& vm);
  // VMs of other hosts, in the shape VmManager::List gives (state from their
  // owner's runtime record).
  Result<std::vector<nlohmann::json>> RemoteVms();
  // The VMs whose spec names this host.
  Result<std::vector<std::string>> MovedHere();
  // The same serialized, by name in name order; rebuilt only when the store
  // changed since the last call (a pool-wide list costs a revision read).
  using NamedTexts = std::vector<std::pair<std::string, std::shared_ptr<const std::string>>>;
  Result<NamedTexts> RemoteVmTexts();

  // The host a new VM of this size should run on: the online host (not in
  // maintenance) with enough free memory and the most free CPUs. A refusal
  // says what each host lacks.
  Result<std::string> Place(uint64_t memory_mib, int cpus);
  // Checks that a named host can take a VM of this size.
  Status CheckPlacement(const std::string& host, uint64_t memory_mib, int cpus);
  Status CheckPlacement(const HostRecord& host, uint64_t memory_mib);

  // Carries an API request to host and returns its answer; kUnavailable (with
  // the host's state) when it cannot be reached.
  Result<PeerReply> Call(const std::string& host, PeerRequest req,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // PUTs a file to a host (PutFileToPeer).
  Result<PeerReply> PutFile(const std::string& host, const std::string& target, const std::string& file,
                            std::chrono::milliseconds timeout);

 private:
  Status WriteRecord(bool maintenance);
  // Keeps this host's lease alive (a new one when it ended) with its alive
  // key, and notes when (LeaseRenewedAt).
  Status RenewLiveness(int64_t* lease);
  Status RenewLease(int64_t* lease);
  void HeartbeatLoop(int64_t lease);
  // How often the host record (facts, heartbeat time) is rewritten.
  static constexpr std::chrono::seconds kRecordEvery{10};
  HostRecord LocalFacts() const;

  Store& store_;
  EventBus& events_;
  const ClusterConfig config_;
  const std::string token_;

  Mutex mu_;
  std::condition_variable wake_;
  bool stopping_ GUARDED_BY(mu_) = false;
  bool maintenance_ GUARDED_BY(mu_) = false;
  int64_t maintenance_changes_ GUARDED_BY(mu_) = 0;  // SetMaintenance calls
  int64_t remote_revision_ GUARDED_BY(mu_) = -1;     // the store revision remote_texts_ was built at
  NamedTexts remote_texts_ GUARDED_BY(mu_);
  std::thread heartbeat_;
  std::unique_ptr<Watch> task_relay_;
  // steady_clock nanoseconds of LeaseRenewedAt; 0: never renewed.
  std::atomic<int64_t> renewed_at_ns_{0};
  std::function<bool()> may_revoke_ GUARDED_BY(mu_);
};

// The pool's API token: the first host of a pool records its own, the
// others take it from the store (every host answers with the same token).
Result<std::string> PoolToken(Store& store, const std::string& local_token);

}  // namespace pampa
