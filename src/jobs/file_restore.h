// File-level restore: files and directories out of a backup, without
// restoring its disks, from any file system the guest used.
//
// The host never mounts or parses a guest's file systems. A small appliance VM
// (tools/mkguest's appliance.img: Debian's kernel, busybox, lvm2, xfsprogs,
// ntfs-3g, GNU tar and find) boots with one disk of the backup attached:
//
//   repository --> BackupNbdServer (in pampad) --> QEMU appliance, the disk under a
//                  export "diskN", read-only        throwaway overlay; it mounts every
//                                                   file system read-only (tools/appliance-volumes)
//
// Listings come from GNU find in the appliance, through its guest agent; files
// leave as a GNU tar stream on a virtio-serial port of their own, whose end is
// found by reading the archive's headers (backup/tar_end.h). An appliance
// serves one (repository, backup, disk) and stays up kIdleTimeout after its
// last use, so that browsing a backup answers in a moment after the first boot.
// A pampad that stops takes its appliances with it (their export was in it);
// leftovers of a killed pampad are stopped at the next start.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backup/repos.h"
#include "base/mutex.h"
#include "qemu/accel.h"

namespace pampa {

class FileRestores {
 public:
  struct Options {
    std::string run_dir;  // appliances' sockets and logs go to RUN/file-restore/<id>
    std::string kernel, initrd;
    uint64_t memory_mib = 256;
    std::chrono::seconds idle_timeout{600};
  };
  FileRestores(Options options, AccelProbe& accel);
  // Stops every appliance.
  ~FileRestores();
  FileRestores(const FileRestores&) = delete;
  FileRestores& operator=(const FileRestores&) = delete;

  struct Source {
    std::string repo_name;
    std::shared_ptr<Repository> repository;
    std::string backup;
    size_t disk = 0;
  };

  // PATH's entries ("" or "/": the disk's file systems, as volumes "part1",
  // "VG/LV", "disk"). A file's path lists that file. Each entry: name, type
  // (file, dir, symlink, other; volume at the top), size, mode, mtime, uid,
  // gid, target (symlinks).
  Result<nlohmann::json> List(const Source& src, const std::string& path);

  using Sink = std::function<Status(std::string_view)>;
  struct Extraction {
    // Writes the paths, as one tar archive, to a sink: each path as its last
    // component with everything below it, modes, owners and times kept.
    std::function<Status(const Sink&)> write;
    uint64_t file_bytes = 0;  // the files' sizes added up: the archive is a little larger
  };
  // Checks that every path exists (kNotFound names the first that does not)
  // and measures them; the archive is written when `write` runs.
  Result<Extraction> Extract(const Source& src, const std::vector<std::string>& paths);

  // The appliances running now (for `host check` and tests).
  size_t Running();
  // Ok when the appliance's kernel and initramfs are there; else kUnavailable saying what to do.
  Status ApplianceReady() const;

 private:
  struct Volume {
    std::string name, fs, state;
    uint64_t size = 0;
  };
  struct Session;
  // A started appliance for src, booting one when there is none; it counts as
  // in use (the reaper leaves it) while any copy of the handle lives.
  Result<std::shared_ptr<Session>> Acquire(const Source& src);
  void Release(const std::shared_ptr<Session>& s);
  Status Boot(Session& s, const Source& src);
  void Stop(Session& s);
  // Stops s and forgets it (after a broken stream: its tar may still be writing).
  void Discard(const std::shared_ptr<Session>& s);
  // The appliance's path for a path in the backup, checked against its volumes.
  Result<std::string> GuestPath(const Session& s, const std::string& path) const;
  Result<std::vector<std::string>> Find(Session& s, const std::vector<std::string>& args);
  Status StreamTar(const std::shared_ptr<Session>& s, const std::vector<std::string>& tar_args, const Sink& sink);
  void ReapLoop();
  void CleanLeftovers();

  Options options_;
  AccelProbe& accel_;
  Mutex mu_;  // guards the session table; never held across a boot, an exec or a stream
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Session>> sessions_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  int next_id_ GUARDED_BY(mu_) = 0;
  static constexpr int kMaxStreams = 4;  // extractions running at once (of the API's 8 workers)
  int streams_ GUARDED_BY(mu_) = 0;
  std::thread reaper_;
};

}  // namespace pampa
