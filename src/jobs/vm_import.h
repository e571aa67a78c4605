// VMs brought in from other hypervisors' exports: a XenServer/XCP-ng XVA
// (`xe vm-export`), its disks streamed block by block from the archive, each
// block checked against its checksum before it is written straight into a new
// volume (no copy of the archive or of a disk is made on the way); or an OVA
// (VMware, VirtualBox), its VMDKs converted by qemu-img where they lie inside
// the archive.
//
// Each import is a task. The new VM is registered at once, held by the import
// (VmManager::HoldNewVm) under the intent "import" that lists its volumes:
// a failed or cancelled import removes the VM and every volume made so far,
// and a pampad killed mid-way does the same at its next start (RecoverIntents),
// so no VM ever names a half-written disk.
//
// P2V (--from-host) reads a running server's block devices over SSH (see
// jobs/p2v.h) the same way, and keeps the hashes of what it copied so that a
// second pass copies only what changed since.
#pragma once

#include <string>
#include <vector>

#include "backup/sftp_store.h"
#include "base/events.h"
#include "net/networks.h"
#include "storage/pools.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

// POST /api/v1/vms/import, validated for shape by the route.
struct ImportRequest {
  std::string name;
  std::string xva, ova;  // exactly one of these and from_host: a file in a directory pampad may read
  // P2V: ssh://USER@HOST[:PORT], a running physical server, and its block devices.
  std::string from_host;
  std::vector<std::string> host_disks;
  std::string identity, known_hosts;  // SSH key and known_hosts files (empty: root's own)
  // Copy again only the ranges that changed since the first pass, into the
  // VM that pass made (stopped, never started since).
  bool second_pass = false;
  std::string pool = "default";     // where the disks go
  std::string network = "default";  // every imported NIC's network
  // How the disks reach the guest: sata for a guest without virtio drivers
  // (Windows from XenServer has Xen's, not virtio's).
  DiskBus bus = DiskBus::kVirtio;
};

class VmImports {
 public:
  VmImports(VmManager& vms, Storage& storage, Networks& networks, Tasks& tasks, EventBus& events);

  // Reads and checks the export's description (a PV guest, a VDI named but
  // absent, sizes out of range are refused here, before anything is made),
  // registers the stopped VM, and returns the id of the task that writes its
  // disks. Thread-safe.
  Result<std::string> Import(const ImportRequest& req);

 private:
  struct Plan;
  Result<Plan> ReadXva(const std::string& path);
  Result<Plan> ReadOva(const std::string& path);
  // Make spec's volumes and write them; each volume made is added to made->disks.
  Status WriteXvaDisks(const Plan& plan, const VmSpec& spec, TaskContext& ctx, VmSpec* made);
  Status WriteOvaDisks(const Plan& plan, const VmSpec& spec, TaskContext& ctx, VmSpec* made);
  Result<std::string> ImportFromHost(const ImportRequest& req);
  Result<std::string> SecondPass(const ImportRequest& req);
  // The new VM's disks, NAME-diskN in the request's pool, none of them taken yet.
  Result<std::vector<DiskSpec>> NewDisks(const ImportRequest& req, size_t count);
  // The server of a P2V import, with its key and known_hosts files checked.
  Result<SftpLocation> SshSource(const ImportRequest& req);
  // Where a P2V import keeps the hashes of what it copied, for its second pass.
  std::string RangesPath(const std::string& vm) const;

  VmManager& vms_;
  Storage& storage_;
  Networks& networks_;
  Tasks& tasks_;
  EventBus& events_;
};

}  // namespace pampa
