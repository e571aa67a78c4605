// QMP protocol tests against a scripted peer on a socketpair.
#include "qmp/qmp_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace pampa {
namespace {

using namespace std::chrono_literals;

// A peer that reads one line per expected command and writes scripted lines.
class ScriptedPeer {
 public:
  explicit ScriptedPeer(int fd) : fd_(fd) {}
  ~ScriptedPeer() { close(fd_); }
  void Write(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  nlohmann::json ReadCommand() {
    std::string line;
    char c;
    while (read(fd_, &c, 1) == 1 && c != '\n') line += c;
    return nlohmann::json::parse(line);
  }

 private:
  int fd_;
};

struct Pair {
  int a, b;
  Pair() {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    a = sv[0];
    b = sv[1];
  }
};

TEST(QmpClient, HandshakeThenCommandReturnsValue) {
  Pair p;
  QmpClient client(p.a);
  ScriptedPeer peer(p.b);
  std::thread t([&] {
    peer.Write(R"({"QMP": {"version": {}, "capabilities": []}})"
               "\n");
    auto cap = peer.ReadCommand();
    EXPECT_EQ(cap["execute"], "qmp_capabilities");
    peer.Write(R"({"return": {}, "id": )" + cap["id"].dump() + "}\n");
    auto q = peer.ReadCommand();
    EXPECT_EQ(q["execute"], "query-status");
    peer.Write(R"({"return": {"status": "running", "running": true}, "id": )" + q["id"].dump() + "}\n");
  });
  ASSERT_TRUE(client.Handshake(2s).ok());
  auto r = client.Execute("query-status");
  t.join();
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)["status"], "running");
}

TEST(QmpClient, EventsBetweenReplyAreQueuedAndStaleRepliesSkipped) {
  Pair p;
  QmpClient client(p.a);
  ScriptedPeer peer(p.b);
  std::thread t([&] {
    auto q = peer.ReadCommand();
    peer.Write(R"({"event": "STOP", "timestamp": {}})"
               "\n");
    peer.Write(R"({"return": {}, "id": 999})"
               "\n");
    peer.Write(R"({"return": {"ok": 1}, "id": )" + q["id"].dump() + "}\n");
    peer.Write(R"({"event": "RESUME", "timestamp": {}})"
               "\n");
  });
  auto r = client.Execute("stop");
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["ok"], 1);
  auto ev = client.TakeEvents();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["event"], "STOP");
  EXPECT_EQ(ev[1]["event"], "RESUME");
}

TEST(QmpClient, ErrorReplyBecomesInvalidWithQemuDescription) {
  Pair p;
  QmpClient client(p.a);
  ScriptedPeer peer(p.b);
  std::thread t([&] {
    auto q = peer.ReadCommand();
    peer.Write(R"({"error": {"class": "GenericError", "desc": "no such device"}, "id": )" + q["id"].dump() + "}\n");
  });
  auto r = client.Execute("device_del", {{"id", "x"}});
  t.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalid);
  EXPECT_NE(r.status().message().find("no such device"), std::string::npos);
}

TEST(QmpClient, SilentPeerTimesOut) {
  Pair p;
  QmpClient client(p.a);
  ScriptedPeer peer(p.b);
  auto start = std::chrono::steady_clock::now();
  auto r = client.Execute("query-status", nullptr, 200ms);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(QmpClient, PeerHangupIsUnavailable) {
  Pair p;
  QmpClient client(p.a);
  close(p.b);
  auto r = client.Execute("query-status", nullptr, 1s);
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(client.connected());
}

TEST(QmpClient, SplitAndCoalescedLines) {
  Pair p;
  QmpClient client(p.a);
  ScriptedPeer peer(p.b);
  std::thread t([&] {
    auto q = peer.ReadCommand();
    std::string reply = R"({"return": {"v": 2}, "id": )" + q["id"].dump() + "}\n";
    peer.Write(R"({"event": "A"})"
               "\n" +
               reply.substr(0, 5));
    std::this_thread::sleep_for(20ms);
    peer.Write(reply.substr(5));
  });
  auto r = client.Execute("x");
  t.join();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["v"], 2);
  EXPECT_EQ(client.TakeEvents().size(), 1u);
}

TEST(QmpClient, PassFdSendsTheDescriptorWithGetfd) {
  Pair p;
  QmpClient client(p.a);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  std::thread t([&] {
    // Read the whole command with one recvmsg, as QEMU does, and take the descriptor.
    char buf[512] = {};
    iovec iov{buf, sizeof buf - 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ASSERT_GT(recvmsg(p.b, &m, 0), 0);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->cmsg_type, SCM_RIGHTS);
    int got = -1;
    std::memcpy(&got, CMSG_DATA(c), sizeof got);
    auto q = nlohmann::json::parse(std::string(buf).substr(0, std::string(buf).find('\n')));
    EXPECT_EQ(q["execute"], "getfd");
    EXPECT_EQ(q["arguments"]["fdname"], "migration");
    EXPECT_EQ(write(got, "x", 1), 1);  // the pipe's write end, passed over
    close(got);
    std::string reply = R"({"return": {}, "id": )" + q["id"].dump() + "}\n";
    EXPECT_EQ(write(p.b, reply.data(), reply.size()), static_cast<ssize_t>(reply.size()));
  });
  Status st = client.PassFd("migration", pipe_fds[1], 2s);
  t.join();
  close(p.b);
  ASSERT_TRUE(st.ok()) << st.message();
  close(pipe_fds[1]);
  char c = 0;
  EXPECT_EQ(read(pipe_fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  close(pipe_fds[0]);
}

}  // namespace
}  // namespace pampa
