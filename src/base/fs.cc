#include "base/fs.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/clock.h"

namespace pampa {

void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Result<Fd> ConnectUnix(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Status::Internal("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return Status::Internal(std::string("socket: ") + std::strerror(errno));
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    int err = errno;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable("cannot connect to " + path + ": " + std::strerror(err));
    }
    // QEMU opens its sockets a few ms after exec; poll finely so a start is not delayed.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool WaitReady(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(MillisecondsLeft(deadline).count()));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("cannot read " + path + ": " + std::strerror(errno));
  struct stat st {};
  fstat(fd, &st);
  // The whole file in one go: ask the kernel to read all of it ahead (one
  // big I/O for a cold backup chunk instead of 128 KiB readahead steps), then
  // read it straight into the result. Files that report no size (/proc) are
  // read until EOF.
  if (S_ISREG(st.st_mode) && st.st_size > 0) posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  std::string out(st.st_size > 0 ? static_cast<size_t>(st.st_size) + 1 : 4096, '\0');
  size_t len = 0;
  while (true) {
    if (len == out.size()) out.resize(out.size() * 2);
    ssize_t n = read(fd, out.data() + len, out.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status err = Status::Unavailable("cannot read " + path + ": " + std::strerror(errno));
      close(fd);
      return err;
    }
    if (n == 0) break;
    len += n;
  }
  close(fd);
  out.resize(len);
  return out;
}

Result<std::string> ReadPrivateFile(const std::string& path, const std::string& what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::Invalid(what + " " + path + " is missing");
  if (st.st_mode & 0077) return Status::Invalid(what + " " + path + " is readable by others; chmod 600 it first");
  return ReadFile(path);
}

Status WriteFileAtomic(const std::string& path, const std::string& data, int mode) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::Internal("cannot write " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      unlink(tmp.c_str());
      return Status::Internal("cannot write " + tmp + ": " + std::strerror(errno));
    }
    off += n;
  }
  fchmod(fd, mode);
  fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::Internal("cannot rename to " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status MakeDirs(const std::string& path, int mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::Internal("cannot create directory " + path + ": " + ec.message());
  chmod(path.c_str(), mode);
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

Result<std::string> CanonicalPath(const std::string& path) {
  char buf[PATH_MAX];
  if (!realpath(path.c_str(), buf)) {
    return Status::NotFound("no such file: " + path + " (" + std::strerror(errno) + ")");
  }
  return std::string(buf);
}

DiskSpace SpaceOf(const std::string& dir) {
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) != 0) return {};
  return {static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize, static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize};
}

bool PathWithin(const std::string& path, const std::string& dir) {
  if (dir.empty()) return false;
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  if (path == d) return true;
  return path.size() > d.size() && path.compare(0, d.size(), d) == 0 && (path[d.size()] == '/' || d == "/");
}

std::string TailFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::streamoff size = in.tellg();
  std::streamoff start = size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  in.seekg(start);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (start > 0) {
    auto nl = s.find('\n');
    if (nl != std::string::npos) s = s.substr(nl + 1);
  }
  return s;
}

std::string LastLine(const std::string& s) {
  auto end = s.find_last_not_of("\n\r ");
  if (end == std::string::npos) return {};
  auto start = s.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return s.substr(start, end - start + 1);
}

std::string LastLogLine(const std::string& path, size_t max_bytes) { return LastLine(TailFile(path, max_bytes)); }

Status ReadAt(int fd, char* buf, size_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    ssize_t n = pread(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Unavailable("reading " + path + ": " + (n < 0 ? std::strerror(errno) : "short file"));
    buf += n;
    len -= n;
    offset += n;
  }
  return Status::Ok();
}

Status WriteAt(int fd, const char* buf, size_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    ssize_t n = pwrite(fd, buf, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Unavailable("writing " + path + ": " + (n < 0 ? std::strerror(errno) : "no space"));
    buf += n;
    len -= n;
    offset += n;
  }
  return Status::Ok();
}

Status WriteAtDirect(int direct_fd, int plain_fd, const char* buf, size_t len, uint64_t offset,
                     const std::string& path) {
  constexpr size_t kPage = 4096;
  size_t direct = 0;
  if (direct_fd >= 0 && reinterpret_cast<uintptr_t>(buf) % kPage == 0 && offset % kPage == 0) {
    direct = len & ~(kPage - 1);
    if (!WriteAt(direct_fd, buf, direct, offset, path).ok()) direct = 0;  // stricter O_DIRECT rules: all again, plainly
  }
  return WriteAt(plain_fd, buf + direct, len - direct, offset + direct, path);
}

}  // namespace pampa

namespace pampa {
uint64_t HostMemoryBytes() {
  struct sysinfo si {};
  if (sysinfo(&si) != 0) return 0;
  return static_cast<uint64_t>(si.totalram) * si.mem_unit;
}

uint64_t HostAvailableMemoryBytes() {
  auto text = ReadFile("/proc/meminfo");
  if (!text.ok()) return 0;
  auto at = text->find("MemAvailable:");
  if (at == std::string::npos) return 0;
  return std::strtoull(text->c_str() + at + 13, nullptr, 10) << 10;  // kB
}
}  // namespace pampa
