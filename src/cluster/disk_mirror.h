// Disks only one host reaches, copied to the target host while the VM runs.
// The target's QEMU (waiting for the migration) exports its new, empty
// volumes over NBD; the source's QEMU mirrors each disk into them
// (blockdev-mirror, writes blocking on both copies once in step). The
// memory migration pauses before its switch-over (QEMU's
// pause-before-switchover): the guest is stopped, every copy is finished and
// detached, and only then does the device state go over. Persistent dirty
// bitmaps travel in the migration stream (QEMU's dirty-bitmaps capability),
// so the next backup after a move is still incremental.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"
#include "qmp/qmp_client.h"

namespace pampa {

// One disk of the VM in a pool of the source host's own.
struct LocalDisk {
  size_t index = 0;    // the VM's disk N
  std::string format;  // qcow2 | raw
  uint64_t size = 0;   // virtual size in bytes
  size_t slot = 0;     // its QEMU node "diskSLOT" (DiskSlot of the spec; not sent: each end reads its spec)
};
nlohmann::json ToJson(const LocalDisk& disk);
Result<std::vector<LocalDisk>> LocalDisksFromJson(const nlohmann::json& j, size_t disk_count);

// How a migration's streams (memory and disk copies) are protected: the id
// of a QEMU tls-creds-x509 object ("" for none: plain TCP) and the pool host
// name the other end's certificate must carry (the client side's check).
struct StreamTls {
  std::string creds;
  std::string hostname;
};

// Adds a tls-creds-x509 object `id` from dir (the pool certificate, as
// QEMU names its files) for endpoint "server" or "client", replacing one of
// the same id (so a renewed certificate is read again).
Status AddTlsCreds(QmpClient& qmp, const std::string& id, const std::string& dir, const std::string& endpoint);

// Target: starts QEMU's NBD server on host (the first free port from 60000)
// and exports every disk writable; returns the port. With tls.creds (a
// server endpoint) it takes TLS clients of the pool only.
Result<int> ExportForMirror(QmpClient& qmp, const std::string& host, const std::vector<LocalDisk>& disks,
                            const StreamTls& tls);
// Target: the copies are finished; the server goes (no error when none runs).
void StopMirrorExport(QmpClient& qmp);

// Source: the copy jobs of one migration.
class DiskMirror {
 public:
  DiskMirror(QmpClient& qmp, std::vector<LocalDisk> disks)
      : qmp_(qmp), disks_(std::move(disks)), cut_(disks_.size(), false) {}
  DiskMirror(const DiskMirror&) = delete;
  DiskMirror& operator=(const DiskMirror&) = delete;
  ~DiskMirror() { Abandon(); }

  // Connects to the target's export and starts copying every disk.
  // bytes_per_s: 0 for as fast as it goes.
  Status Start(const std::string& host, int port, uint64_t bytes_per_s, const StreamTls& tls);
  struct Progress {
    uint64_t done = 0, total = 0;
    bool ready = false;  // every copy is in step with the guest
  };
  // Fails when a copy failed (QEMU's reason).
  Result<Progress> Poll();
  // At the switch-over (the guest is stopped): finishes every copy and
  // detaches the target; fails when a copy could not be finished.
  Status Finish();
  // The target stopped taking data (a stalled stream): cuts every copy's
  // connection to it (QMP yank), so that QEMU fails the writes waiting for
  // the target instead of holding them, the guest's and those a
  // migrate_cancel drains in QEMU's main loop (QEMU then stopped answering
  // QMP until TCP gave up). The copies end with an error; Abandon still ends
  // them. Only for a target that takes no writes: a cut copy leaves QEMU's
  // mirror the way a forced cancel does (docs/design.md). A no-op once the
  // copies ended.
  void CutLinks();
  // Ends every copy (a failed or cancelled migration): one in step
  // completes without switching over, one not yet in step stops where it is;
  // the target's copies are then left for the target to drop. Safe to call
  // twice.
  void Abandon();

 private:
  // Ends the first `count` jobs (cancels them, waits for all of them to
  // conclude, cutting the connection of any that has not after 10 s,
  // dismisses them and removes their NBD nodes): each one's error, if it had
  // one.
  std::vector<Status> EndJobs(size_t count);
  // Cuts disk i's copy's connection (QMP yank of its NBD node).
  void Cut(size_t i);
  QmpClient& qmp_;
  std::vector<LocalDisk> disks_;
  std::vector<bool> cut_;  // per disk: its copy's connection was cut (its error then says so)
  size_t started_ = 0;     // jobs started (and NBD nodes added) so far
  bool ended_ = false;
};

}  // namespace pampa
