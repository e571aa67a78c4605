// Moving one disk between an NBD export and a repository: the backup read
// (only dirty chunks when a dirty bitmap is given) and the parallel restore
// write. The NBD side is QEMU's own server (fleecing export of a running VM)
// or qemu-nbd (a stopped VM's image, or a restore target).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "backup/repository.h"

namespace pampa {

struct NbdTarget {
  std::string socket;       // unix socket of the NBD server
  std::string export_name;  // export to open
};

struct StageTimes {
  double read = 0, seal = 0, upload = 0;  // seconds spent in each stage, summed over threads
};

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
  int workers = 2;
  // Called with (bytes done, bytes to do) as work progresses; may be empty.
  std::function<void(uint64_t, uint64_t)> progress;
  const std::atomic<bool>* cancel = nullptr;
};

Result<DiskBackupResult> BackupDisk(const NbdTarget& source, Repository& repo, const DiskBackupOptions& options);

// Writes the chunks to a target of at least size bytes (holes are skipped:
// the target must read as zeros there, as a new qcow2 does). Fetches and
// writes with `workers` threads, each with its own NBD connection.
Status RestoreDisk(Repository& repo, const std::vector<std::string>& chunks, uint64_t size, const NbdTarget& target,
                   int workers, const std::function<void(uint64_t, uint64_t)>& progress,
                   const std::atomic<bool>* cancel);

}  // namespace pampa
