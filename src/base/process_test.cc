#include "base/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "base/fs.h"

namespace pampa {
namespace {

// Descriptors a child holds besides stdin/stdout/stderr, as `ls /proc/self/fd` sees them
// (ls's own directory descriptor is the one extra).
int ExtraDescriptors(const std::string& listing) {
  int n = 0;
  size_t pos = 0;
  while (pos < listing.size()) {
    size_t nl = listing.find('\n', pos);
    std::string line = listing.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty() && line != "0" && line != "1" && line != "2") ++n;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return n;
}

TEST(Process, RunHandsTheChildOnlyItsStdio) {
  // A descriptor opened without O_CLOEXEC, as a library might.
  int leaked = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  auto r = pampa::Run({"ls", "/proc/self/fd"});
  close(leaked);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(ExtraDescriptors(r->out), 1) << r->out;
}

TEST(Process, DetachedChildrenInheritNothing) {
  int leaked = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  auto dir = std::filesystem::temp_directory_path() / ("pampa-proc-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string log = (dir / "out").string();
  auto pid = SpawnDetached({"ls", "/proc/self/fd"}, log);
  close(leaked);
  ASSERT_TRUE(pid.ok()) << pid.status().message();
  std::string out;
  for (int i = 0; i < 100 && (out = ReadFile(log).ok() ? *ReadFile(log) : "").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(ExtraDescriptors(out), 1) << out;
}

// Not this process's child (the intermediate exits; nothing left to reap),
// in a session of its own but not its leader, and outliving the caller's
// thread; an executable that cannot start is an error naming it.
TEST(Process, DetachedChildrenAreNotOursAndNoSessionLeaders) {
  auto dir = std::filesystem::temp_directory_path() / ("pampa-proc2-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto pid = SpawnDetached({"sleep", "30"}, (dir / "log").string());
  ASSERT_TRUE(pid.ok()) << pid.status().message();
  // (its command line shows once its exec is through, a moment after the pid is known)
  bool alive = false;
  for (int i = 0; i < 200 && !(alive = ProcessAlive(*pid, "sleep")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(alive);
  EXPECT_EQ(waitpid(*pid, nullptr, WNOHANG), -1);  // ECHILD: not ours
  EXPECT_EQ(errno, ECHILD);
  pid_t sid = getsid(*pid);
  EXPECT_NE(sid, getsid(0));
  EXPECT_NE(sid, *pid);
  kill(*pid, SIGKILL);
  auto missing = SpawnDetached({"/nonexistent/pampa-no-such-binary"}, (dir / "log").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("pampa-no-such-binary"), std::string::npos) << missing.status().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pampa
