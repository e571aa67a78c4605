#include "resources/rrd.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace pampa {
namespace {

class RrdTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/rrd-" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/vm.rrd";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Rrd> Open(std::vector<std::string> names = {"a", "b"}) {
    auto rrd = Rrd::Open(path_, std::move(names));
    EXPECT_TRUE(rrd.ok()) << rrd.status().message();
    return rrd.ok() ? std::move(*rrd) : nullptr;
  }
  std::string dir_, path_;
};

constexpr int64_t kT0 = 1'800'000'000;  // a multiple of 1800

TEST_F(RrdTest, FileHasFixedSizeAndPointsReadBack) {
  auto rrd = Open();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(rrd->Add(kT0 + 5 * i + 1, {double(i), 2.0 * i}).ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), Rrd::FileSize(2));
  auto s = rrd->Read(kT0, kT0 + 3600);
  EXPECT_EQ(s.step_s, 5);
  ASSERT_EQ(s.times.size(), 10u);
  EXPECT_EQ(s.times.front(), kT0);
  EXPECT_EQ(s.times.back(), kT0 + 45);
  EXPECT_EQ(s.values[0][3], 3.0);
  EXPECT_EQ(s.values[1][9], 18.0);
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(rrd->Add(kT0 + 50 + 5 * i, {1, 1}).ok());
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), Rrd::FileSize(2));  // never grows
}

TEST_F(RrdTest, SkippedSlotsAreGapsAndOldSamplesAreIgnored) {
  auto rrd = Open();
  ASSERT_TRUE(rrd->Add(kT0, {1, 1}).ok());
  ASSERT_TRUE(rrd->Add(kT0 + 20, {5, 5}).ok());
  ASSERT_TRUE(rrd->Add(kT0 + 10, {9, 9}).ok());    // older than the last: ignored
  ASSERT_TRUE(rrd->Add(kT0 + 22, {6, 6}).ok());    // same slot: replaces
  ASSERT_TRUE(rrd->Add(kT0 + 23, {NAN, 7}).ok());  // what is unknown keeps what was there
  auto s = rrd->Read(kT0, kT0 + 100);
  ASSERT_EQ(s.times.size(), 5u);
  EXPECT_EQ(s.values[0][0], 1.0);
  EXPECT_TRUE(std::isnan(s.values[0][1]));
  EXPECT_TRUE(std::isnan(s.values[0][2]));
  EXPECT_EQ(s.values[0][4], 6.0);
  EXPECT_EQ(s.values[1][4], 7.0);
  EXPECT_FALSE(rrd->Add(kT0 + 30, {1}).ok());  // wrong count
}

TEST_F(RrdTest, CoarseArchivesHoldAverages) {
  auto rrd = Open();
  // Two hours: the minute archive is chosen for a read two hours back.
  for (int i = 0; i < 2 * 720; ++i) ASSERT_TRUE(rrd->Add(kT0 + 5 * i, {double(i % 12), NAN}).ok());
  auto s = rrd->Read(kT0, kT0 + 7200);
  EXPECT_EQ(s.step_s, 60);
  ASSERT_EQ(s.times.size(), 120u);
  EXPECT_EQ(s.times.front(), kT0);
  EXPECT_DOUBLE_EQ(s.values[0][0], 5.5);  // the mean of 0..11
  EXPECT_TRUE(std::isnan(s.values[1][0]));
  // A year back: the 30-minute archive; its last point is the average so far.
  auto y = rrd->Read(kT0 - 100 * 86400, kT0 + 7200);
  EXPECT_EQ(y.step_s, 1800);
  ASSERT_EQ(y.times.size(), 4u);
  EXPECT_DOUBLE_EQ(y.values[0][3], 5.5);
}

TEST_F(RrdTest, HistorySurvivesReopen) {
  {
    auto rrd = Open();
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(rrd->Add(kT0 + 5 * i, {double(i), 0}).ok());
  }
  auto rrd = Open();
  ASSERT_TRUE(rrd->Add(kT0 + 150, {30, 0}).ok());
  auto s = rrd->Read(kT0, kT0 + 200);
  ASSERT_EQ(s.times.size(), 31u);
  for (int i = 0; i <= 30; ++i) EXPECT_EQ(s.values[0][i], double(i));
  auto m = rrd->Read(kT0 - 7200, kT0 + 200);
  EXPECT_EQ(m.step_s, 60);
  ASSERT_FALSE(m.times.empty());
  EXPECT_DOUBLE_EQ(m.values[0][0], 5.5);  // the minute's accumulator was kept
}

TEST_F(RrdTest, OtherSeriesOrDamageIsSetAsideNotTrusted) {
  { ASSERT_TRUE(Open()->Add(kT0, {1, 2}).ok()); }
  auto other = Open({"a", "b", "c"});
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(std::filesystem::exists(path_ + ".bad"));
  EXPECT_TRUE(other->Read(kT0, kT0 + 100).times.empty());
  other.reset();
  std::filesystem::remove(path_ + ".bad");
  { std::ofstream(path_, std::ios::binary | std::ios::trunc) << "garbage"; }
  auto fresh = Open({"a", "b", "c"});
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(std::filesystem::exists(path_ + ".bad"));
  EXPECT_TRUE(fresh->Add(kT0, {1, 2, 3}).ok());
}

}  // namespace
}  // namespace pampa
