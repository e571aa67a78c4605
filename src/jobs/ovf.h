// OVF descriptors (DMTF Open Virtualization Format, as VMware and VirtualBox
// export them): the virtual hardware a VM is to have (CPUs, memory, disks,
// NICs, firmware) and which file of the package holds each disk.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace pampa {

struct OvfDisk {
  std::string id;     // its DiskSection diskId
  std::string file;   // the package member holding it (its href); "" for a blank disk
  uint64_t capacity;  // bytes, as the descriptor gives it
};

struct OvfNic {
  std::string network;  // the OVF network it connects to (informative: Pampa's is chosen at import)
  std::string mac;      // "" when none a NIC may take is given
};

struct OvfVm {
  std::string label;  // the VM's name in the package
  int cpus = 1;
  uint64_t memory_mib = 0;
  std::string firmware = "bios";  // or "uefi"
  std::vector<OvfDisk> disks;     // in the order of the hardware's disk drives
  std::vector<OvfNic> nics;
};

// Reads the first VirtualSystem of an OVF envelope. kInvalid, saying what is
// wrong, for what Pampa cannot import as given: no or several VMs, CPU or
// memory out of range or missing, a disk drive naming a disk the descriptor
// does not list, disks that are not VMDK, compressed or chunked files.
Result<OvfVm> ParseOvf(std::string_view xml);

// "byte * 2^20", "MegaBytes", "byte"... as a multiplier; kInvalid when unknown.
Result<uint64_t> OvfUnits(const std::string& units);

}  // namespace pampa
