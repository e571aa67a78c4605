// Moving one disk between an image and a repository: the backup read (only
// dirty chunks when a dirty bitmap is given) and the parallel restore write.
// Backups learn allocation and dirtiness from an NBD export (QEMU's own server
// for a running VM's fleecing view, qemu-nbd for a stopped VM's image) and read
// the data from it, or straight from the image file when nothing writes it.
// Restores write straight into a new, preallocated image file.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "base/fs.h"
#include "storage/image.h"

namespace pampa {

struct NbdTarget {
  std::string socket;       // unix socket of the NBD server
  std::string export_name;  // export to open
};

// Where a backup reads a disk.
struct DiskSource {
  NbdTarget nbd;  // block status (allocation, dirty bitmap); the data too when `file` is empty
  // Optional: the image file and its layout (MapImage), read directly. Only
  // for an image no one writes meanwhile (a stopped VM's).
  std::string file;
  std::vector<FileExtent> extents;
};

// A new image file the restore writes directly: every guest byte must have a
// file offset (a raw file, or a qcow2 created with preallocation).
struct RestoreTarget {
  std::string path;
  std::vector<FileExtent> extents;
};

// How a TargetWriter's writes meet the page cache.
enum class WriteCache {
  // Page-aligned writes skip it (O_DIRECT): no copy into it, which was half
  // the CPU of a restore, whose many workers keep the disk busy.
  kBypass,
  // Through it, made durable by Sync: the kernel gathers and queues the
  // writes, 25% faster for one writer whose CPU goes elsewhere (an import
  // hashing every block: docs/design.md, imports).
  kPageCache,
};

// A RestoreTarget opened for writing guest bytes straight into its file (a
// backup restore, a disk image import). Move-only; WriteData may be called
// from several threads at once for different bytes.
class TargetWriter {
 public:
  // kInternal when the target does not lay out every byte of [0, size) in its file.
  static Result<TargetWriter> Open(const RestoreTarget& target, uint64_t size, WriteCache cache = WriteCache::kBypass);
  // Writes buf, the guest bytes [base, base + len), at their file offsets.
  // All-zero 64 KiB blocks are skipped (the target reads as zeros there).
  // With buf page-aligned and kBypass, whole pages go past the page cache.
  Status WriteData(const char* buf, uint64_t len, uint64_t base) const;
  // The same, zeros too: for a target that already holds other data there.
  Status WriteAll(const char* buf, uint64_t len, uint64_t base) const;
  // Allocates the file space of the guest bytes [base, base + len) ahead of
  // their writes (unwritten, reading as zeros). Direct writes into a hole
  // each allocate under the file's exclusive lock on ext4, one at a time;
  // into allocated space many go at once. A file system without fallocate
  // is left as it is.
  Status Reserve(uint64_t base, uint64_t len) const;
  // Makes what was written durable.
  Status Sync() const;
  const std::string& path() const { return path_; }

 private:
  TargetWriter() = default;
  // len bytes at offset in the file.
  Status WritePiece(const char* buf, uint64_t len, uint64_t offset) const;
  std::string path_;
  std::vector<FileExtent> extents_;
  Fd plain_, direct_;
};

struct StageTimes {
  double read = 0, seal = 0, upload = 0;  // seconds spent in each stage, summed over threads
};

// A stage's throughput as reported: bytes through it per second spent in it.
inline double MibPerSecond(uint64_t bytes, double seconds) { return seconds > 0 ? bytes / seconds / (1 << 20) : 0.0; }

struct DiskBackupResult {
  uint64_t size = 0;
  std::vector<std::string> chunks;  // one id per chunk_size block, kZeroChunk for holes
  uint64_t bytes_read = 0, bytes_uploaded = 0, chunks_uploaded = 0;
  bool incremental = false;
  StageTimes times;
};

struct DiskBackupOptions {
  // Name of a dirty bitmap exported with the disk; empty for a full read.
  std::string bitmap;
  // The previous backup's chunk list for this disk: chunks not dirty are taken from it.
  const std::vector<std::string>* previous = nullptr;
  // Each reads, seals and uploads its own chunks; more than the cores, so that
  // one waiting on its upload (fsync, network) leaves the CPU to the others.
  int workers = 4;
  // Called with (bytes done, bytes to do, stage times so far) as work progresses; may be empty.
  std::function<void(uint64_t, uint64_t, const StageTimes&)> progress;
  const std::atomic<bool>* cancel = nullptr;
  // Called once allocation and dirtiness are known, before any data is read:
  // from then on the NBD server serves only data reads (none when the source
  // has a file). May be empty.
  std::function<void()> block_status_read;
};

Result<DiskBackupResult> BackupDisk(const DiskSource& source, Repository& repo, const DiskBackupOptions& options);

// Writes the chunks into a target of at least size bytes that reads as zeros
// (zero chunks and all-zero 64 KiB blocks are skipped, keeping it sparse).
// Fetches, opens and writes with `workers` threads (O_DIRECT where the file
// system allows), then syncs the file once.
// Adds the seconds spent per stage to *times (read = fetching objects, seal =
// decrypting and decompressing, upload = writing the image) when given.
Status RestoreDisk(Repository& repo, const std::vector<std::string>& chunks, uint64_t size, const RestoreTarget& target,
                   int workers, const std::function<void(uint64_t, uint64_t)>& progress,
                   const std::atomic<bool>* cancel, StageTimes* times = nullptr);

}  // namespace pampa
