#include "qemu/cgroups.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

TEST(CpuListTest, ParsesNumbersAndRanges) {
  EXPECT_EQ(*ParseCpuList("0"), std::vector<int>({0}));
  EXPECT_EQ(*ParseCpuList("0-1,3"), std::vector<int>({0, 1, 3}));
  EXPECT_EQ(*ParseCpuList("3,1-2,2"), std::vector<int>({1, 2, 3}));
}

TEST(CpuListTest, RefusesWhatIsMalformed) {
  for (const char* bad : {"", ",", "0,", ",0", "1-0", "a", "0-", "-1", "0--2", "0 1", "12345", "0,,1"}) {
    auto r = ParseCpuList(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("0-1,3"), std::string::npos) << r.status().message();
    }
  }
}

TEST(CpuListTest, ChecksTheHostHasTheCpus) {
  EXPECT_TRUE(CheckCpuList("0").ok());
  auto st = CheckCpuList("0,4095");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no CPU 4095"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace pampa
