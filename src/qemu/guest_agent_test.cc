#include "qemu/guest_agent.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace pampa {
namespace {

using namespace std::chrono_literals;

TEST(AgentChannel, ASecondClaimantWaitsItsWaitThenHearsWhoHoldsTheChannel) {
  AgentChannel channel;
  auto first = channel.Claim("a backup's filesystem freeze", 0ms);
  ASSERT_TRUE(first.ok());
  auto t0 = std::chrono::steady_clock::now();
  auto second = channel.Claim("a command (vm exec)", 50ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_EQ(second.status().code(), ErrorCode::kBusy);
  EXPECT_NE(second.status().message().find("a backup's filesystem freeze"), std::string::npos);
}

TEST(AgentChannel, AReleasedChannelGoesToTheNextClaimant) {
  AgentChannel channel;
  auto first = channel.Claim("a ping", 0ms);
  ASSERT_TRUE(first.ok());
  std::thread releaser([&] {
    std::this_thread::sleep_for(20ms);
    first->Release();
  });
  auto second = channel.Claim("a reboot", 5s);
  releaser.join();
  ASSERT_TRUE(second.ok()) << second.status().message();
  {
    auto moved = std::move(*second);  // the lease moves; the channel is freed once
  }
  EXPECT_TRUE(channel.Claim("a ping", 0ms).ok());
}

}  // namespace
}  // namespace pampa
