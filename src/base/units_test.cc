#include "base/units.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

TEST(ParseSize, UnitsAreBinary) {
  EXPECT_EQ(*ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseSize("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseSize("4096"), 4096ull);
  EXPECT_EQ(*ParseSize("1t"), 1ull << 40);
}

TEST(ParseSize, RejectsGarbageWithAHint) {
  for (const char* bad : {"", "G", "12X", "-1G", "1..2G", "0", "99999T"}) {
    auto r = ParseSize(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalid);
  }
  EXPECT_NE(ParseSize("12X").status().message().find("e.g. 512M"), std::string::npos);
}

TEST(ValidateName, FollowsTheRule) {
  EXPECT_TRUE(ValidateName("vm", "web-01").ok());
  EXPECT_TRUE(ValidateName("vm", "0a").ok());
  EXPECT_TRUE(ValidateName("vm", std::string(63, 'a')).ok());
  EXPECT_FALSE(ValidateName("vm", std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateName("vm", "-web").ok());
  EXPECT_FALSE(ValidateName("vm", "Web").ok());
  EXPECT_FALSE(ValidateName("vm", "a/b").ok());
  EXPECT_FALSE(ValidateName("vm", "a b").ok());
  EXPECT_FALSE(ValidateName("vm", "").ok());
  EXPECT_NE(ValidateName("vm", "A").message().find("invalid vm name 'A'"), std::string::npos);
}

}  // namespace
}  // namespace pampa

namespace pampa {
namespace {

TEST(ParseDuration, TakesSecondsMinutesHoursDaysWeeksAndRefusesBareNumbers) {
  EXPECT_EQ(*ParseDuration("90s"), std::chrono::seconds(90));
  EXPECT_EQ(*ParseDuration("10m"), std::chrono::seconds(600));
  EXPECT_EQ(*ParseDuration("2h"), std::chrono::seconds(7200));
  EXPECT_EQ(*ParseDuration("7d"), std::chrono::seconds(7 * 86400));
  EXPECT_EQ(*ParseDuration("2w"), std::chrono::seconds(14 * 86400));
  for (const char* bad : {"", "10", "m", "1.5m", "10y", "-5s", "99999999s"}) {
    auto r = ParseDuration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("e.g. 90s"), std::string::npos) << r.status().message();
  }
  EXPECT_NE(ParseDuration("10").status().message().find("needs a unit"), std::string::npos);
}

// `--size 100` once made a 100-byte volume: a disk size needs its unit.
TEST(ParseDiskSize, ABareNumberIsRefusedWithAHint) {
  auto r = ParseDiskSize("100");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "size '100' has no unit: write 100G or 100M (or 100B if you mean bytes)");
  EXPECT_EQ(*ParseDiskSize("100B"), 100u);
  EXPECT_EQ(*ParseDiskSize("10G"), 10ull << 30);
}

TEST(ParseNewDiskSize, GrowsToOrByAndNeverShrinks) {
  EXPECT_EQ(*ParseNewDiskSize("2G", 1ull << 30), 2ull << 30);
  EXPECT_EQ(*ParseNewDiskSize("+512M", 1ull << 30), (1ull << 30) + (512ull << 20));
  EXPECT_EQ(*ParseNewDiskSize("1G", 1ull << 30), 1ull << 30);
  auto shrink = ParseNewDiskSize("512M", 1ull << 30);
  ASSERT_FALSE(shrink.ok());
  EXPECT_EQ(shrink.status().message(),
            "the disk is 1.0 GiB; shrinking it to 512.0 MiB would destroy data, so only growing is allowed (+SIZE "
            "grows by SIZE)");
  EXPECT_FALSE(ParseNewDiskSize("+5", 1ull << 30).ok());
}

}  // namespace
}  // namespace pampa
