// Storage pools (directories today; LVM, NFS, iSCSI later) and the volumes in
// them. A pool's definition lives in the store ("pools/NAME"); its volumes are
// the files in its directory, so what is on disk is the truth. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "storage/image.h"
#include "store/store.h"

namespace pampa {

struct PoolInfo {
  std::string name;
  std::string type = "dir";
  std::string path;
  uint64_t capacity = 0;
  uint64_t available = 0;
};

struct VolumeInfo {
  std::string pool;
  std::string name;
  std::string format;  // qcow2 | raw
  std::string path;
  uint64_t virtual_size = 0;
  uint64_t allocated = 0;
};

class Storage {
 public:
  // allowed_dirs: where files from outside (images, kernels, ISOs) may be read.
  // local_prefix: where this host's own ("dir") pools are recorded: "pools/"
  // alone; "hosts/<host>/pools/" in a pool of hosts, where "pools/" holds the
  // shared pools every host reaches at the same path.
  Storage(Store& store, std::vector<std::string> allowed_dirs, std::string local_prefix = "pools/");

  Status EnsurePool(const std::string& name, const std::string& path);
  // This host's pools and the shared ones, by name.
  Result<std::vector<PoolInfo>> ListPools();
  Result<PoolInfo> GetPool(const std::string& name);
  // type: "dir" (this host's) or "shared" (every host of a pool reaches path).
  Status CreatePool(const std::string& name, const std::string& path, const std::string& type = "dir");
  // Refuses while the pool holds volumes.
  Status DeletePool(const std::string& name);

  Result<std::vector<VolumeInfo>> ListVolumes(const std::string& pool);
  Result<VolumeInfo> GetVolume(const std::string& pool, const std::string& name);
  // Path and format only, without asking qemu-img for sizes (fast: used on VM start).
  Result<VolumeInfo> LocateVolume(const std::string& pool, const std::string& name);
  // preallocate: a qcow2 gets every cluster mapped up front (a sparse file), so
  // its data can be written straight into the file (MapImage) by restores.
  Result<VolumeInfo> CreateVolume(const std::string& pool, const std::string& name, uint64_t size,
                                  const std::string& format, bool preallocate = false);
  // Grows to size ("20G") or by it ("+5G"), never shrinks (that would destroy
  // data); returns the new size in bytes.
  Result<uint64_t> ResizeVolume(const std::string& pool, const std::string& name, const std::string& size);
  Status DeleteVolume(const std::string& pool, const std::string& name);
  // Removes the half-made volume files (NAME.FORMAT.creating) a pampad killed
  // mid-create or mid-import left in every pool; returns how many. Call once
  // at start, before any volume is made.
  int RemoveUnfinished();
  // A volume moving in whole from another host of the pool (a stopped VM's
  // disk, with its snapshots and bitmaps): the file to write it to, under a
  // .creating name the next start removes if it never arrives whole. Only
  // into this host's own pools, with room for length bytes.
  Result<std::string> IncomingVolumeFile(const std::string& pool, const std::string& name, const std::string& format,
                                         uint64_t length);
  // That file arrived whole: checked (the format said, no backing file) and
  // made the volume; removed when it is refused.
  Result<VolumeInfo> PlaceIncomingVolume(const std::string& pool, const std::string& name, const std::string& format,
                                         const std::string& file);
  // Validates the image (see ValidateImportImage) and converts it into a new qcow2 volume.
  Result<VolumeInfo> ImportVolume(const std::string& pool, const std::string& name, const std::string& src,
                                  const ProgressFn& progress, const std::atomic<bool>* cancel);
  // ImportVolume for an image that lies inside another file from outside (a
  // VMDK in an OVA's tar): bytes [offset, offset + length) of src, read in
  // place (qemu-img's raw driver with an offset and size), never copied out.
  // It must be a single-file image of `format`: a VMDK that names extent
  // files (which could be anywhere on the host) is refused. label names it in
  // messages ("disk1.vmdk in web.ova").
  Result<VolumeInfo> ImportVolumeSlice(const std::string& pool, const std::string& name, const std::string& src,
                                       uint64_t offset, uint64_t length, const std::string& format,
                                       const std::string& label, const ProgressFn& progress,
                                       const std::atomic<bool>* cancel);
  // A new qcow2 volume holding a copy of another's data (of its internal
  // snapshot when one is named: the source may then be in use by a running VM).
  Result<VolumeInfo> CopyVolume(const std::string& src_pool, const std::string& src, const std::string& pool,
                                const std::string& name, const std::string& snapshot, const ProgressFn& progress,
                                const std::atomic<bool>* cancel);
  // A new qcow2 volume beside base that is an overlay of it (a linked clone's
  // disk): it holds only what is written to it, reads the rest from base, which
  // must never change after.
  Result<VolumeInfo> CreateLinkedVolume(const std::string& pool, const std::string& base, const std::string& name);
  // Checks an image before a task is started for it (fast, no conversion).
  Result<ImageInfo> CheckImportImage(const std::string& src);

  // The canonical path of a user-supplied file, if it lies in an allowed directory.
  Result<std::string> CheckOutsidePath(const std::string& what, const std::string& path) const;
  const std::vector<std::string>& allowed_dirs() const { return allowed_dirs_; }

 private:
  Result<VolumeInfo> FindVolume(const PoolInfo& pool, const std::string& name, bool inspect = true);
  Status CheckNewVolume(const PoolInfo& pool, const std::string& name) REQUIRES(mu_);
  // Makes the new qcow2 volume name of pool p: make writes it at the path it is
  // given (a .creating name the next start removes), which is then renamed.
  Result<VolumeInfo> MakeQcow2Volume(const PoolInfo& p, const std::string& name,
                                     const std::function<Status(const std::string& tmp)>& make);
  // Converts src into the new qcow2 volume name of pool p (see ConvertImage).
  Result<VolumeInfo> ConvertInto(const PoolInfo& p, const std::string& name, const std::string& src,
                                 const std::string& src_format, const ProgressFn& progress,
                                 const std::atomic<bool>* cancel, const std::string& snapshot = "");

  // The key of pool name: its shared record when there is one, else local.
  Result<std::string> PoolKey(const std::string& name);

  Store& store_;
  const std::string local_prefix_;
  std::vector<std::string> allowed_dirs_;
  Mutex mu_;  // serializes volume creation (name checks and file creation)
};

}  // namespace pampa
