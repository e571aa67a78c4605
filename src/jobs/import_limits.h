// What an imported VM may have, whatever its export says: Pampa's own limits
// for a VM (vm_spec.cc) and a ceiling on disks and NICs. Shared by the XVA
// and OVF readers so that both refuse the same things with the same words.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace pampa {

inline constexpr uint64_t kImportMaxCpus = 64;
inline constexpr uint64_t kImportMinMemory = 16ull << 20, kImportMaxMemory = 1ull << 40;
inline constexpr uint64_t kImportMaxDiskSize = 64ull << 40;
inline constexpr size_t kImportMaxDevices = 16;  // disks, and NICs

// what: the VM as the user knows it ("vm 'web'", "the OVF").
inline Status CheckImportedHardware(const std::string& what, uint64_t cpus, uint64_t memory_bytes, size_t disks,
                                    size_t nics) {
  if (cpus < 1 || cpus > kImportMaxCpus) {
    return Status::Invalid(what + " has " + std::to_string(cpus) + " vCPUs; Pampa runs 1 to " +
                           std::to_string(kImportMaxCpus));
  }
  if (memory_bytes < kImportMinMemory || memory_bytes > kImportMaxMemory) {
    return Status::Invalid(what + " has " + std::to_string(memory_bytes) +
                           " bytes of memory; Pampa runs 16 MiB to 1 TiB");
  }
  if (disks == 0) return Status::Invalid(what + " has no disk");
  if (disks > kImportMaxDevices || nics > kImportMaxDevices) {
    return Status::Invalid(what + " has " + std::to_string(disks) + " disks and " + std::to_string(nics) +
                           " NICs; at most " + std::to_string(kImportMaxDevices) + " of each are imported");
  }
  return Status::Ok();
}

// A disk's virtual size in range; what: "disk 'Ref:3'".
inline Status CheckImportedDiskSize(const std::string& what, uint64_t size) {
  if (size == 0 || size > kImportMaxDiskSize) {
    return Status::Invalid(what + " has a virtual size of " + std::to_string(size) +
                           " bytes; Pampa takes 1 byte to 64 TiB");
  }
  return Status::Ok();
}

}  // namespace pampa
