// Small file helpers. Writes that must survive a crash go through WriteFileAtomic.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "base/status.h"

namespace pampa {

// An owned file descriptor, closed when it goes.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Gives the descriptor up to the caller, who closes it.
  int Release() { return std::exchange(fd_, -1); }
  void Reset();

 private:
  int fd_;
};

// Connects to a unix socket, retrying until timeout (a server that was just
// started opens its socket a moment later); the descriptor is close-on-exec.
Result<Fd> ConnectUnix(const std::string& path, std::chrono::milliseconds timeout);
// Waits until fd is ready for events (POLLIN, POLLOUT) or the deadline
// passes; false on the deadline (or a poll error).
bool WaitReady(int fd, short events, std::chrono::steady_clock::time_point deadline);

Result<std::string> ReadFile(const std::string& path);
// Reads a secret (passphrase, key): refused with a clear kInvalid when missing
// or when group or others may read it. `what` names it in messages.
Result<std::string> ReadPrivateFile(const std::string& path, const std::string& what);
// Writes to a temporary name, fsyncs, renames over `path`.
Status WriteFileAtomic(const std::string& path, const std::string& data, int mode = 0644);
Status MakeDirs(const std::string& path, int mode = 0755);
bool Exists(const std::string& path);
// The canonical absolute path of an existing file (symlinks resolved).
Result<std::string> CanonicalPath(const std::string& path);
// True when canonical `path` equals `dir` or lies below it.
bool PathWithin(const std::string& path, const std::string& dir);
// The size of the file system holding `dir`, and what an unprivileged writer
// may still use of it (zeros when it cannot be asked).
struct DiskSpace {
  uint64_t capacity = 0;
  uint64_t available = 0;
};
DiskSpace SpaceOf(const std::string& dir);
// pread()/pwrite() of exactly len bytes at offset (retrying short transfers);
// `path` names the file in errors. A read past the end is an error.
Status ReadAt(int fd, char* buf, size_t len, uint64_t offset, const std::string& path);
Status WriteAt(int fd, const char* buf, size_t len, uint64_t offset, const std::string& path);
// WriteAt past the page cache: when buf and offset are page-aligned, the whole
// pages go through direct_fd (an O_DIRECT descriptor of the same file, or -1);
// the partial last page, or everything when the file system refuses the direct
// write, goes through plain_fd.
Status WriteAtDirect(int direct_fd, int plain_fd, const char* buf, size_t len, uint64_t offset,
                     const std::string& path);
// The last `max_bytes` of a file, starting at a line boundary.
std::string TailFile(const std::string& path, size_t max_bytes);
// The last non-empty line of text, without its line end ("" when none): what a
// command said last on stderr.
std::string LastLine(const std::string& text);
// The last non-empty line within the last `max_bytes` of a log ("" when none):
// what a process said before it died.
std::string LastLogLine(const std::string& path, size_t max_bytes);

}  // namespace pampa

namespace pampa {
// The host's physical memory in bytes (sysinfo), 0 when unknown.
uint64_t HostMemoryBytes();
// Memory the host can give without swapping (MemAvailable in /proc/meminfo), 0 when unknown.
uint64_t HostAvailableMemoryBytes();
}  // namespace pampa
