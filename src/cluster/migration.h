// Moving VMs between hosts of a pool. A running VM moves live: the target
// host starts a QEMU waiting for the migration (CPUs stopped), the source's
// QEMU sends memory and device state over TCP (disks in a shared pool stay
// where they are; disks in the source's own pools are copied into new
// volumes on the target first, see disk_mirror.h), and when QEMU has sent
// everything the source records in the store that the target runs the VM. Only then does the target start the
// CPUs; the source's QEMU, paused since the switch, is stopped. A stopped VM
// moves cold: the store record changes hosts.
//
// Whatever fails before the store names the target (the target dies, the link
// drops, the target refuses, a cancel) leaves the VM running on the source;
// the target's waiting QEMU is dropped (asked by the source, or by the
// target's own reaper when the source never comes back to it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "base/mutex.h"
#include "cluster/cluster.h"
#include "cluster/disk_mirror.h"
#include "storage/pools.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

struct MigrateRequest {
  std::string to;              // the target host
  uint64_t bandwidth_mib = 0;  // MiB/s; 0: as fast as the link goes
  int max_downtime_ms = 100;   // how long the guest may be stopped at the switch
};
Result<MigrateRequest> ParseMigrateRequest(const nlohmann::json& body);

class Migrations {
 public:
  Migrations(VmManager& vms, Storage& storage, Cluster& cluster, Tasks& tasks);
  ~Migrations();  // stops the reaper; VMs waiting for a migration are dropped

  // Source: moves VM name to req.to in a task; returns its id.
  Result<std::string> Migrate(const std::string& name, const MigrateRequest& req);
  // Source: the same, inside a task that already runs (host maintenance).
  Result<nlohmann::json> MigrateNow(const std::string& name, const MigrateRequest& req, TaskContext& ctx);

  // Maintenance: marks this host (it takes no new VMs) and moves every
  // running VM away, each to the host placement picks, in a task; off: takes
  // VMs again. Returns the task id ("" for off).
  Result<std::string> Maintenance(bool on);

  // Target: starts a QEMU for spec's VM waiting for its migration from host
  // `from`, and listens for its stream: returns {"stream": {"host", "port"}},
  // where the source connects before it asks TakeStream.
  // paused: the VM was paused on the source and stays paused here.
  // copies: the disks in the source's own pools: made here as new volumes
  // (same pool and volume names) and exported for the source's copy
  // ({"nbd": {"host", "port"}} in the answer).
  Result<nlohmann::json> PrepareIncoming(const VmSpec& spec, const std::string& from, bool paused,
                                         const std::vector<LocalDisk>& copies = {});
  // Target, a stopped VM's move: checks that the copies can come (pools,
  // room, names) and records them (their intent) before the files arrive.
  Status PrepareCold(const VmSpec& spec, const std::vector<LocalDisk>& copies);
  // Target: where a copied volume's file goes (the source PUTs it), and once
  // whole, the volume; only for the copies PrepareCold recorded.
  Result<std::string> IncomingVolumeFile(const std::string& vm, const std::string& pool, const std::string& volume,
                                         const std::string& format, uint64_t length);
  Status PlaceIncomingVolume(const std::string& vm, const std::string& pool, const std::string& volume,
                             const std::string& format, const std::string& file);
  // Target: the source connected its stream: the connection goes to the
  // waiting QEMU (its receive buffer sized to the link).
  Status TakeStream(const std::string& name);
  // Target: the source has handed the VM over (the store names this host):
  // once QEMU has received everything, the VM runs here (run: start the CPUs;
  // false when it was paused on the source). cold: a stopped VM, no QEMU.
  // check: only confirm that QEMU here has received everything (before the
  // source hands the VM over); the VM keeps waiting.
  // resumed_ms: how long after this call began the CPUs started (live runs).
  Status AcceptIncoming(const std::string& name, bool run, bool cold, bool check = false, double* resumed_ms = nullptr);
  // Target: the migration will not be; the waiting QEMU goes.
  Status AbortIncoming(const std::string& name);

  // Target: looks at waiting QEMUs every second and settles the ones whose
  // source went silent: adopted when the store names this host, else dropped.
  void StartReaper();

 private:
  struct Incoming;
  std::unique_ptr<Incoming> Take(const std::string& name);
  // Take, waiting out the reaper (it looks at a waiting VM for a QMP query and
  // a call to the source at most); null when no such migration waits here.
  std::unique_ptr<Incoming> TakeSoon(const std::string& name);
  void PutBack(std::unique_ptr<Incoming> incoming);
  // Settles an incoming migration left alone; true when it is done with.
  bool Reap(Incoming& incoming);
  // Drops the waiting QEMU unless the store names this host as the VM's (then
  // it holds the only copy and waits to be adopted); true when dropped.
  bool DropUnlessOurs(Incoming& incoming, const std::string& why);
  // The waiting QEMU goes, with the volumes made here for the disk copies.
  void Drop(Incoming& incoming);
  // The source's disk copies are done: their NBD export goes.
  void StopExport(Incoming& incoming);
  // The VM runs here now (run) or waits paused: the copies' export goes and
  // the volumes made for them are the VM's.
  Status Adopt(Incoming& incoming, bool run, std::chrono::steady_clock::time_point* resumed = nullptr);
  // Source, cold: the target records what comes (PrepareCold), then each
  // volume's file goes whole (snapshots and bitmaps in it).
  Status SendDisks(const VmSpec& spec, const std::vector<LocalDisk>& local, const std::string& to, TaskContext& ctx);
  // Target: the copies can be made here (own pool of that name, room, no
  // volume of that name); the spec with only their disks.
  Result<VmSpec> CheckCopies(const VmSpec& spec, const std::vector<LocalDisk>& copies);
  // Source, after the handover: its copies of the moved disks go once the
  // target took the VM in (taken); otherwise they stay, and the task says so.
  void RemoveSourceCopies(const VmSpec& copied, bool taken, const std::string& to, TaskContext& ctx);
  // Source: the disks in this host's own pools, copied during the move.
  Result<std::vector<LocalDisk>> LocalDisks(const VmSpec& spec);
  void ReaperLoop();
  // Takes in the stopped VMs the store gives this host that it does not know.
  void AdoptMovedHere();

  VmManager& vms_;
  Storage& storage_;
  Cluster& cluster_;
  Tasks& tasks_;

  Mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::unique_ptr<Incoming>> incoming_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

}  // namespace pampa
