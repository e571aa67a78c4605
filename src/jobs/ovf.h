// OVF descriptors (DMTF Open Virtualization Format, as VMware and VirtualBox
// export them): the virtual hardware a VM is to have (CPUs, memory, disks,
// NICs, firmware) and which file of the package holds each disk.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

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

// An OVA's manifest (the .mf member): each file's digest as the exporter
// computed it, "SHA256(disk1.vmdk)= 3f9a..." per line (SHA1, SHA256 or
// SHA512). kInvalid for a line of another shape.
struct OvaDigest {
  std::string algorithm;  // "SHA1", "SHA256", "SHA512"
  std::string hex;        // lower case
};
Result<std::map<std::string, OvaDigest>> ParseOvaManifest(std::string_view text);

// Computes a digest of the manifest's kinds over data fed piece by piece.
class OvaHasher {
 public:
  explicit OvaHasher(const std::string& algorithm);
  ~OvaHasher();
  OvaHasher(const OvaHasher&) = delete;
  OvaHasher& operator=(const OvaHasher&) = delete;
  void Update(const void* data, size_t size);
  std::string HexDigest();  // lower case; ends the hashing

 private:
  ::evp_md_ctx_st* ctx_;
};

// "byte * 2^20", "MegaBytes", "byte"... as a multiplier; kInvalid when unknown.
Result<uint64_t> OvfUnits(const std::string& units);

}  // namespace pampa
