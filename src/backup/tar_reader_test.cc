#include "backup/tar_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "backup/tar_test_util.h"
#include "base/fs.h"

namespace pampa {
namespace {

using tar_test::TarEnd;
using tar_test::TarHeaderBlock;
using tar_test::TarMember;

// The archive in a temporary file (seekable), opened for reading.
Fd FileWith(const std::string& data) {
  char path[] = "/tmp/tar_reader_test.XXXXXX";
  int fd = mkstemp(path);
  unlink(path);
  EXPECT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  lseek(fd, 0, SEEK_SET);
  return Fd(fd);
}

std::string ReadAll(TarReader& tar) {
  std::string out(tar.left(), '\0');
  EXPECT_TRUE(tar.Read(out.data(), out.size()).ok());
  return out;
}

TEST(TarReader, ReadsMembersWithLongNamesAndTheirOffsets) {
  std::string long_name = "Ref:7/" + std::string(120, 'n');
  std::string archive = TarMember("ova.xml", "<value/>") + TarMember(long_name, std::string(700, 'x')) +
                        TarMember("last", "tail") + TarEnd();
  Fd fd = FileWith(archive);
  TarReader tar(fd.get(), "test.tar");
  auto a = tar.Next();
  ASSERT_TRUE(a.ok() && *a) << a.status().message();
  EXPECT_EQ((*a)->name, "ova.xml");
  EXPECT_EQ((*a)->offset, 512u);
  EXPECT_EQ(ReadAll(tar), "<value/>");
  auto b = tar.Next();
  ASSERT_TRUE(b.ok() && *b);
  EXPECT_EQ((*b)->name, long_name);
  EXPECT_EQ((*b)->size, 700u);
  EXPECT_EQ(archive.substr((*b)->offset, 700), std::string(700, 'x'));
  // Not read: skipped by the next Next.
  auto c = tar.Next();
  ASSERT_TRUE(c.ok() && *c);
  EXPECT_EQ((*c)->name, "last");
  EXPECT_EQ(ReadAll(tar), "tail");
  auto end = tar.Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(*end);
}

TEST(TarReader, ReadsFromAPipeAndTakesPaxPaths) {
  std::string pax = "29 path=a/very/long/pax/name\n";
  std::string archive = TarHeaderBlock("PaxHeader", pax.size(), 'x') + pax;
  archive.resize(1024, '\0');
  archive += TarMember("short", std::string(2000, 'p')) + TarMember("b", "bee") + TarEnd();
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  std::thread writer([&] {
    EXPECT_EQ(write(p[1], archive.data(), archive.size()), static_cast<ssize_t>(archive.size()));
    close(p[1]);
  });
  TarReader tar(p[0], "pipe");
  auto a = tar.Next();
  ASSERT_TRUE(a.ok() && *a) << a.status().message();
  EXPECT_EQ((*a)->name, "a/very/long/pax/name");
  auto b = tar.Next();  // skips 2000 bytes by reading
  ASSERT_TRUE(b.ok() && *b) << b.status().message();
  EXPECT_EQ(ReadAll(tar), "bee");
  writer.join();
  close(p[0]);
}

TEST(TarReader, RefusesDamagedAndTruncatedArchives) {
  {
    Fd fd = FileWith(std::string(512, 'x'));
    TarReader tar(fd.get(), "junk.tar");
    auto m = tar.Next();
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("junk.tar is not a tar archive"), std::string::npos) << m.status().message();
  }
  {
    std::string archive = TarMember("big", std::string(4096, 'b')).substr(0, 2000);
    Fd fd = FileWith(archive);
    TarReader tar(fd.get(), "cut.tar");
    auto m = tar.Next();
    ASSERT_TRUE(m.ok() && *m);
    auto next = tar.Next();  // the skip runs past the end of the file
    ASSERT_FALSE(next.ok());
    EXPECT_NE(next.status().message().find("ends early"), std::string::npos) << next.status().message();
  }
  {
    Fd fd = FileWith(TarMember("a", "data").substr(0, 700));
    TarReader tar(fd.get(), "cut.tar");
    ASSERT_TRUE(tar.Next().ok());
    char buf[4];
    EXPECT_FALSE(tar.Read(buf, 5).ok()) << "past the member";
  }
}

TEST(TarReader, ParsesHeaderFields) {
  std::string h = TarHeaderBlock("name", 12345);
  h.replace(345, 6, "prefix");
  // The checksum must be made again after the change.
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  auto parsed = ParseTarHeader(h);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->name, "prefix/name");
  EXPECT_EQ(parsed->size, 12345u);
  h[0] = 'N';
  EXPECT_FALSE(ParseTarHeader(h).ok());
}

}  // namespace
}  // namespace pampa
