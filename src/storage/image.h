// Disk images from outside: inspection (what is it really?) and conversion
// into a pool, through qemu-img, with progress.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

struct ImageInfo {
  std::string format;  // as detected by qemu-img: raw, qcow2, vmdk, vpc, vhdx, ...
  uint64_t virtual_size = 0;
  uint64_t actual_size = 0;
  std::string backing_file;
  std::string subformat;  // a VMDK's create-type: monolithicSparse, streamOptimized, monolithicFlat...
  std::string data_file;  // a qcow2's external data file, if it has one
};

Result<ImageInfo> InspectImage(const std::string& path);

// Checks that the image is what its name claims (foo.qcow2 really is qcow2),
// is a format we import, and has no backing file that could pull in other files.
Status ValidateImportImage(const std::string& path, const ImageInfo& info);

// A stretch of an image's guest bytes and where they live in its file.
struct FileExtent {
  uint64_t start = 0, length = 0;
  int64_t offset = -1;  // file offset of `start`; -1 when the bytes are not in the file
  bool zero = false;    // reads as zeros (whatever the file holds at `offset`)
};

// The guest -> file layout of a qcow2 or raw image (qemu-img map), so its data
// can be read or written with plain file I/O while no QEMU has it open.
// kUnavailable when some data is not addressable that way (compressed or
// encrypted clusters, a backing file): use QEMU's block layer instead.
Result<std::vector<FileExtent>> MapImage(const std::string& path, const std::string& format);

using ProgressFn = std::function<void(double fraction)>;

// Converts src (of src_format) to a new qcow2 or raw file at dst, atomically
// (a temporary name, then rename). Reports progress 0..1; stops when cancel becomes true.
// With a snapshot, src's internal snapshot of that name is read instead; src may
// then be open in a running QEMU (a snapshot's clusters never change in place).
Status ConvertImage(const std::string& src, const std::string& src_format, const std::string& dst,
                    const std::string& dst_format, const ProgressFn& progress, const std::atomic<bool>* cancel,
                    const std::string& snapshot = "");

}  // namespace pampa
