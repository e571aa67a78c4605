#include "backup/tar_end.h"

#include <gtest/gtest.h>

#include "backup/tar_test_util.h"

namespace pampa {
namespace {

std::string Header(const std::string& name, uint64_t size) { return tar_test::TarHeaderBlock(name, size); }
std::string Member(const std::string& name, const std::string& data) { return tar_test::TarMember(name, data); }

TEST(TarEndFinder, StopsAtTheEndOfTheLastRecordEvenInSmallPieces) {
  // Data that looks like headers and zero blocks must be skipped by size.
  std::string archive =
      Member("a", std::string(1024, '\0')) + Member("b", Header("fake", 99)) + std::string(1024, '\0');
  archive.resize(10240, '\0');  // a record of 20 blocks
  std::string stream = archive + Member("next", "x");
  for (size_t piece : {size_t{1}, size_t{7}, size_t{512}, size_t{4096}, stream.size()}) {
    TarEndFinder f(10240);
    size_t taken = 0;
    for (size_t at = 0; at < stream.size() && !f.done(); at += piece) {
      auto n = f.Feed(std::string_view(stream).substr(at, piece));
      ASSERT_TRUE(n.ok()) << n.status().message();
      taken += *n;
    }
    EXPECT_TRUE(f.done());
    EXPECT_EQ(taken, archive.size()) << "pieces of " << piece;
  }
}

TEST(TarEndFinder, ReadsBase256Sizes) {
  std::string h = Header("big", 0);
  // 2 blocks in GNU's base-256 form; the checksum must be recomputed.
  std::string size(12, '\0');
  size[0] = static_cast<char>(0x80);
  size[10] = 4;  // 1024 bytes
  h.replace(124, 12, size);
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  std::string archive = h + std::string(1024, 'd') + std::string(1024, '\0');
  TarEndFinder f;
  auto n = f.Feed(archive + "trailing");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, archive.size());
  EXPECT_TRUE(f.done());
}

TEST(TarEndFinder, RefusesWhatIsNotTar) {
  TarEndFinder f;
  auto n = f.Feed(std::string(512, 'x'));
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("not a tar stream"), std::string::npos);
}

}  // namespace
}  // namespace pampa
