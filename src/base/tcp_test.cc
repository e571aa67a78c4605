#include "base/tcp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace pampa {
namespace {

using namespace std::chrono_literals;

TEST(Tcp, ConnectsAcceptsAndKeepsDescriptorsFromChildren) {
  uint16_t port = 0;
  auto listener = ListenTcp("127.0.0.1", 0, &port);
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  ASSERT_GT(port, 0);
  auto out = ConnectTcp("127.0.0.1", port, 2s);
  ASSERT_TRUE(out.ok()) << out.status().message();
  auto in = AcceptTcp(listener->get(), 2s);
  ASSERT_TRUE(in.ok()) << in.status().message();
  for (int fd : {listener->get(), out->get(), in->get()}) EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(fcntl(out->get(), F_GETFL) & O_NONBLOCK);  // whoever gets it blocks on it
  ASSERT_EQ(write(out->get(), "hi", 2), 2);
  char buf[2];
  ASSERT_EQ(read(in->get(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
  EXPECT_GE(TcpRoundTrip(out->get()).count(), 0);
}

TEST(Tcp, AcceptAndConnectSayWhatFailed) {
  uint16_t port = 0;
  auto listener = ListenTcp("127.0.0.1", 0, &port);
  ASSERT_TRUE(listener.ok());
  auto in = AcceptTcp(listener->get(), 50ms);
  ASSERT_FALSE(in.ok());
  EXPECT_NE(in.status().message().find("nobody connected within 50 ms"), std::string::npos);
  listener->Reset();  // nobody listens there now
  auto out = ConnectTcp("127.0.0.1", port, 1s);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("cannot connect to 127.0.0.1:"), std::string::npos) << out.status().message();
  auto bad = ConnectTcp("no-such-host.invalid", 1, 1s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot resolve host 'no-such-host.invalid'"), std::string::npos);
}

}  // namespace
}  // namespace pampa
