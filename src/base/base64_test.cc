#include "base/base64.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

TEST(Base64, RoundTripsEveryLengthAndByte) {
  EXPECT_EQ(ToBase64(""), "");
  EXPECT_EQ(ToBase64("f"), "Zg==");
  EXPECT_EQ(ToBase64("fo"), "Zm8=");
  EXPECT_EQ(ToBase64("foo"), "Zm9v");
  EXPECT_EQ(ToBase64("foobar"), "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= all.size(); n += 37) {
    auto back = FromBase64(ToBase64(all.substr(0, n)));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, all.substr(0, n));
  }
}

TEST(Base64, RefusesWhatIsNotBase64) {
  EXPECT_FALSE(FromBase64("Zg=").ok());
  EXPECT_FALSE(FromBase64("Z!==").ok());
  EXPECT_EQ(FromBase64("Zm 9").status().message(), "bad base64");
}

}  // namespace
}  // namespace pampa
