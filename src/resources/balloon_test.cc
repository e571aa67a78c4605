#include "resources/balloon.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

BalloonPolicy Policy(uint64_t reserve_mib) {
  BalloonPolicy p;
  p.reserve = reserve_mib * kMiB;
  p.floor = 256 * kMiB;
  return p;
}

BalloonVm Vm(const std::string& name, uint64_t actual_mib, std::optional<uint64_t> available_mib) {
  BalloonVm vm{name, 96 * kMiB, 512 * kMiB, actual_mib * kMiB, std::nullopt};
  if (available_mib) vm.available = *available_mib * kMiB;
  return vm;
}

TEST(BalloonTest, NothingMovesWhileTheHostHasItsReserve) {
  auto moves = PlanBalloons(8192 * kMiB, Policy(1024), {Vm("idle", 512, 450)});
  EXPECT_TRUE(moves.empty());
}

TEST(BalloonTest, TakesFromTheIdlestGuestFirstWhenTheHostIsShort) {
  // 200 MiB short: the idler guest gives, down to what it uses plus headroom.
  auto moves = PlanBalloons(824 * kMiB, Policy(1024), {Vm("busy", 512, 100), Vm("idle", 512, 450)});
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].name, "idle");
  EXPECT_EQ(moves[0].target, (512 - 200) * kMiB);
  EXPECT_NE(moves[0].reason.find("reserve"), std::string::npos);
}

TEST(BalloonTest, NeverBelowTheMinimumNorWhatTheGuestUses) {
  // Far short: the guest keeps its minimum (96 MiB), here above used + headroom.
  auto moves = PlanBalloons(0, Policy(1 << 20), {Vm("idle", 128, 110)});
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].target, 96 * kMiB);
  // A guest using most of its memory keeps it.
  EXPECT_TRUE(PlanBalloons(0, Policy(1 << 20), {Vm("full", 512, 40)}).empty());
}

TEST(BalloonTest, MovesAtMostAStepPerRound) {
  BalloonVm big{"big", 96 * kMiB, 4096 * kMiB, 4096 * kMiB, 4000 * kMiB};
  auto moves = PlanBalloons(0, Policy(1 << 20), {big});
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].target, (4096 - 256) * kMiB);
}

TEST(BalloonTest, GivesToAShortGuestEvenUnderTheReserveButNotUnderTheFloor) {
  auto moves = PlanBalloons(2048 * kMiB, Policy(1 << 20), {Vm("short", 128, 10)});
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_GT(moves[0].target, 128 * kMiB);
  EXPECT_LE(moves[0].target, 512 * kMiB);
  EXPECT_NE(moves[0].reason.find("given"), std::string::npos);
  // The host at its floor gives nothing.
  EXPECT_TRUE(PlanBalloons(256 * kMiB, Policy(1 << 20), {Vm("short", 128, 10)}).empty());
  // Nor does a guest at its maximum get more.
  EXPECT_TRUE(PlanBalloons(8192 * kMiB, Policy(1024), {Vm("max", 512, 10)}).empty());
}

TEST(BalloonTest, AGuestWithoutStatisticsIsLeftAlone) {
  EXPECT_TRUE(PlanBalloons(0, Policy(1 << 20), {Vm("silent", 512, std::nullopt)}).empty());
}

}  // namespace
}  // namespace pampa
