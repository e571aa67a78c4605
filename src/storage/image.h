// Disk images from outside: inspection (what is it really?) and conversion
// into a pool, through qemu-img, with progress.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"

namespace pampa {

struct ImageInfo {
  std::string format;  // as detected by qemu-img: raw, qcow2, vmdk, vpc, vhdx, ...
  uint64_t virtual_size = 0;
  uint64_t actual_size = 0;
  std::string backing_file;
};

Result<ImageInfo> InspectImage(const std::string& path);

// Checks that the image is what its name claims (foo.qcow2 really is qcow2),
// is a format we import, and has no backing file that could pull in other files.
Status ValidateImportImage(const std::string& path, const ImageInfo& info);

using ProgressFn = std::function<void(double fraction)>;

// Converts src (of src_format) to a new qcow2 or raw file at dst, atomically
// (a temporary name, then rename). Reports progress 0..1; stops when cancel becomes true.
Status ConvertImage(const std::string& src, const std::string& src_format, const std::string& dst,
                    const std::string& dst_format, const ProgressFn& progress, const std::atomic<bool>* cancel);

}  // namespace pampa
