#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/fs.h"

extern char** environ;

namespace pampa {
namespace {

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// Closes every descriptor above stderr (async-signal-safe: runs between fork
// and exec). A detached child must not hold pampad's listening sockets, its
// state file or another VM's files: it outlives pampad.
void CloseFrom3() {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
  // Kernels before 5.9: close one by one up to the descriptor limit.
  long max = sysconf(_SC_OPEN_MAX);
  for (long fd = 3; fd < (max > 0 ? max : 65536); ++fd) close(static_cast<int>(fd));
}

}  // namespace

Result<RunResult> Run(const std::vector<std::string>& argv, const RunOptions& opts) {
  if (argv.empty()) return Status::Internal("Run: empty argv");
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    return Status::Internal(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  // Children get stdin/stdout/stderr and nothing else, even a descriptor some
  // library opened without O_CLOEXEC (libssh, Asio's accepted sockets).
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  auto cargv = CArgv(argv);
  int rc = posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    return Status::Unavailable("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  // Feed stdin (small inputs only: config files), then close it.
  if (!opts.stdin_data.empty()) {
    size_t off = 0;
    while (off < opts.stdin_data.size()) {
      ssize_t n = write(in[1], opts.stdin_data.data() + off, opts.stdin_data.size() - off);
      if (n <= 0) break;
      off += n;
    }
  }
  close(in[1]);

  RunResult result;
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  bool out_open = true, err_open = true, killed = false, cancelled = false;
  char buf[8192];
  while (out_open || err_open) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int n = poll(fds, 2, 100);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      std::string chunk(buf, r);
      (i == 0 ? result.out : result.err) += chunk;
      if (opts.on_output) opts.on_output(chunk);
    }
    if (!killed && opts.cancel && opts.cancel->load()) {
      kill(pid, SIGKILL);
      killed = cancelled = true;
    }
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      killed = true;
    }
  }
  close(out[0]);
  close(err[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (cancelled) return Status::Cancelled(argv[0] + " was cancelled");
  if (killed) return Status::Unavailable(argv[0] + " did not finish in time and was killed");
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  return result;
}

Result<RunResult> RunChecked(const std::vector<std::string>& argv, const RunOptions& opts) {
  auto r = Run(argv, opts);
  if (!r.ok()) return r;
  if (r->exit_code != 0) {
    std::string why = LastLine(r->err);
    if (why.empty()) why = LastLine(r->out);
    return Status::Invalid(argv[0] + " failed (exit " + std::to_string(r->exit_code) + "): " + why);
  }
  return r;
}

Result<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return Status::Internal("SpawnDetached: empty argv");
  Fd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (log.get() < 0) return Status::Internal("cannot open " + log_path + ": " + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, log.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, log.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, pipe;
  sigemptyset(&none);
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &pipe);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  auto cargv = CArgv(argv);
  // Double fork, without a fork: the intermediate child (in a new session,
  // so that what it starts is no session leader and outlives us) shares this
  // process's memory (vfork) and starts the real process with posix_spawn
  // (another vfork). A fork would copy the daemon's page tables and make
  // every page it writes afterwards fault once more: 15,000 faults, a
  // quarter of pampad's CPU in an incremental backup over SFTP on these
  // machines. The intermediate only makes system calls and writes the two
  // results below, which this thread reads once it has exited.
  volatile pid_t child = -1;
  volatile int spawn_error = 0;
  // No handler of ours may run in the intermediate, on our memory.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t mid = vfork();
  if (mid == 0) {
    setsid();
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), environ);
    if (rc == 0) child = pid;
    spawn_error = rc;
    _exit(0);
  }
  int vfork_error = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (mid < 0) return Status::Internal(std::string("vfork: ") + std::strerror(vfork_error));
  int st;
  while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {
  }
  if (spawn_error != 0) return Status::Internal("could not start " + argv[0] + ": " + std::strerror(spawn_error));
  if (child <= 0) return Status::Internal("could not start " + argv[0]);
  return static_cast<pid_t>(child);
}

Result<pid_t> SpawnTied(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return Status::Internal("SpawnTied: empty argv");
  Fd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (log.get() < 0) return Status::Internal("cannot open " + log_path + ": " + std::strerror(errno));
  auto cargv = CArgv(argv);
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) return Status::Internal(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent died before the line above
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log.get(), 1);
    dup2(log.get(), 2);
    CloseFrom3();
    execvp(cargv[0], cargv.data());
    dprintf(2, "exec %s: %s\n", cargv[0], std::strerror(errno));
    _exit(127);
  }
  return child;
}

bool ProcessAlive(pid_t pid, const std::string& marker) {
  if (pid <= 0) return false;
  std::string base = "/proc/" + std::to_string(pid);
  std::ifstream stat(base + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= line.size()) return false;
  char state = line[close_paren + 2];
  if (state == 'Z' || state == 'X') {
    // Reap it if it is ours; harmless otherwise.
    waitpid(pid, nullptr, WNOHANG);
    return false;
  }
  std::ifstream cmd(base + "/cmdline", std::ios::binary);
  std::stringstream ss;
  ss << cmd.rdbuf();
  std::string c = ss.str();
  for (auto& ch : c) {
    if (ch == '\0') ch = ' ';
  }
  return marker.empty() || c.find(marker) != std::string::npos;
}

void StopProcess(pid_t pid, const std::string& marker, std::chrono::milliseconds grace) {
  if (!ProcessAlive(pid, marker)) return;
  kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (ProcessAlive(pid, marker) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!ProcessAlive(pid, marker)) return;
  kill(pid, SIGKILL);
  // Gone when this returns (its files and locks released), or after 2 s more.
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (ProcessAlive(pid, marker) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool HaveExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

}  // namespace pampa
