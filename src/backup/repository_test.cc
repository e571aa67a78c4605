// The ObjectStore conformance suite and the repository's guarantees.
#include "backup/repository.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include "backup/object_store_wrapper.h"
#include "backup/prune.h"
#include "backup/sftp_store.h"
#include "base/fs.h"
#include "base/process.h"
#include "base/test_ports.h"

namespace pampa {
namespace {

// A manifest from the JSON a test spells out (the wire format).
Manifest TestManifest(const nlohmann::json& j) {
  auto m = Manifest::FromJson(j);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : Manifest{};
}

enum class Kind { kMemory, kLocal, kSftp };

// A real OpenSSH server on loopback with a fresh host key and client key, for
// the SFTP store. Skipped where sshd is not installed. Started on first use;
// StopIfStarted (run by SshdEnvironment when the test process ends) stops it,
// its per-connection children and removes its directory: detached, it would
// otherwise outlive every test process that used it.
class TestSshd {
 public:
  // REQUIRES: called from the test's main thread.
  static TestSshd* Get() {
    if (!started_) started_ = new TestSshd();
    return started_->ok_ ? started_ : nullptr;
  }
  static void StopIfStarted() {
    delete started_;
    started_ = nullptr;
  }
  ~TestSshd() {
    if (pid_ > 0) {
      // Children first (they would be reparented, out of reach, once sshd is
      // gone), each woken in case a test left it stopped.
      std::vector<pid_t> tree = Tree();
      for (auto it = tree.rbegin(); it != tree.rend(); ++it) {
        kill(*it, SIGCONT);
        kill(*it, SIGTERM);
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      auto alive = [&] {
        for (pid_t p : tree) {
          if (ProcessAlive(p, "sshd")) return true;
        }
        return false;
      };
      while (alive() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      for (pid_t p : tree) {
        if (ProcessAlive(p, "sshd")) kill(p, SIGKILL);
      }
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  // Sends sig to sshd and every process it forked (the per-connection ones).
  void SignalAll(int sig) const {
    for (pid_t p : Tree()) kill(p, sig);
  }
  SftpLocation Location(const std::string& path) const {
    SftpLocation l{"root", "127.0.0.1", dir_ + "/" + path, port_, dir_ + "/client", dir_ + "/known_hosts"};
    return l;
  }

 private:
  TestSshd() {
    if (!HaveExecutable("/usr/sbin/sshd") || geteuid() != 0) return;
    dir_ = (std::filesystem::temp_directory_path() / ("pampa-sshd-" + std::to_string(getpid()))).string();
    std::filesystem::create_directories(dir_);
    std::filesystem::create_directories("/run/sshd");
    for (auto key : {"host", "client"}) {
      if (!RunChecked({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_ + "/" + key}).ok()) return;
    }
    port_ = FreeLoopbackPort();
    std::filesystem::copy_file(dir_ + "/client.pub", dir_ + "/authorized_keys");
    auto host_pub = ReadFile(dir_ + "/host.pub");
    if (!host_pub.ok()) return;
    std::string kh = "[127.0.0.1]:" + std::to_string(port_) + " " + *host_pub;
    if (!WriteFileAtomic(dir_ + "/known_hosts", kh).ok()) return;
    std::string conf = "Port " + std::to_string(port_) + "\nListenAddress 127.0.0.1\nHostKey " + dir_ +
                       "/host\nAuthorizedKeysFile " + dir_ +
                       "/authorized_keys\nPermitRootLogin prohibit-password\n"
                       "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                       "Subsystem sftp internal-sftp\nPidFile " +
                       dir_ + "/sshd.pid\n";
    if (!WriteFileAtomic(dir_ + "/sshd_config", conf).ok()) return;
    auto pid = SpawnDetached({"/usr/sbin/sshd", "-D", "-e", "-f", dir_ + "/sshd_config"}, dir_ + "/sshd.log");
    if (!pid.ok()) return;
    pid_ = *pid;
    for (int i = 0; i < 100; ++i) {
      if (OpenSftpObjectStore(Location("probe"), CreateDir::kLastComponent, 1).ok()) {
        ok_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  // sshd and its descendants, parents before children.
  std::vector<pid_t> Tree() const {
    std::vector<pid_t> out;
    if (pid_ <= 0) return out;
    out.push_back(pid_);
    for (size_t i = 0; i < out.size(); ++i) {
      auto kids = Run({"pgrep", "-P", std::to_string(out[i])});
      if (!kids.ok()) continue;
      std::istringstream in(kids->out);
      for (pid_t k; in >> k;) out.push_back(k);
    }
    return out;
  }

  static inline TestSshd* started_ = nullptr;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = 0;
  bool ok_ = false;
};

class SshdEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { TestSshd::StopIfStarted(); }
};
[[maybe_unused]] ::testing::Environment* const kSshdEnvironment =
    ::testing::AddGlobalTestEnvironment(new SshdEnvironment);

class ObjectStoreConformance : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kMemory) {
      store_ = NewMemoryObjectStore();
    } else if (GetParam() == Kind::kSftp) {
      TestSshd* sshd = TestSshd::Get();
      if (!sshd) GTEST_SKIP() << "no sshd to test the SFTP store against";
      static int n = 0;
      auto s = OpenSftpObjectStore(sshd->Location("store" + std::to_string(n++)), CreateDir::kLastComponent, 3);
      ASSERT_TRUE(s.ok()) << s.status().message();
      store_ = std::move(*s);
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("pampa-objs-" + std::to_string(getpid()));
      auto s = OpenLocalObjectStore(dir_.string(), CreateDir::kLastComponent);
      ASSERT_TRUE(s.ok());
      store_ = std::move(*s);
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<ObjectStore> store_;
  std::filesystem::path dir_;
};

TEST_P(ObjectStoreConformance, PutGetOverwriteDelete) {
  ASSERT_TRUE(store_->Put("chunks/ab/abcd", "one").ok());
  EXPECT_EQ(*store_->Get("chunks/ab/abcd"), "one");
  ASSERT_TRUE(store_->Put("chunks/ab/abcd", "one").ok());  // idempotent
  EXPECT_TRUE(*store_->Exists("chunks/ab/abcd"));
  ASSERT_TRUE(store_->Delete("chunks/ab/abcd").ok());
  ASSERT_TRUE(store_->Delete("chunks/ab/abcd").ok());
  EXPECT_FALSE(*store_->Exists("chunks/ab/abcd"));
  EXPECT_EQ(store_->Get("chunks/ab/abcd").status().code(), ErrorCode::kNotFound);
}

TEST_P(ObjectStoreConformance, ListByPrefixSorted) {
  ASSERT_TRUE(store_->Put("backups/b", "").ok());
  ASSERT_TRUE(store_->Put("backups/a", "").ok());
  ASSERT_TRUE(store_->Put("chunks/00/00ff", "").ok());
  ASSERT_TRUE(store_->Put("config", "{}").ok());
  auto l = store_->List("backups/");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<std::string>{"backups/a", "backups/b"}));
  EXPECT_EQ(store_->List("chunks/")->size(), 1u);
  EXPECT_EQ(store_->List("")->size(), 4u);
  EXPECT_TRUE(store_->List("nothing/")->empty());
}

TEST_P(ObjectStoreConformance, RejectsNamesThatEscape) {
  EXPECT_FALSE(store_->Put("../etc/passwd", "x").ok());
  EXPECT_FALSE(store_->Put("/abs", "x").ok());
  EXPECT_FALSE(store_->Put("a b", "x").ok());
}

TEST_P(ObjectStoreConformance, ConcurrentWritersOfOneObject) {
  std::vector<std::thread> ts;
  std::string big(1 << 20, 'x');
  for (int i = 0; i < 8; ++i) ts.emplace_back([&] { EXPECT_TRUE(store_->Put("chunks/aa/same", big).ok()); });
  for (auto& t : ts) t.join();
  EXPECT_EQ(*store_->Get("chunks/aa/same"), big);
  EXPECT_EQ(store_->List("chunks/")->size(), 1u);  // no temporary files visible
}

// Sizes around the SFTP store's request size and its first read's guess, and
// larger than the guess (read in growing batches), from many threads at once.
TEST_P(ObjectStoreConformance, ObjectsOfEverySizeFromManyThreads) {
  const std::vector<size_t> sizes = {0,
                                     1,
                                     (255 << 10) - 1,
                                     255 << 10,
                                     (255 << 10) + 1,
                                     (1 << 20) + (4 << 10),
                                     (1 << 20) + (4 << 10) + 1,
                                     (5 << 20) + 3};
  std::vector<std::string> data;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string d(sizes[i], '\0');
    for (size_t k = 0; k < d.size(); ++k) d[k] = static_cast<char>((k * 131 + i * 7) >> 3);
    data.push_back(std::move(d));
  }
  std::vector<std::thread> ts;
  for (size_t i = 0; i < sizes.size(); ++i) {
    ts.emplace_back([&, i] {
      std::string name = "chunks/s" + std::to_string(i % 3) + "/o" + std::to_string(i);
      EXPECT_TRUE(store_->Put(name, data[i]).ok()) << sizes[i];
      auto got = store_->Get(name);
      ASSERT_TRUE(got.ok()) << got.status().message();
      EXPECT_TRUE(*got == data[i]) << "size " << sizes[i] << " came back as " << got->size();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(store_->List("chunks/")->size(), sizes.size());
}

// A lock's way in: in place, no rename, a new directory made on the way.
TEST_P(ObjectStoreConformance, CreateWritesANewObjectInANewDirectory) {
  ASSERT_TRUE(store_->Create("locks/backup-1", "{\"created\":1}").ok());
  EXPECT_EQ(*store_->Get("locks/backup-1"), "{\"created\":1}");
  std::string big((1 << 20) + 5, 'y');  // several writes
  ASSERT_TRUE(store_->Create("locks/backup-2", big).ok());
  EXPECT_EQ(*store_->Get("locks/backup-2"), big);
  EXPECT_EQ(*store_->List("locks/"), (std::vector<std::string>{"locks/backup-1", "locks/backup-2"}));
  EXPECT_FALSE(store_->Create("../locks/x", "x").ok());
}

INSTANTIATE_TEST_SUITE_P(AllStores, ObjectStoreConformance,
                         ::testing::Values(Kind::kMemory, Kind::kLocal, Kind::kSftp));

TEST(SftpStore, UnknownHostKeyAndBadUrlsAreRefused) {
  EXPECT_FALSE(ParseSftpUrl("sftp://host/path").ok());
  EXPECT_FALSE(ParseSftpUrl("sftp://u@host:99999/path").ok());
  EXPECT_FALSE(ParseSftpUrl("ftp://u@host/path").ok());
  auto loc = ParseSftpUrl("sftp://backup@nas.local:2222/srv/pampa");
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->port, 2222);
  EXPECT_EQ(loc->path, "/srv/pampa");
  TestSshd* sshd = TestSshd::Get();
  if (!sshd) GTEST_SKIP() << "no sshd";
  SftpLocation l = sshd->Location("x");
  l.known_hosts = "/dev/null";
  auto s = OpenSftpObjectStore(l, CreateDir::kLastComponent, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not in known_hosts"), std::string::npos) << s.status().message();
}

TEST(SftpStore, ATargetThatStopsAnsweringFailsTheOperation) {
  TestSshd* sshd = TestSshd::Get();
  if (!sshd) GTEST_SKIP() << "no sshd to test the SFTP store against";
  SftpLocation loc = sshd->Location("stall");
  loc.stall_seconds = 2;
  auto store = OpenSftpObjectStore(loc, CreateDir::kLastComponent, 1);
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE((*store)->Put("before", "x").ok());
  std::string big(256 << 20, 'z');  // far more than the socket buffers hold
  auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    sshd->SignalAll(SIGSTOP);
  });
  Status st = (*store)->Put("big", big);
  stopper.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sshd->SignalAll(SIGCONT);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("stopped answering"), std::string::npos) << st.message();
  EXPECT_LT(secs, 10);
  // The store recovers with a new connection once the server answers again.
  EXPECT_TRUE((*store)->Put("after", "y").ok());
}

TEST(ChunkCodec, RoundTripCompressedAndEncrypted) {
  RepoKeys keys = RepoKeys::Generate();
  std::string data(1 << 20, 'a');
  data += RandomBytes(1000);
  std::string id = ChunkId(keys, data);
  std::string buf;
  std::string sealed = std::string(SealChunk(keys, id, data, 3, &buf));
  EXPECT_LT(sealed.size(), data.size() / 10);                       // compressed
  EXPECT_EQ(sealed.find(std::string(64, 'a')), std::string::npos);  // encrypted
  auto back = OpenChunk(keys, id, sealed);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, data);
  // The restore path: straight into a buffer, trusting the tag.
  std::string out(data.size(), '\0'), object = sealed;
  ASSERT_TRUE(OpenChunkInto(keys, id, object, out.data(), out.size(), ChunkCheck::kTag).ok());
  EXPECT_EQ(out, data);
}

TEST(ChunkCodec, AnEncryptedObjectCannotPassAsAnotherChunk) {
  RepoKeys keys = RepoKeys::Generate();
  std::string a(4096, 'a'), b(4096, 'b'), buf;
  std::string id_a = ChunkId(keys, a), id_b = ChunkId(keys, b);
  std::string sealed_a = std::string(SealChunk(keys, id_a, a, 3, &buf));
  // Someone renames chunk a's object to b's name: the tag binds the id.
  std::string out(4096, '\0');
  EXPECT_FALSE(OpenChunkInto(keys, id_b, sealed_a, out.data(), out.size(), ChunkCheck::kTag).ok());
}

TEST(ChunkCodec, AnyFlippedByteIsDetected) {
  for (bool encrypted : {true, false}) {
    RepoKeys keys = encrypted ? RepoKeys::Generate() : RepoKeys{};
    std::string data = RandomBytes(4096);
    std::string id = ChunkId(keys, data);
    std::string buf;
    std::string sealed = std::string(SealChunk(keys, id, data, 3, &buf));
    for (size_t pos : {size_t{0}, size_t{4}, size_t{20}, sealed.size() - 1}) {
      std::string bad = sealed;
      bad[pos] ^= 0x01;
      EXPECT_FALSE(OpenChunk(keys, id, bad).ok()) << "encrypted=" << encrypted << " pos=" << pos;
    }
  }
}

TEST(ChunkCodec, KeyedIdsDifferFromPlainSha256) {
  RepoKeys keys = RepoKeys::Generate();
  EXPECT_NE(ChunkId(keys, "hello"), Sha256Hex("hello"));
  EXPECT_EQ(ChunkId(RepoKeys{}, "hello"), Sha256Hex("hello"));
}

TEST(Repository, DedupAndManifestRoundTrip) {
  auto repo = Repository::Init(NewMemoryObjectStore(), {"secret"}, 1 << 20);
  ASSERT_TRUE(repo.ok()) << repo.status().message();
  uint64_t up1 = 0, up2 = 0;
  auto a = (*repo)->PutChunk("block", &up1);
  auto b = (*repo)->PutChunk("block", &up2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_GT(up1, 0u);
  EXPECT_EQ(up2, 0u);  // deduplicated
  EXPECT_EQ(*(*repo)->GetChunk(*a), "block");
  Manifest m = TestManifest({{"id", "b1"}, {"vm", "web"}, {"disks", {{{"chunks", {*a}}}}}});
  ASSERT_TRUE((*repo)->WriteManifest(m).ok());
  EXPECT_EQ((*repo)->ReadManifest("b1")->ToJson(), m.ToJson());
  EXPECT_EQ(*(*repo)->ListBackups(), std::vector<std::string>{"b1"});
}

std::unique_ptr<ObjectStore> Local(const std::filesystem::path& dir) {
  auto s = OpenLocalObjectStore(dir.string(), CreateDir::kLastComponent);
  return std::move(s.value());
}

// Write-behind (an SFTP store's way): uploads run on the repository's own
// threads; AwaitUploads reports one that failed, naming the chunk, and the
// chunk is uploaded again by the next backup that needs it.
TEST(Repository, WriteBehindUploadsAreAwaitedAndAFailedOneIsNamed) {
  auto faults = std::make_unique<FaultInjectingObjectStore>(NewMemoryObjectStore());
  FaultInjectingObjectStore* store = faults.get();
  store->SetWriteBehind(3);
  store->SetStall(std::chrono::milliseconds(5));
  auto repo = Repository::Init(std::move(faults), {"secret"}, 64 << 10);
  ASSERT_TRUE(repo.ok()) << repo.status().message();
  store->InjectFault({.op = ObjectOp::kPut, .nth = 4, .prefix = "chunks/"});
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    uint64_t up = 0;
    auto id = (*repo)->PutChunk(std::string(64 << 10, static_cast<char>('a' + i)), &up);
    ASSERT_TRUE(id.ok()) << id.status().message();
    EXPECT_GT(up, 0u);
    ids.push_back(*id);
  }
  Status st = (*repo)->AwaitUploads(ids);
  ASSERT_EQ(st.code(), ErrorCode::kUnavailable) << st.message();
  EXPECT_NE(st.message().find("could not be uploaded"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("injected fault"), std::string::npos) << st.message();
  int present = 0;
  for (auto& id : ids) present += (*repo)->CheckChunk(id).ok();
  EXPECT_EQ(present, 11);
  // The next backup of the same data uploads the missing chunk again.
  for (int i = 0; i < 12; ++i) {
    uint64_t up = 0;
    ASSERT_TRUE((*repo)->PutChunk(std::string(64 << 10, static_cast<char>('a' + i)), &up).ok());
  }
  st = (*repo)->AwaitUploads(ids);
  ASSERT_TRUE(st.ok()) << st.message();
  for (auto& id : ids) EXPECT_TRUE((*repo)->CheckChunk(id).ok()) << id;
}

TEST(Repository, WrongPassphraseIsClearAndChangesNothing) {
  auto dir = std::filesystem::temp_directory_path() / ("pampa-repo-" + std::to_string(getpid()));
  {
    auto repo = Repository::Init(Local(dir), {"right"});
    ASSERT_TRUE(repo.ok());
  }
  auto before = std::filesystem::last_write_time(dir / "config");
  auto bad = Repository::Open(Local(dir), {"wrong"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("wrong passphrase"), std::string::npos);
  EXPECT_EQ(std::filesystem::last_write_time(dir / "config"), before);
  EXPECT_TRUE(Repository::Open(Local(dir), {"right"}).ok());
  EXPECT_EQ(Repository::Init(Local(dir), {"x"}).status().code(), ErrorCode::kConflict);
  std::filesystem::remove_all(dir);
}

TEST(Repository, KeyFileKeepsTheKeyOutsideTheRepository) {
  auto dir = std::filesystem::temp_directory_path() / ("pampa-keyfile-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string key = (dir / "repo.key").string(), other_key = (dir / "other.key").string();
  std::string id;
  {
    auto repo = Repository::Init(Local(dir / "repo"), {"", key});
    ASSERT_TRUE(repo.ok()) << repo.status().message();
    uint64_t up = 0;
    id = *(*repo)->PutChunk("secret data", &up);
  }
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  // The repository holds no key material: without the file, nothing opens.
  EXPECT_FALSE(std::filesystem::exists(dir / "repo" / "keys"));
  auto no_key = Repository::Open(Local(dir / "repo"), {"a passphrase"});
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("--key-file"), std::string::npos) << no_key.status().message();
  // Another repository's key file is refused by name.
  ASSERT_TRUE(Repository::Init(Local(dir / "other"), {"", other_key}).ok());
  auto wrong = Repository::Open(Local(dir / "repo"), {"", other_key});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("another repository"), std::string::npos) << wrong.status().message();
  // A new repository never overwrites an existing key file.
  EXPECT_EQ(Repository::Init(Local(dir / "third"), {"", key}).status().code(), ErrorCode::kConflict);
  auto repo = Repository::Open(Local(dir / "repo"), {"", key});
  ASSERT_TRUE(repo.ok()) << repo.status().message();
  EXPECT_EQ(*(*repo)->GetChunk(id), "secret data");
  EXPECT_FALSE((*repo)->ChangePassphrase("new passphrase", [] { return Status::Ok(); }).ok());
  std::filesystem::remove_all(dir);
}

TEST(Repository, PassphraseChangeKeepsTheDataAndRetiresTheOldPassphrase) {
  auto dir = std::filesystem::temp_directory_path() / ("pampa-repass-" + std::to_string(getpid()));
  std::string id;
  {
    auto repo = Repository::Init(Local(dir), {"old passphrase"});
    ASSERT_TRUE(repo.ok());
    uint64_t up = 0;
    id = *(*repo)->PutChunk("kept", &up);
    // A failing commit (say the new passphrase file could not be recorded) changes nothing.
    EXPECT_FALSE((*repo)->ChangePassphrase("other passphrase", [] { return Status::Internal("no"); }).ok());
    ASSERT_TRUE((*repo)->ChangePassphrase("new passphrase", [] { return Status::Ok(); }).ok());
  }
  EXPECT_FALSE(Repository::Open(Local(dir), {"other passphrase"}).ok());
  auto old = Repository::Open(Local(dir), {"old passphrase"});
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("wrong passphrase"), std::string::npos);
  auto repo = Repository::Open(Local(dir), {"new passphrase"});
  ASSERT_TRUE(repo.ok()) << repo.status().message();
  EXPECT_EQ(*(*repo)->GetChunk(id), "kept");
  std::filesystem::remove_all(dir);
}

TEST(Repository, TamperedManifestIsDetected) {
  for (std::string pass : {"secret", ""}) {
    auto store = NewMemoryObjectStore();
    ObjectStore* raw = store.get();
    auto repo = Repository::Init(std::move(store), {pass});
    ASSERT_TRUE(repo.ok());
    ASSERT_TRUE(
        (*repo)->WriteManifest(TestManifest({{"id", "b1"}, {"vm", "web"}, {"disks", nlohmann::json::array()}})).ok());
    std::string env = *raw->Get("backups/b1");
    auto pos = env.find(pass.empty() ? "web" : "\"body\":\"") + (pass.empty() ? 0 : 12);
    env[pos] = env[pos] == 'A' ? 'B' : 'A';
    ASSERT_TRUE(raw->Put("backups/b1", env).ok());
    EXPECT_FALSE((*repo)->ReadManifest("b1").ok()) << "passphrase '" << pass << "'";
  }
}

}  // namespace
}  // namespace pampa

namespace pampa {
namespace {

int64_t Day(int d, int hour = 12) { return (int64_t{1767225600} + d * 86400 + hour * 3600) * 1000; }  // 2026-01-01 + d

TEST(Retention, KeepsNewestPerPeriod) {
  std::vector<BackupStamp> b;
  for (int d = 0; d < 60; ++d) b.push_back({"d" + std::to_string(d), "vm", Day(d)});
  b.push_back({"d59-late", "vm", Day(59, 20)});
  RetentionPolicy p;
  p.keep_last = 2;
  p.keep_daily = 3;
  auto keep = BackupsToKeep(b, p);
  EXPECT_EQ(keep, (std::vector<std::string>{"d59-late", "d59", "d58", "d57"}));
  RetentionPolicy m;
  m.keep_monthly = 2;
  EXPECT_EQ(BackupsToKeep(b, m), (std::vector<std::string>{"d59-late", "d58"}));  // 1 March, then 28 February
}

// The previous backup's manifest, read beside the lock, counts only if it
// still exists once the lock is held: after a GC the backup waited for too.
TEST(Prune, LockForBackupSaysWhetherThePreviousBackupIsStillThere) {
  auto repo = Repository::Init(NewMemoryObjectStore(), {""}, 1 << 16);
  ASSERT_TRUE(repo.ok());
  ASSERT_TRUE(
      (*repo)->WriteManifest(TestManifest({{"id", "prev"}, {"vm", "web"}, {"disks", nlohmann::json::array()}})).ok());
  auto kept = LockForBackup(**repo, "backup-1", "prev");
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_TRUE(*kept);
  EXPECT_TRUE(*LockForBackup(**repo, "backup-2"));  // no previous backup: nothing to lose
  ASSERT_TRUE((*repo)->RemoveLock("backup-1").ok());
  ASSERT_TRUE((*repo)->RemoveLock("backup-2").ok());
  // A GC (its lock) is running when the backup comes; prev goes, then the
  // GC finishes while the backup waits (it looks every 500 ms).
  ASSERT_TRUE((*repo)->AddLock("gc-1").ok());
  std::thread gc([&] {
    while ((*repo)->ActiveLocks("backup-")->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE((*repo)->DeleteManifest("prev").ok());
    ASSERT_TRUE((*repo)->RemoveLock("gc-1").ok());
  });
  kept = LockForBackup(**repo, "backup-3", "prev");
  gc.join();
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_FALSE(*kept);
  EXPECT_EQ(*(*repo)->ActiveLocks(), (std::vector<std::string>{"backup-3"}));
}

TEST(Prune, RemovesManifestsThenUnreferencedChunksOnly) {
  auto repo = Repository::Init(NewMemoryObjectStore(), {""}, 1 << 16);
  ASSERT_TRUE(repo.ok());
  uint64_t up;
  auto shared = *(*repo)->PutChunk("shared", &up);
  auto old_only = *(*repo)->PutChunk("old only", &up);
  ASSERT_TRUE(
      (*repo)
          ->WriteManifest(TestManifest(
              {{"id", "old"}, {"vm", "web"}, {"created", Day(1)}, {"disks", {{{"chunks", {shared, old_only}}}}}}))
          .ok());
  ASSERT_TRUE(
      (*repo)
          ->WriteManifest(TestManifest(
              {{"id", "new"}, {"vm", "web"}, {"created", Day(2)}, {"disks", {{{"chunks", {shared, kZeroChunk}}}}}}))
          .ok());
  RetentionPolicy p;
  p.keep_last = 1;
  auto dry = Prune(**repo, p, "", true);
  ASSERT_TRUE(dry.ok());
  EXPECT_EQ((*dry)["removed"], nlohmann::json::array({"old"}));
  EXPECT_EQ((*repo)->ListBackups()->size(), 2u);  // dry run changed nothing
  // A running backup defers garbage collection.
  ASSERT_TRUE((*repo)->AddLock("backup-x").ok());
  auto deferred = Prune(**repo, p, "", false);
  ASSERT_TRUE(deferred.ok());
  EXPECT_NE((*deferred)["gc"].get<std::string>().find("deferred"), std::string::npos);
  EXPECT_TRUE((*repo)->GetChunk(old_only).ok());
  ASSERT_TRUE((*repo)->RemoveLock("backup-x").ok());
  auto gc = CollectGarbage(**repo);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ((*gc)["chunks_deleted"], 1);
  EXPECT_TRUE((*repo)->GetChunk(shared).ok());
  EXPECT_FALSE((*repo)->GetChunk(old_only).ok());
  EXPECT_FALSE(Prune(**repo, RetentionPolicy{}, "", false).ok());
}

}  // namespace
}  // namespace pampa

#include "jobs/backup_schedules.h"

namespace pampa {
namespace {

TEST(Schedule, NextDailyRunIsTheNextLocalOccurrence) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char hhmm[6];
  std::snprintf(hhmm, sizeof hhmm, "%02d:%02d", tm.tm_hour, tm.tm_min);
  int64_t next = NextDailyRun(hhmm, int64_t{now} * 1000);
  EXPECT_GT(next, int64_t{now} * 1000);                // this minute has started: tomorrow
  EXPECT_LE(next, (int64_t{now} + 25 * 3600) * 1000);  // (DST shifts allowed)
  EXPECT_TRUE(ValidateDailyTime("02:30").ok());
  EXPECT_FALSE(ValidateDailyTime("24:00").ok());
  EXPECT_FALSE(ValidateDailyTime("2:30").ok());
  EXPECT_FALSE(ValidateDailyTime("ab:cd").ok());
}

}  // namespace
}  // namespace pampa

#include "jobs/restore_drills.h"

namespace pampa {
namespace {

TEST(Drill, NextWeeklyRunIsThatWeekdayWithinAWeek) {
  std::time_t now = std::time(nullptr);
  for (int day = 0; day < 7; ++day) {
    int64_t next = NextWeeklyRun(day, "03:15", int64_t{now} * 1000);
    std::time_t at = next / 1000;
    std::tm tm{};
    localtime_r(&at, &tm);
    EXPECT_EQ(tm.tm_wday, day);
    EXPECT_EQ(tm.tm_hour, 3);
    EXPECT_EQ(tm.tm_min, 15);
    EXPECT_GT(next, int64_t{now} * 1000);
    EXPECT_LE(next, (int64_t{now} + 7 * 24 * 3600 + 3600) * 1000);
  }
  EXPECT_EQ(ParseWeekday("Sun"), 0);
  EXPECT_EQ(ParseWeekday("saturday"), 6);
  EXPECT_EQ(ParseWeekday("mo"), -1);
}

}  // namespace
}  // namespace pampa
