// BackupDisk and RestoreDisk against a real qemu-nbd serving real qcow2 images.
#include "backup/disk_transfer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "backup/object_store_wrapper.h"
#include "base/process.h"

namespace pampa {
namespace {

namespace fs = std::filesystem;

class QemuNbd {
 public:
  QemuNbd(const std::string& image, const std::string& socket, bool writable, const std::string& bitmap = "") {
    std::vector<std::string> argv = {"qemu-nbd",       "--persistent",       "--shared=4",
                                     "--format=qcow2", "--socket=" + socket, "--export-name=disk0"};
    if (!writable) argv.push_back("--read-only");
    if (!bitmap.empty()) argv.push_back("--bitmap=" + bitmap);
    argv.push_back(image);
    auto pid = SpawnDetached(argv, socket + ".log");
    EXPECT_TRUE(pid.ok());
    pid_ = *pid;
    for (int i = 0; i < 200 && !fs::exists(socket); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~QemuNbd() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && ProcessAlive(pid_, ""); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

 private:
  pid_t pid_;
};

void QemuIo(const std::string& image, const std::string& cmd) {
  auto r = RunChecked({"qemu-io", "-f", "qcow2", "-c", cmd, image});
  ASSERT_TRUE(r.ok()) << r.status().message();
}

TEST(DiskTransfer, MapImageRefusesWhatFileIoCannotRead) {
  fs::path dir = fs::temp_directory_path() / ("pampa-map-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string base = (dir / "base.qcow2").string(), top = (dir / "top.qcow2").string();
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", base, "8M"}).ok());
  QemuIo(base, "write -P 0x55 0 1M");
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top}).ok());
  auto m = MapImage(top, "qcow2");
  EXPECT_EQ(m.status().code(), ErrorCode::kUnavailable);  // data in the backing file
  auto plain = MapImage(base, "qcow2");
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  ASSERT_FALSE(plain->empty());
  EXPECT_GE((*plain)[0].offset, 0);
  EXPECT_FALSE((*plain)[0].zero);
  fs::remove_all(dir);
}

TEST(DiskTransfer, FullThenIncrementalThenRestoreIsBitIdentical) {
  if (!HaveExecutable("qemu-nbd")) GTEST_SKIP() << "qemu-nbd missing";
  fs::path dir = fs::temp_directory_path() / ("pampa-dt-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string img = (dir / "src.qcow2").string();
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", img, "64M"}).ok());
  QemuIo(img, "write -P 0x11 0 3M");
  QemuIo(img, "write -P 0x22 20M 1M");
  QemuIo(img, "write -P 0x33 63M 512k");  // the last, partial-free chunk
  ASSERT_TRUE(RunChecked({"qemu-img", "bitmap", "--add", img, "b1"}).ok());

  auto repo = Repository::Init(NewMemoryObjectStore(), {"pw"}, 4 << 20);
  ASSERT_TRUE(repo.ok());
  DiskBackupResult full;
  {
    QemuNbd nbd(img, (dir / "a.sock").string(), false);
    auto r = BackupDisk({{(dir / "a.sock").string(), "disk0"}}, **repo, {});  // data through NBD
    ASSERT_TRUE(r.ok()) << r.status().message();
    full = *r;
  }
  EXPECT_FALSE(full.incremental);
  EXPECT_EQ(full.size, 64u << 20);
  EXPECT_EQ(full.chunks.size(), 16u);
  EXPECT_EQ(full.bytes_read, 12u << 20);  // only the 3 allocated chunks are read
  EXPECT_EQ(full.chunks[2], kZeroChunk);

  // Write after the bitmap was added: only those chunks are dirty.
  QemuIo(img, "write -P 0x44 40M 4k");
  DiskBackupResult inc;
  {
    QemuNbd nbd(img, (dir / "b.sock").string(), false, "b1");
    DiskBackupOptions opt;
    opt.bitmap = "b1";
    opt.previous = &full.chunks;
    auto map = MapImage(img, "qcow2");  // data straight from the file
    ASSERT_TRUE(map.ok()) << map.status().message();
    auto r = BackupDisk({{(dir / "b.sock").string(), "disk0"}, img, *map}, **repo, opt);
    ASSERT_TRUE(r.ok()) << r.status().message();
    inc = *r;
  }
  EXPECT_TRUE(inc.incremental);
  EXPECT_EQ(inc.bytes_read, 4u << 20);  // one chunk
  EXPECT_EQ(inc.chunks[0], full.chunks[0]);
  EXPECT_NE(inc.chunks[10], kZeroChunk);

  std::string out = (dir / "restored.qcow2").string();
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", out, "64M"}).ok());
  auto map = MapImage(out, "qcow2");
  ASSERT_TRUE(map.ok()) << map.status().message();
  Status st = RestoreDisk(**repo, inc.chunks, inc.size, {out, *map}, 3, nullptr, nullptr);
  ASSERT_TRUE(st.ok()) << st.message();
  auto check = pampa::Run({"qemu-img", "check", "-q", out});
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->exit_code, 0) << check->out << check->err;
  auto cmp = pampa::Run({"qemu-img", "compare", "-q", img, out});
  ASSERT_TRUE(cmp.ok());
  EXPECT_EQ(cmp->exit_code, 0) << "restored image differs";
  fs::remove_all(dir);
}

// A store behind a link: the restore fetches ahead with the Gets in flight the
// store advises, writes runs of consecutive chunks, and a failed Get fails the
// restore (naming it) without a hang.
TEST(DiskTransfer, RestoreFetchesAheadFromAStoreThatAdvisesIt) {
  if (!HaveExecutable("qemu-nbd")) GTEST_SKIP() << "qemu-nbd missing";
  fs::path dir = fs::temp_directory_path() / ("pampa-dtp-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string img = (dir / "src.qcow2").string();
  ASSERT_TRUE(RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", img, "32M"}).ok());
  QemuIo(img, "write -P 0x11 0 7M");
  QemuIo(img, "write -P 0x22 9M 1M");
  QemuIo(img, "write -P 0x33 20M 5M");
  auto owned = std::make_unique<FaultInjectingObjectStore>(NewMemoryObjectStore());
  FaultInjectingObjectStore* store = owned.get();
  store->SetReadStreams(3);
  auto repo = Repository::Init(std::move(owned), {"pw"}, 1 << 20);
  ASSERT_TRUE(repo.ok());
  DiskBackupResult full;
  {
    QemuNbd nbd(img, (dir / "a.sock").string(), false);
    auto r = BackupDisk({{(dir / "a.sock").string(), "disk0"}}, **repo, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    full = *r;
  }
  auto restore = [&](const std::string& name) {
    std::string out = (dir / name).string();
    EXPECT_TRUE(
        RunChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", out, "32M"}).ok());
    auto map = MapImage(out, "qcow2");
    EXPECT_TRUE(map.ok());
    return std::make_pair(out, RestoreDisk(**repo, full.chunks, full.size, {out, *map}, 2, nullptr, nullptr));
  };
  auto [out, st] = restore("restored.qcow2");
  ASSERT_TRUE(st.ok()) << st.message();
  auto cmp = pampa::Run({"qemu-img", "compare", "-q", img, out});
  ASSERT_TRUE(cmp.ok());
  EXPECT_EQ(cmp->exit_code, 0) << "restored image differs";

  store->InjectFault({ObjectOp::kGet, 5, "chunks/"});
  auto [out2, failed] = restore("failed.qcow2");
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("injected"), std::string::npos) << failed.message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pampa
