// A fully resolved machine description (paths, taps, MACs) and the QEMU
// command line built from it. The vm/ layer resolves a user's VmSpec into this.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

struct DiskConfig {
  std::string path;
  std::string format;  // qcow2 | raw
};

struct NicConfig {
  std::string tap;  // host tap device, created before QEMU starts
  std::string mac;
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
  // Wait for a live migration (-incoming defer; migrate-incoming names the
  // address) with the CPUs stopped (-S) until the caller says cont.
  bool incoming = false;
};

// Ok when QEMU knows the CPU model (qemu-system-x86_64 -cpu help, read once).
Status CheckCpuModel(const std::string& model);

// The argv that starts this machine; argv[0] is the QEMU binary.
std::vector<std::string> QemuCommandLine(const MachineConfig& m, const RuntimePaths& paths);

}  // namespace pampa
