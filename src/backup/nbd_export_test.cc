// The backup NBD export against real NBD clients: libnbd and QEMU's own
// (qemu-img), on an encrypted repository in memory.
#include "backup/nbd_export.h"

#include <gtest/gtest.h>
#include <libnbd.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "base/fs.h"
#include "base/process.h"

namespace pampa {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kChunk = 64 << 10;

// A repository holding one backup of two disks: disk0 has data, zero chunks
// and a short last chunk; disk1 is one chunk of data.
struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("pampa-nbd-export-" + std::to_string(getpid()));
  std::shared_ptr<Repository> repo;
  Manifest manifest;
  std::vector<std::string> contents;  // each disk's bytes

  Fixture() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    repo = std::move(*Repository::Init(NewMemoryObjectStore(), {"secret"}, kChunk));
    manifest.id = "b1";
    std::mt19937 rng(7);
    // Sizes are multiples of 512 B, as disks' are (QEMU's client hangs on
    // the tail of an unaligned export without structured replies).
    for (uint64_t size : {10 * kChunk + 1536, kChunk}) {
      std::string disk(size, '\0');
      ManifestDisk d;
      d.index = contents.size();
      d.size = size;
      for (uint64_t off = 0; off < size; off += kChunk) {
        size_t c = off / kChunk;
        uint64_t len = std::min(kChunk, size - off);
        if (size > kChunk && (c == 2 || c == 3 || c == 7)) {  // holes
          d.chunks.push_back(kZeroChunk);
          continue;
        }
        std::string plain(kChunk, '\0');
        for (uint64_t i = 0; i < len; ++i) plain[i] = static_cast<char>(rng());
        disk.replace(off, len, plain.substr(0, len));
        uint64_t uploaded = 0;
        d.chunks.push_back(*repo->PutChunk(plain, &uploaded));
      }
      manifest.disks.push_back(d);
      contents.push_back(disk);
    }
  }
  ~Fixture() { fs::remove_all(dir); }
  std::string socket() const { return (dir / "nbd.sock").string(); }
};

struct Client {
  nbd_handle* h = nbd_create();
  ~Client() { nbd_close(h); }
  bool Connect(const std::string& socket, const std::string& name) {
    nbd_set_export_name(h, name.c_str());
    return nbd_connect_unix(h, socket.c_str()) == 0;
  }
};

TEST(BackupNbdExport, ServesEachDiskByteForByte) {
  Fixture f;
  auto server = BackupNbdServer::Start(f.repo, f.manifest, f.socket());
  ASSERT_TRUE(server.ok()) << server.status().message();
  for (size_t i = 0; i < f.contents.size(); ++i) {
    Client c;
    ASSERT_TRUE(c.Connect(f.socket(), BackupNbdServer::ExportName(i))) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(c.h), static_cast<int64_t>(f.contents[i].size()));
    EXPECT_EQ(nbd_is_read_only(c.h), 1);
    // Reads that straddle chunks, holes and the short end.
    for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
             {0, f.contents[i].size()}, {kChunk - 10, 3 * kChunk}, {f.contents[i].size() - 5, 5}}) {
      if (off + len > f.contents[i].size()) continue;
      std::string buf(len, '\1');
      ASSERT_EQ(nbd_pread(c.h, buf.data(), len, off, 0), 0) << nbd_get_error();
      EXPECT_EQ(buf, f.contents[i].substr(off, len)) << "disk " << i << " at " << off;
    }
    nbd_shutdown(c.h, 0);
  }
  // QEMU's client (what a live restore's backing uses) copies the same bytes.
  std::string out = (f.dir / "disk0.raw").string();
  auto r = RunChecked({"qemu-img", "convert", "-f", "raw", "-O", "raw", "nbd+unix:///disk0?socket=" + f.socket(), out});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*ReadFile(out), f.contents[0]);
  EXPECT_GT((*server)->stats().chunks_fetched, 0u);
}

TEST(BackupNbdExport, RefusesUnknownExportsWritesAndReadsPastTheEnd) {
  Fixture f;
  auto server = BackupNbdServer::Start(f.repo, f.manifest, f.socket());
  ASSERT_TRUE(server.ok()) << server.status().message();
  Client unknown;
  EXPECT_FALSE(unknown.Connect(f.socket(), "disk9"));
  Client c;
  ASSERT_TRUE(c.Connect(f.socket(), "disk1"));
  char buf[16];
  EXPECT_EQ(nbd_pread(c.h, buf, sizeof(buf), kChunk - 8, 0), -1);  // past the end
  // The server still answers on the same connection.
  EXPECT_EQ(nbd_pread(c.h, buf, 8, 0, 0), 0) << nbd_get_error();
}

TEST(BackupNbdExport, AChunkThatCannotBeReadIsAnIoErrorNamingIt) {
  Fixture f;
  const std::string lost = f.manifest.disks[0].chunks[5];
  ASSERT_TRUE(f.repo->DeleteChunk(lost).ok());
  auto server = BackupNbdServer::Start(f.repo, f.manifest, f.socket());
  ASSERT_TRUE(server.ok());
  Client c;
  ASSERT_TRUE(c.Connect(f.socket(), "disk0"));
  std::string buf(kChunk, '\0');
  EXPECT_EQ(nbd_pread(c.h, buf.data(), kChunk, 5 * kChunk, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EIO);
  // Other chunks are still served.
  ASSERT_EQ(nbd_pread(c.h, buf.data(), kChunk, 4 * kChunk, 0), 0) << nbd_get_error();
  EXPECT_EQ(buf, f.contents[0].substr(4 * kChunk, kChunk));
  auto stats = (*server)->stats();
  EXPECT_EQ(stats.errors, 1u);
  EXPECT_NE(stats.last_error.find(lost), std::string::npos) << stats.last_error;
}

}  // namespace
}  // namespace pampa
