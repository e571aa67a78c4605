// Guest agent sessions against a scripted agent on a unix socket.
#include "qemu/guest_agent.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace pampa {
namespace {

using namespace std::chrono_literals;

// Listens on a fresh socket path; Accept() takes one connection.
class FakeAgent {
 public:
  FakeAgent() {
    char dir[] = "/tmp/pampa-qga-XXXXXX";
    path_ = std::string(mkdtemp(dir)) + "/qga.sock";
    listen_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_, 4), 0);
  }
  ~FakeAgent() {
    if (conn_ >= 0) close(conn_);
    close(listen_);
    unlink(path_.c_str());
    rmdir(path_.substr(0, path_.rfind('/')).c_str());
  }
  const std::string& path() const { return path_; }
  void Accept() { conn_ = accept(listen_, nullptr, nullptr); }
  // Whether a second client is waiting to be accepted.
  bool AnotherConnection() {
    fcntl(listen_, F_SETFL, O_NONBLOCK);
    int fd = accept(listen_, nullptr, nullptr);
    if (fd >= 0) close(fd);
    return fd >= 0;
  }
  nlohmann::json Read() {
    std::string line;
    char c;
    while (read(conn_, &c, 1) == 1 && c != '\n') line += c;
    return nlohmann::json::parse(line);
  }
  void Reply(const nlohmann::json& j) {
    std::string s = j.dump() + "\n";
    ASSERT_EQ(write(conn_, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }

 private:
  std::string path_;
  int listen_ = -1, conn_ = -1;
};

TEST(GuestAgentSession, SynchronisesOnceThenCarriesSeveralCommands) {
  FakeAgent agent;
  std::thread t([&] {
    agent.Accept();
    auto sync = agent.Read();
    EXPECT_EQ(sync["execute"], "guest-sync-delimited");
    agent.Reply({{"return", sync["arguments"]["id"]}});
    EXPECT_EQ(agent.Read()["execute"], "guest-fsfreeze-freeze");
    agent.Reply({{"return", 1}});
    EXPECT_EQ(agent.Read()["execute"], "guest-fsfreeze-thaw");
    agent.Reply({{"return", 1}});
  });
  auto session = GuestAgentSession::Open(agent.path(), 2s);
  ASSERT_TRUE(session.ok()) << session.status().message();
  auto frozen = (*session)->Call("guest-fsfreeze-freeze", nullptr, 2s);
  auto thawed = (*session)->Call("guest-fsfreeze-thaw", nullptr, 2s);
  t.join();
  ASSERT_TRUE(frozen.ok() && thawed.ok());
  EXPECT_EQ(*thawed, 1);
  EXPECT_FALSE(agent.AnotherConnection());  // the thaw did not need a connection of its own
}

TEST(GuestAgentSession, SilentAgentIsUnavailableInTime) {
  FakeAgent agent;
  std::thread t([&] {
    agent.Accept();
    agent.Read();  // the sync, never answered
  });
  auto start = std::chrono::steady_clock::now();
  auto session = GuestAgentSession::Open(agent.path(), 300ms);
  t.join();
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(session.status().message().find("does not answer"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(GuestAgentSession, RefusedCommandSaysWhy) {
  FakeAgent agent;
  std::thread t([&] {
    agent.Accept();
    auto sync = agent.Read();
    agent.Reply({{"return", sync["arguments"]["id"]}});
    agent.Read();
    agent.Reply({{"error", {{"class", "GenericError"}, {"desc", "fsfreeze is disabled"}}}});
  });
  auto session = GuestAgentSession::Open(agent.path(), 2s);
  ASSERT_TRUE(session.ok());
  auto r = (*session)->Call("guest-fsfreeze-freeze", nullptr, 2s);
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fsfreeze is disabled"), std::string::npos);
}

}  // namespace
}  // namespace pampa
