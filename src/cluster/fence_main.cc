// pampa-fence: the fencing agent (see fence_agent.h). One thread, one poll
// loop, no store and no network: it only counts to its deadline and kills.
//
//   pampa-fence --socket RUN_DIR/fence.sock
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/fs.h"
#include "base/log.h"
#include "cluster/fence_agent.h"

namespace pampa {
namespace {

// With no pampad connected and nothing to guard for this long, the agent ends.
constexpr int64_t kIdleExitMs = 10 * 60 * 1000;

int64_t NowMs() { return MonotonicMs(std::chrono::steady_clock::now()); }

// glibc 2.36's <sys/pidfd.h> declares these without C linkage: call the kernel directly.
int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int PidfdKill(int pidfd) { return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0)); }

struct Guarded {
  FenceTarget target;
  int pidfd = -1;
};

class Agent {
 public:
  explicit Agent(int listen_fd) : listen_fd_(listen_fd) {}

  void Run() {
    int64_t idle_since = NowMs();
    while (true) {
      int64_t now = NowMs();
      if (deadline_ >= 0 && now >= deadline_ && !guarded_.empty()) FenceAll(now);
      if (client_ < 0 && guarded_.empty()) {
        if (now - idle_since >= kIdleExitMs) return;
      } else {
        idle_since = now;
      }
      int64_t wait = 1000;
      if (deadline_ >= 0 && !guarded_.empty()) wait = std::max<int64_t>(0, std::min(wait, deadline_ - now));
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {client_, POLLIN, 0}};
      int n = poll(fds, client_ >= 0 ? 2 : 1, static_cast<int>(wait));
      if (n < 0 && errno != EINTR) {
        log::Error("poll: {}", std::strerror(errno));
        return;
      }
      if (n <= 0) continue;
      if (fds[0].revents & POLLIN) Accept();
      if (client_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) ReadClient();
    }
  }

 private:
  void Accept() {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    // One pampad at a time: the newest (a restarted one) takes over.
    if (client_ >= 0) close(client_);
    client_ = fd;
    buffer_.clear();
  }

  void ReadClient() {
    char chunk[4096];
    ssize_t n = read(client_, chunk, sizeof chunk);
    if (n <= 0) {
      // pampad went away: the deadline it gave stands.
      close(client_);
      client_ = -1;
      if (!guarded_.empty())
        log::Warn("pampad disconnected: {} HA VM(s) are killed in {} ms unless it comes back", guarded_.size(),
                  std::max<int64_t>(0, deadline_ - NowMs()));
      return;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    size_t eol;
    while ((eol = buffer_.find('\n')) != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      int64_t deadline;
      std::vector<FenceTarget> targets;
      Status st = ParseArm(line, &deadline, &targets);
      if (!st.ok()) {
        log::Warn("ignored a line from pampad: {}", st.message());
        continue;
      }
      Take(deadline, targets);
    }
    if (buffer_.size() > (1 << 20)) buffer_.clear();
  }

  // The new set: pidfds for processes not guarded yet, those no longer named let go.
  void Take(int64_t deadline, const std::vector<FenceTarget>& targets) {
    std::vector<Guarded> next;
    for (auto& t : targets) {
      int fd = -1;
      for (auto& g : guarded_) {
        if (g.pidfd >= 0 && g.target.pid == t.pid && g.target.uuid == t.uuid) std::swap(fd, g.pidfd);
      }
      if (fd < 0) fd = Open(t);
      if (fd >= 0) next.push_back({t, fd});
    }
    for (auto& g : guarded_) {
      if (g.pidfd >= 0) close(g.pidfd);
    }
    guarded_ = std::move(next);
    deadline_ = deadline;
  }

  // A pidfd for the process, once its command line shows it is that VM's
  // QEMU (checked after opening, so a reused pid cannot slip in between).
  static int Open(const FenceTarget& t) {
    int fd = PidfdOpen(t.pid);
    if (fd < 0) return -1;
    auto cmdline = ReadFile("/proc/" + std::to_string(t.pid) + "/cmdline");
    if (!cmdline.ok() || cmdline->find(t.uuid) == std::string::npos) {
      close(fd);
      return -1;
    }
    return fd;
  }

  void FenceAll(int64_t now) {
    for (auto& g : guarded_) {
      if (PidfdKill(g.pidfd) == 0) {
        log::Warn("fenced: killed QEMU pid {} (vm {}): pampad did not renew this host's lease in time ({} ms late)",
                  g.target.pid, g.target.uuid, now - deadline_);
      }
      close(g.pidfd);
    }
    guarded_.clear();
  }

  int listen_fd_;
  int client_ = -1;
  std::string buffer_;
  int64_t deadline_ = -1;
  std::vector<Guarded> guarded_;
};

int Main(int argc, char** argv) {
  std::string path;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--socket") path = argv[i + 1];
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: pampa-fence --socket PATH (started by pampad)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  // Never paged out, never the OOM killer's choice: it must act when the host is in trouble.
  (void)mlockall(MCL_CURRENT | MCL_FUTURE);
  if (int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC); fd >= 0) {
    ssize_t ignored = write(fd, "-1000", 5);
    (void)ignored;
    close(fd);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof addr.sun_path) {
    log::Error("cannot make the socket {}", path);
    return 1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  mode_t old = umask(077);
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (bound != 0) {
    // EADDRINUSE: another agent won the race to start; it serves.
    log::Info("not listening on {}: {}", path, std::strerror(errno));
    return errno == EADDRINUSE ? 0 : 1;
  }
  if (listen(fd, 4) != 0) {
    log::Error("listen {}: {}", path, std::strerror(errno));
    return 1;
  }
  log::Info("pampa-fence: listening on {}", path);
  Agent(fd).Run();
  unlink(path.c_str());
  log::Info("pampa-fence: idle, exiting");
  return 0;
}

}  // namespace
}  // namespace pampa

int main(int argc, char** argv) { return pampa::Main(argc, argv); }
