// A backup's disks as a read-only NBD export, read from the repository on
// demand: what a live restore boots from while its disks are being copied.
//
// A small NBD server (fixed newstyle handshake, simple replies; the protocol is
// https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md) on a unix
// socket serves each disk of a manifest as export "disk0", "disk1", ...
// Each read is answered from the chunks it covers, fetched once and kept in a
// bounded cache. Reads asked for by a client come first; after each, the next
// few chunks are read ahead on idle workers, so that a sequential reader (the
// background copy) finds them ready without delaying anyone's demand reads.
// A chunk that cannot be read (missing, damaged, store down) is an EIO reply
// for that request, counted in stats(), never data that is not the backup's.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backup/manifest.h"
#include "backup/repository.h"
#include "base/fs.h"
#include "base/mutex.h"

namespace pampa {

struct NbdExportOptions {
  int workers = 8;    // threads fetching chunks (an SFTP store has 8 connections)
  int readahead = 8;  // chunks read ahead of each demand read
  uint64_t cache_bytes = 256ull << 20;
};

class BackupNbdServer {
 public:
  // Listens on `socket` (replacing a stale socket file) and serves until destroyed.
  static Result<std::unique_ptr<BackupNbdServer>> Start(std::shared_ptr<Repository> repo, const Manifest& manifest,
                                                        const std::string& socket, NbdExportOptions options = {});
  ~BackupNbdServer();
  BackupNbdServer(const BackupNbdServer&) = delete;
  BackupNbdServer& operator=(const BackupNbdServer&) = delete;

  static std::string ExportName(size_t disk) { return "disk" + std::to_string(disk); }

  struct Stats {
    uint64_t requests = 0, bytes_served = 0, chunks_fetched = 0, errors = 0;
    std::string last_error;  // the last chunk that could not be read, and why
  };
  Stats stats();

 private:
  struct Connection;
  struct Slot;
  struct Job;
  BackupNbdServer(std::shared_ptr<Repository> repo, const Manifest& manifest, NbdExportOptions options);
  void AcceptLoop();
  void Serve(const std::shared_ptr<Connection>& c);
  // The handshake; the chosen export's disk index, or nullopt to hang up.
  std::optional<size_t> Negotiate(Connection& c);
  void WorkerLoop();
  // Copies [offset, offset+len) of a disk into out (len bytes), chunk by chunk.
  Status ReadDisk(size_t disk, uint64_t offset, uint32_t len, char* out);
  // A chunk's plaintext, from the cache or fetched (once, however many ask).
  Result<std::shared_ptr<const std::string>> Chunk(size_t disk, size_t index);
  void ReadAhead(size_t disk, size_t after);
  void Evict() REQUIRES(mu_);

  std::shared_ptr<Repository> repo_;
  std::vector<ManifestDisk> disks_;
  uint64_t chunk_size_;
  NbdExportOptions options_;
  Fd listen_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  Mutex mu_;
  std::condition_variable work_;     // a job was queued, or stopping
  std::condition_variable fetched_;  // a slot became ready
  std::deque<std::shared_ptr<Job>> demand_ GUARDED_BY(mu_);
  std::deque<std::pair<size_t, size_t>> ahead_ GUARDED_BY(mu_);  // (disk, chunk) to read ahead
  std::map<std::pair<size_t, size_t>, std::shared_ptr<Slot>> cache_ GUARDED_BY(mu_);
  std::list<std::pair<size_t, size_t>> lru_ GUARDED_BY(mu_);  // ready slots, least recently used first
  uint64_t cached_bytes_ GUARDED_BY(mu_) = 0;
  int ahead_busy_ GUARDED_BY(mu_) = 0;  // workers reading ahead now
  std::vector<std::shared_ptr<Connection>> connections_ GUARDED_BY(mu_);
  std::vector<std::thread> threads_ GUARDED_BY(mu_);  // workers and connection threads
  Stats stats_ GUARDED_BY(mu_);
};

}  // namespace pampa
