// What the user asked a VM to be (the desired state kept in the store), and
// the parsing and validation of create/edit requests from the API. Requests
// with unknown fields, bad names or bad sizes are refused before anything changes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "qemu/machine.h"

namespace pampa {

struct DiskSpec {
  std::string pool;
  std::string volume;
  // A linked clone's disk: "POOL/VOLUME" of the template disk its qcow2 image
  // is an overlay of (empty for a disk of its own).
  std::string base;
  DiskBus bus = DiskBus::kVirtio;
  // I/O limits (QEMU throttling), changeable while the VM runs; 0: none.
  uint64_t iops = 0, bps = 0;
  // Its number in QEMU (node, device, PCIe port), once pinned; see DiskSlot.
  std::optional<uint32_t> slot;
};

struct NicSpec {
  std::string network;
  std::string mac;
  uint64_t bps = 0;  // bandwidth each way, bytes/s (tc on the tap); 0: none
  // Its number in QEMU (netdev, device, PCIe port, tap), once pinned; see NicSlot.
  std::optional<uint32_t> slot;
};

// Cloud-init settings, given to the guest as a NoCloud seed (a CD labelled
// "cidata") made at each start; empty: no seed.
struct CloudInit {
  std::string user;                   // the user to create (sudo); empty: the image's default user
  std::vector<std::string> ssh_keys;  // authorized keys, one OpenSSH public key each
  std::string password_hash;          // crypt(3) SHA-512 of the user's password; the password is never kept
  std::string ip;                     // the first NIC: "dhcp" or an IPv4 CIDR; empty: the image's default
  std::string gateway, dns, hostname;
  bool empty() const {
    return user.empty() && ssh_keys.empty() && password_hash.empty() && ip.empty() && gateway.empty() && dns.empty() &&
           hostname.empty();
  }
};

// Applies a "cloud_init" object of a request to ci: each field given replaces
// the one there ("" clears it), "password" is hashed. Refuses what is malformed.
Status ApplyCloudInit(const nlohmann::json& body, CloudInit* ci);

struct VmSpec {
  std::string name;
  std::string uuid;
  int cpus = 1;
  uint64_t memory_mib = 512;
  std::vector<DiskSpec> disks;
  std::string cdrom, kernel, initrd, append;
  std::vector<NicSpec> nics;
  std::string firmware = "bios";
  bool autostart = false;
  // The host that runs the VM (its owner in a pool); empty in a state file
  // written before pools existed, which means this host.
  std::string host;
  // A template: read-only, never started, the source of clones.
  bool is_template = false;
  CloudInit cloud_init;
  std::string cpu_model;  // a QEMU CPU model; empty: host under KVM, qemu64 under TCG
  // CPU topology; 0: not set (QEMU lays out `cpus` itself). When set, cpus = sockets * cores * threads.
  int sockets = 0, cores = 0, threads = 0;
  std::vector<std::string> boot_order;  // of "disk", "cdrom", "net"; empty: disk, cdrom
  // High availability (cluster/ha.h): when its host is lost while it runs,
  // the pool's HA manager starts it on another host, higher priority first.
  bool ha = false;
  int ha_priority = 0;  // 0..1000
  // Its share of the host (qemu/cgroups.h), changeable while it runs.
  int cpu_weight = 100;         // relative CPU share, 1..10000
  int cpu_cap = 0;              // percent of one core, at most 100 per vCPU; 0: no cap
  std::string cpu_pin;          // host cores its vCPU threads run on ("0-1,3"); empty: any
  uint64_t memory_min_mib = 0;  // dynamic memory: the balloon may take it down to this; 0: static
  // Its machine's hot-plug ports (see FitPorts): disk slots below disk_ports
  // and NIC slots below nic_ports have one. 0: a VM from before they were
  // counted, whose machine has one for every slot.
  uint32_t disk_ports = 0, nic_ports = 0;
};

// Dynamic memory: the balloon controller may move the VM between memory_min_mib and memory_mib.
inline bool DynamicMemory(const VmSpec& s) { return s.memory_min_mib > 0 && s.memory_min_mib < s.memory_mib; }

// CPU model, topology and boot order, as create and edit requests give them.
struct MachineOptions {
  std::optional<std::string> cpu_model;
  std::optional<int> sockets, cores, threads;
  std::optional<std::vector<std::string>> boot_order;
  bool any() const { return cpu_model || sockets || cores || threads || boot_order; }
};
// Applies o, and cpus when given, to s: a topology sets cpus to its product
// (a cpus that differs is refused); cpus alone clears the topology.
Status ApplyMachineOptions(const MachineOptions& o, std::optional<int> cpus, VmSpec* s);

// Slots: the number a disk or NIC has inside QEMU (node and device names, its
// PCIe port, a NIC's tap). A disk or NIC without a pinned slot takes the lowest
// one no pinned slot and no earlier unpinned one has, so a VM that never lost
// a device while running has slot == position. A device that leaves a running
// VM leaves a gap: EditLive pins every slot first, so no other device is
// renumbered under the guest (Proxmox keeps virtio1 when virtio0 goes, too).
size_t DiskSlot(const VmSpec& spec, size_t index);
size_t NicSlot(const VmSpec& spec, size_t index);
// Pins every disk's and NIC's slot to what it resolves to now.
void PinSlots(VmSpec* spec);

// Hot-plug ports. QEMU 7.2 redraws its memory map for every bridge whose
// state it loads, so each PCIe root port lengthens a live migration's
// switch-over (target 26-62 ms behind the source with none, 123-130 ms with
// one for all 24 slots: docs/design.md). A VM has a port for each slot it
// uses and a few spare for devices added while it runs. The count is part of
// the machine, which a migration's target and a saved RAM state must find
// unchanged: FitPorts runs only where neither can be (a new VM; an edit of a
// stopped VM without snapshots).
constexpr size_t kSpareDiskPorts = 3, kSpareNicPorts = 2;
size_t DiskPorts(const VmSpec& spec);
size_t NicPorts(const VmSpec& spec);
void FitPorts(VmSpec* spec);

nlohmann::json ToJson(const VmSpec& s);
// The host tap device of NIC `index` while the VM runs.
std::string TapName(const VmSpec& spec, size_t index);
// The cloud-init settings fit the VM (an address needs a NIC).
Status CheckCloudInit(const VmSpec& spec);
Result<VmSpec> VmSpecFromJson(const nlohmann::json& j);

// POST /vms body, validated for shape (existence of pools etc. is checked by VmManager).
struct CreateRequest {
  std::string name;
  int cpus = 1;
  uint64_t memory_mib = 512;
  std::string pool = "default";
  std::string disk_image;       // imported as the first disk
  std::vector<uint64_t> disks;  // blank disks, bytes
  std::string cdrom, kernel, initrd, append;
  std::vector<std::string> networks = {"default"};  // empty: no NIC
  std::string firmware = "bios";
  bool autostart = false;
  std::string host;  // where to run it in a pool; empty: placement picks
  CloudInit cloud_init;
  MachineOptions machine;
};
Result<CreateRequest> ParseCreateRequest(const nlohmann::json& body);

// PATCH /vms/NAME body: only the given fields change.
struct EditRequest {
  std::optional<int> cpus;
  std::optional<uint64_t> memory_mib;
  std::optional<bool> autostart;
  std::optional<bool> ha;
  std::optional<int> ha_priority;
  std::optional<std::string> cdrom, kernel, initrd, append, firmware;
  // Resources, all changeable while the VM runs.
  std::optional<int> cpu_weight, cpu_cap;
  std::optional<std::string> cpu_pin;
  std::optional<uint64_t> memory_min_mib;
  struct Limit {
    size_t index = 0;  // the disk's or NIC's number
    std::optional<uint64_t> iops, bps;
  };
  std::vector<Limit> disk_limits, nic_limits;
  // Disks to add: a blank disk of a size (a new volume in the pool of the
  // VM's first disk), or an existing volume no VM uses.
  struct NewDisk {
    uint64_t size = 0;  // 0: the volume below
    std::string pool, volume;
    DiskBus bus = DiskBus::kVirtio;
  };
  std::vector<NewDisk> add_disks;
  std::optional<size_t> remove_disk;  // by number, before the additions
  bool keep_volume = false;           // the removed disk's volume stays in its pool
  std::vector<NicSpec> add_nics;      // an empty mac: a new one
  std::optional<size_t> remove_nic;
  // Cloud-init changes (checked; applied with ApplyCloudInit); null: remove all.
  std::optional<nlohmann::json> cloud_init;
  MachineOptions machine;

