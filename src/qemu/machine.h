// A fully resolved machine description (paths, taps, MACs) and the QEMU
// command line built from it. The vm/ layer resolves a user's VmSpec into this.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

// How a disk reaches the guest. virtio and scsi (virtio-scsi) disks can be
// added and removed while the guest runs; sata (AHCI) ones only while it is off,
// but every guest has the driver (Windows before its virtio drivers are in).
enum class DiskBus { kVirtio, kScsi, kSata };
std::string_view Name(DiskBus bus);
bool ParseDiskBus(std::string_view name, DiskBus* out);

struct DiskConfig {
  std::string path;
  std::string format;  // qcow2 | raw
  DiskBus bus = DiskBus::kVirtio;
  std::optional<size_t> slot;  // its number for DiskNode/DiskDevice; empty: its position
};

struct NicConfig {
  std::string tap;  // host tap device, created before QEMU starts
  std::string mac;
  std::optional<size_t> slot;  // its number for NicNetdev/NicDevice; empty: its position
};

// Where the sockets and logs of one running VM live (under the run directory).
struct RuntimePaths {
  std::string dir;
  std::string qmp() const { return dir + "/qmp.sock"; }
  std::string qga() const { return dir + "/qga.sock"; }
  std::string serial() const { return dir + "/serial.sock"; }
  std::string serial_log() const { return dir + "/console.log"; }
  std::string vnc() const { return dir + "/vnc.sock"; }
  std::string pidfile() const { return dir + "/qemu.pid"; }
  std::string qemu_log() const { return dir + "/qemu.log"; }
};

// The machine's layout: a disk or NIC slot that has a PCIe root port from the
// start can take a device while the guest runs, which lands where a fresh
// start (or the far end of a migration) puts it. Each slot has a fixed port
// address, so a machine with fewer ports keeps the others' addresses.
constexpr size_t kMaxDisks = 16, kMaxNics = 8, kMaxSataDisks = 4;

struct MachineConfig {
  std::string name;
  std::string uuid;
  int cpus = 1;
  int sockets = 0, cores = 0, threads = 0;  // 0: -smp cpus alone
  std::string cpu_model;                    // empty: host under KVM, qemu64 under TCG
  std::vector<std::string> boot_order;      // of disk, cdrom, net; empty: disk, cdrom
  uint64_t memory_mib = 256;
  std::vector<DiskConfig> disks;
  std::string cdrom;
  std::string cidata;  // a cloud-init NoCloud seed image, on a CD of its own
  std::string kernel, initrd, append;
  std::vector<NicConfig> nics;
  std::string firmware = "bios";  // bios | uefi
  std::string ovmf_code, ovmf_vars;
  std::string accel = "tcg";  // kvm | tcg
  std::string loadvm;         // start from this internal snapshot (with RAM state)
  // Hot-plug: disk slots below disk_ports and NIC slots below nic_ports have a
  // PCIe root port.
  size_t disk_ports = kMaxDisks, nic_ports = kMaxNics;
  // Wait for a live migration (-incoming defer; migrate-incoming names the
  // address) with the CPUs stopped (-S) until the caller says cont.
  bool incoming = false;
};

// QEMU's -blockdev / blockdev-add options of a disk image node.
nlohmann::json BlockdevOptions(const std::string& node, const std::string& format, const std::string& path,
                               bool read_only);
// The node and device of the disk in slot `index` (its PCIe port, its SCSI id):
// the -device / device_add options, the same for a start and a hot-plug.
// sata_slot counts the sata disks before it.
std::string DiskNode(size_t index);
std::string DiskDeviceId(size_t index, DiskBus bus);
nlohmann::json DiskDevice(size_t index, DiskBus bus, size_t sata_slot, int bootindex);
// The NIC in slot `index`: its tap netdev's id and options, and its device.
std::string NicNetdevId(size_t index);
std::string NicDeviceId(size_t index);
nlohmann::json NicNetdev(size_t index, const std::string& tap);
nlohmann::json NicDevice(size_t index, const std::string& mac, int bootindex);

// Ok when QEMU knows the CPU model (qemu-system-x86_64 -cpu help, read once).
Status CheckCpuModel(const std::string& model);

// The argv that starts this machine; argv[0] is the QEMU binary.
std::vector<std::string> QemuCommandLine(const MachineConfig& m, const RuntimePaths& paths);

}  // namespace pampa
