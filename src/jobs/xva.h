// XenServer and XCP-ng exports (`xe vm-export`, XVA): the VM's description
// and its disks, read in one pass over the archive.
//
// An XVA is a tar archive. Its first member, ova.xml, is an XML-RPC value
// listing the exported objects (class, id "Ref:N", and the record as it was in
// xapi's database): the VM, its VBDs (disk attachments), VDIs (disks) and
// VIFs (NICs). Then come each disk's blocks, "Ref:N/00000000" upwards, N the
// VDI's id: at most 1 MiB each, each followed by "<its name>.checksum" (the
// SHA-1 of the block, in hex) or "<its name>.xxhash" (XXH64, newer
// XenServer). Blocks of zeros may be left out, except the first and last of a
// disk; where numbers are skipped, 1 MiB of zeros per number lies between.
// (xapi's own reader counts the same way, from where the previous block ended:
// an empty block, which it sends to keep a slow connection open, takes a
// number but no bytes.)
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backup/tar_reader.h"
#include "base/status.h"

namespace pampa {

inline constexpr uint64_t kXvaBlock = 1 << 20;

struct XvaDisk {
  std::string vdi;  // the VDI's id in ova.xml ("Ref:12"): the directory of its blocks
  std::string label;
  uint64_t size = 0;  // virtual size in bytes
  int device = 0;     // its VBD's userdevice: the disk's place on the VM
};

struct XvaNic {
  std::string mac;  // "" when the record has none a NIC may take
  int device = 0;
};

struct XvaVm {
  std::string label;
  int cpus = 1;
  uint64_t memory_mib = 0;
  std::string firmware = "bios";  // or "uefi"
  std::vector<XvaDisk> disks;     // in device order
  std::vector<XvaNic> nics;       // in device order
};

// Reads ova.xml: the one VM that is not a snapshot, its disks and NICs.
// kInvalid, saying what is wrong, for anything out of range or missing (a VDI
// a VBD names but the export does not describe), and for a PV guest (it has no
// firmware to boot from: it must be converted to HVM in XenServer first).
Result<XvaVm> ParseOvaXml(std::string_view xml);

// Reads the archive's first member, which must be ova.xml, and parses it.
Result<XvaVm> ReadXvaHeader(TarReader& tar);

// The hex digest a checksum member of this kind (".checksum": SHA-1,
// ".xxhash": XXH64) holds for data; kInvalid for another kind.
Result<std::string> XvaBlockDigest(std::string_view kind, std::string_view data);

// Where verified data goes: bytes [offset, offset + len) of disks[disk].
// data is page-aligned, at most kXvaBlock bytes. Called from several worker
// threads at once, for different offsets.
using XvaWrite = std::function<Status(size_t disk, uint64_t offset, const char* data, size_t len)>;

// Reads the blocks that follow ova.xml (ReadXvaHeader read it), checks each
// against its checksum member before handing it to write, and fails naming
// the first block that does not match (nothing of it is written). Fails too
// when the blocks are out of order, lie past their disk's end, or do not reach
// it (a truncated export). Blocks of VDIs not in disks are checked and
// skipped. progress gets the archive bytes read so far; stops when cancel
// becomes true.
Status ReadXvaDisks(TarReader& tar, const std::vector<XvaDisk>& disks, const XvaWrite& write,
                    const std::function<void(uint64_t)>& progress, const std::atomic<bool>* cancel);

}  // namespace pampa