  // What only a stopped VM can change.
  bool ChangesMachine() const { return cpus || memory_mib || kernel || initrd || append || firmware || machine.any(); }
  // What a running VM changes by hot-plug.
  bool ChangesDevices() const { return cdrom || !add_disks.empty() || remove_disk || !add_nics.empty() || remove_nic; }
  // What a running VM changes at once, without the guest noticing.
  bool ChangesResources() const {
    return cpu_weight || cpu_cap || cpu_pin || memory_min_mib || !disk_limits.empty() || !nic_limits.empty();
  }
};
Result<EditRequest> ParseEditRequest(const nlohmann::json& body);

// POST /vms/SOURCE/clone body.
struct CloneRequest {
  std::string source, name;
  bool linked = false;                       // qcow2 overlays on the source's disks (the source must be a template)
  std::string snapshot;                      // copy the disks as this snapshot of the source has them
  std::string pool;                          // where a full clone's disks go (default: beside the source's)
  std::optional<nlohmann::json> cloud_init;  // changes to the source's cloud-init (see ApplyCloudInit)
};
Result<CloneRequest> ParseCloneRequest(const std::string& source, const nlohmann::json& body);

// A MAC a NIC may take: six hex pairs with ':', unicast, not all zeros.
Status CheckMac(const std::string& mac);
// A new locally administered MAC in QEMU's 52:54:00 range.
std::string NewMac();
std::string NewUuid();

}  // namespace pampa
