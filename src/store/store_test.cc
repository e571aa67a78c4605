// One conformance suite that every Store implementation passes: key/value
// calls, revisions, compare-and-swap and transactions here; watches in
// store_watch_test.cc; what only SQLite promises in sqlite_store_test.cc.
#include "store/store.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "base/mutex.h"
#include "base/test_ports.h"
#include "store/parsed_by_revision.h"
#include "store/store_test_util.h"

namespace pampa {
namespace {

using StoreTest = StoreConformance;

TEST_P(StoreTest, GetOfMissingKeyIsEmpty) {
  auto v = store_->Get("vms/none");
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
}

TEST_P(StoreTest, PutThenGetAndOverwrite) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  EXPECT_EQ(**store_->Get("vms/a"), "1");
  ASSERT_TRUE(store_->Put("vms/a", "2").ok());
  EXPECT_EQ(**store_->Get("vms/a"), "2");
}

TEST_P(StoreTest, CreateRefusesExistingKey) {
  ASSERT_TRUE(store_->Create("vms/a", "1").ok());
  auto st = store_->Create("vms/a", "2");
  EXPECT_EQ(st.code(), ErrorCode::kConflict);
  EXPECT_EQ(st.message(), "vms/a already exists");
  EXPECT_EQ(**store_->Get("vms/a"), "1");
}

TEST_P(StoreTest, ListIsPrefixOnlyAndOrdered) {
  ASSERT_TRUE(store_->Put("vms/b", "b").ok());
  ASSERT_TRUE(store_->Put("vms/a", "a").ok());
  ASSERT_TRUE(store_->Put("vmsx/c", "c").ok());
  ASSERT_TRUE(store_->Put("pools/default", "p").ok());
  auto l = store_->List("vms/");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].first, "vms/a");
  EXPECT_EQ((*l)[1].first, "vms/b");
}

TEST_P(StoreTest, DeleteIsIdempotent) {
  ASSERT_TRUE(store_->Put("k", "v").ok());
  ASSERT_TRUE(store_->Delete("k").ok());
  ASSERT_TRUE(store_->Delete("k").ok());
  EXPECT_FALSE(store_->Get("k")->has_value());
}

TEST_P(StoreTest, ValuesAreBinarySafeUtf8) {
  std::string v = "{\"name\":\"é\\u0000\"}\n";
  ASSERT_TRUE(store_->Put("k", v).ok());
  EXPECT_EQ(**store_->Get("k"), v);
}

TEST_P(StoreTest, ConcurrentCreatesHaveOneWinner) {
  std::atomic<int> wins{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      if (store_->Create("race", std::to_string(i)).ok()) ++wins;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST_P(StoreTest, EveryWriteTakesTheNextRevision) {
  EXPECT_EQ(*store_->Revision(), 0);
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Create("vms/b", "1").ok());
  ASSERT_TRUE(store_->Put("vms/a", "2").ok());
  EXPECT_EQ(*store_->Revision(), 3);
  auto a = store_->GetVersioned("vms/a");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->value, "2");
  EXPECT_EQ((*a)->mod_revision, 3);
  EXPECT_EQ((*a)->create_revision, 1);
  ASSERT_TRUE(store_->Delete("vms/a").ok());
  EXPECT_EQ(*store_->Revision(), 4);
  // Writes that change nothing take no revision.
  ASSERT_TRUE(store_->Delete("vms/a").ok());
  EXPECT_FALSE(store_->Create("vms/b", "2").ok());
  EXPECT_EQ(*store_->Revision(), 4);
  EXPECT_FALSE(store_->GetVersioned("vms/a")->has_value());
}

TEST_P(StoreTest, ListVersionedReadsItemsAtOneRevision) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Put("tasks/t", "x").ok());
  ASSERT_TRUE(store_->Put("vms/b", "2").ok());
  auto l = store_->ListVersioned("vms/");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->revision, 3);
  ASSERT_EQ(l->items.size(), 2u);
  EXPECT_EQ(l->items[0].first, "vms/a");
  EXPECT_EQ(l->items[0].second.mod_revision, 1);
  EXPECT_EQ(l->items[1].second.value, "2");
  EXPECT_EQ(l->items[1].second.mod_revision, 3);
}

// Each record is parsed again only once its revision changed; a deleted one is forgotten.
TEST_P(StoreTest, ParsedByRevisionParsesOnlyWhatChanged) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Put("vms/b", "2").ok());
  ParsedByRevision<int> parsed;
  int parses = 0;
  auto look = [&] {
    std::map<std::string, int> seen;
    auto l = store_->ListVersioned("vms/");
    EXPECT_TRUE(l.ok());
    parsed.Refresh(
        *l,
        [&](const std::string& v) {
          ++parses;
          return std::stoi(v);
        },
        [&](const std::string& key, int64_t, const int& n) { seen[key] = n; });
    return seen;
  };
  EXPECT_EQ(look(), (std::map<std::string, int>{{"vms/a", 1}, {"vms/b", 2}}));
  EXPECT_EQ(parses, 2);
  EXPECT_EQ(look().size(), 2u);
  EXPECT_EQ(parses, 2);
  ASSERT_TRUE(store_->Put("vms/b", "5").ok());
  ASSERT_TRUE(store_->Delete("vms/a").ok());
  ASSERT_TRUE(store_->Put("vms/a", "7").ok());  // a new record of the same name: parsed again
  EXPECT_EQ(look(), (std::map<std::string, int>{{"vms/a", 7}, {"vms/b", 5}}));
  EXPECT_EQ(parses, 4);
}

TEST_P(StoreTest, CompareAndPutWinsOnlyAtTheRevisionRead) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  int64_t seen = (*store_->GetVersioned("vms/a"))->mod_revision;
  ASSERT_TRUE(store_->CompareAndPut("vms/a", "2", seen).ok());
  Status st = store_->CompareAndPut("vms/a", "3", seen);
  EXPECT_EQ(st.code(), ErrorCode::kConflict);
  EXPECT_EQ(st.message(), "vms/a changed since revision 1 (now 2): re-read and retry");
  EXPECT_EQ(**store_->Get("vms/a"), "2");
  EXPECT_EQ(*store_->Revision(), 2);
}

TEST_P(StoreTest, CompareAndPutAtZeroCreatesOnlyAnAbsentKey) {
  ASSERT_TRUE(store_->CompareAndPut("vms/a", "1", 0).ok());
  EXPECT_EQ(store_->CompareAndPut("vms/a", "2", 0).code(), ErrorCode::kConflict);
  EXPECT_EQ(**store_->Get("vms/a"), "1");
}

TEST_P(StoreTest, CompareAndDeleteChecksTheRevision) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Put("vms/a", "2").ok());
  Status st = store_->CompareAndDelete("vms/a", 1);
  EXPECT_EQ(st.code(), ErrorCode::kConflict);
  EXPECT_NE(st.message().find("changed since revision 1 (now 2)"), std::string::npos) << st.message();
  EXPECT_TRUE(store_->Get("vms/a")->has_value());
  ASSERT_TRUE(store_->CompareAndDelete("vms/a", 2).ok());
  EXPECT_FALSE(store_->Get("vms/a")->has_value());
  st = store_->CompareAndPut("vms/a", "3", 2);
  EXPECT_EQ(st.message(), "vms/a changed since revision 2 (now absent): re-read and retry");
}

TEST_P(StoreTest, ConcurrentCompareAndPutLosesNoIncrement) {
  ASSERT_TRUE(store_->Put("counter", "0").ok());
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        for (;;) {  // the read-modify-write loop callers write
          auto v = store_->GetVersioned("counter");
          ASSERT_TRUE(v.ok() && v->has_value());
          Status st = store_->CompareAndPut("counter", std::to_string(std::stoi((*v)->value) + 1), (*v)->mod_revision);
          if (st.ok()) break;
          ASSERT_EQ(st.code(), ErrorCode::kConflict) << st.message();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(**store_->Get("counter"), "40");
}

TEST_P(StoreTest, TxnAppliesEveryOpAtOneRevision) {
  ASSERT_TRUE(store_->Put("drafts/a", "d").ok());
  auto rev = store_->Commit(Txn().IfAbsent("vms/a").Put("vms/a", "1").Put("runtime/a", "r").Delete("drafts/a"));
  ASSERT_TRUE(rev.ok()) << rev.status().message();
  EXPECT_EQ(*rev, 2);
  EXPECT_EQ((*store_->GetVersioned("vms/a"))->mod_revision, 2);
  EXPECT_EQ((*store_->GetVersioned("runtime/a"))->mod_revision, 2);
  EXPECT_FALSE(store_->Get("drafts/a")->has_value());
  EXPECT_EQ(*store_->Revision(), 2);
}

TEST_P(StoreTest, TxnWithAFailingCompareChangesNothing) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Put("snapshots/a/s1", "s").ok());
  auto rev = store_->Commit(Txn()
                                .IfValue("vms/a", "1")
                                .IfModRevision("snapshots/a/s1", 1)  // fails: it is at 2
                                .IfAbsent("vms/a")
                                .Put("vms/b", "2")
                                .DeletePrefix("snapshots/a/")
                                .Delete("vms/a"));
  ASSERT_FALSE(rev.ok());
  EXPECT_EQ(rev.status().code(), ErrorCode::kConflict);
  EXPECT_EQ(rev.status().message(), "snapshots/a/s1 changed since revision 1 (now 2): re-read and retry");
  EXPECT_EQ(*store_->Revision(), 2);
  EXPECT_FALSE(store_->Get("vms/b")->has_value());
  EXPECT_TRUE(store_->Get("snapshots/a/s1")->has_value());
  EXPECT_TRUE(store_->Get("vms/a")->has_value());
}

TEST_P(StoreTest, TxnComparesSayWhatFailed) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  EXPECT_EQ(store_->Commit(Txn().IfAbsent("vms/a").Put("x", "1")).status().message(), "vms/a already exists");
  EXPECT_EQ(store_->Commit(Txn().IfExists("vms/b").Put("x", "1")).status().message(), "vms/b does not exist");
  EXPECT_EQ(store_->Commit(Txn().IfValue("vms/a", "2").Put("x", "1")).status().message(),
            "vms/a does not hold the expected value (changed at revision 1): re-read and retry");
  EXPECT_TRUE(store_->Commit(Txn().IfExists("vms/a").IfValue("vms/a", "1").Put("x", "1")).ok());
}

TEST_P(StoreTest, TxnDeletePrefixRemovesOnlyThatPrefix) {
  for (const char* k : {"snapshots/web/s1", "snapshots/web/s2", "snapshots/web2/s1", "vms/web"}) {
    ASSERT_TRUE(store_->Put(k, "x").ok());
  }
  auto rev = store_->Commit(Txn().DeletePrefix("snapshots/web/").Delete("vms/web"));
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(*rev, 5);
  auto left = store_->List("");
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].first, "snapshots/web2/s1");
}

TEST_P(StoreTest, TxnThatChangesNothingKeepsTheRevision) {
  ASSERT_TRUE(store_->Put("a", "1").ok());
  auto rev = store_->Commit(Txn().Delete("absent").DeletePrefix("none/"));
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(*rev, 1);
  EXPECT_EQ(*store_->Revision(), 1);
}

TEST_P(StoreTest, TxnRefusesAKeyWrittenTwice) {
  EXPECT_EQ(store_->Commit(Txn().Put("a", "1").Put("a", "2")).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->Commit(Txn().Put("a", "1").Delete("a")).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->Commit(Txn().DeletePrefix("vms/").Put("vms/a", "1")).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->Commit(Txn().DeletePrefix("").Put("a", "1")).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->Commit(Txn().IfAbsent("").Put("a", "1")).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(*store_->Revision(), 0);
  // Deletes may overlap.
  EXPECT_TRUE(store_->Commit(Txn().DeletePrefix("vms/").Delete("vms/a").Put("b", "1")).ok());
}

TEST_P(StoreTest, ConcurrentIfAbsentTxnsHaveOneWinner) {
  std::atomic<int> wins{0};
  std::atomic<int> conflicts{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      auto r = store_->Commit(
          Txn().IfAbsent("vms/race").Put("vms/race", std::to_string(i)).Put("owners/" + std::to_string(i), "1"));
      if (r.ok()) ++wins;
      if (r.status().code() == ErrorCode::kConflict) ++conflicts;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(conflicts.load(), 7);
  // The winner's whole transaction landed, nobody else's did.
  auto owners = store_->List("owners/");
  ASSERT_EQ(owners->size(), 1u);
  EXPECT_EQ((*owners)[0].first, "owners/" + **store_->Get("vms/race"));
  EXPECT_EQ(*store_->Revision(), 1);
}

// Hosts of a pool share one etcd, each through its own store: a host reads its
// own writes at once, another host's within the watch stream's delay, and a
// compare-and-put at a revision read from a lagging mirror loses cleanly.
TEST_P(StoreTest, StoresSharingAnEtcdSeeEachOthersWrites) {
  if (!IsEtcd()) GTEST_SKIP() << "only etcd is shared between processes";
  auto other = OpenEtcdStore(etcd_endpoint_, "/pampa/", EtcdOptions());
  ASSERT_TRUE(other.ok()) << other.status().message();
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  EXPECT_EQ(**store_->Get("vms/a"), "1");
  auto seen = [](Store& s, const std::string& want) {
    for (int i = 0; i < 300; ++i) {
      auto v = s.Get("vms/a");
      if (v.ok() && v->has_value() && **v == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  EXPECT_TRUE(seen(**other, "1"));
  auto v = (*other)->GetVersioned("vms/a");
  ASSERT_TRUE(v.ok() && v->has_value()) << (v.ok() ? std::string("absent") : v.status().message());
  ASSERT_TRUE((*other)->CompareAndPut("vms/a", "2", (*v)->mod_revision).ok());
  EXPECT_EQ(**(*other)->Get("vms/a"), "2");
  EXPECT_TRUE(seen(*store_, "2"));
  // A compare-and-put at the stale revision 1 loses, whatever either mirror says.
  EXPECT_EQ(store_->CompareAndPut("vms/a", "3", (*v)->mod_revision).code(), ErrorCode::kConflict);
  EXPECT_EQ(**(*other)->Get("vms/a"), "2");
}

// A pool's etcd lets in only the pool's hosts, and a host trusts only the
// pool's etcd: a certificate of another CA is refused, on either side, with
// a message naming the side that refused.
TEST_P(StoreTest, CertificatesOfAnotherPoolAreRefused) {
  if (GetParam() != StoreKind::kEtcdTls) GTEST_SKIP() << "only for etcd with TLS";
  auto other = MakeTlsFiles(dir_ / "other-pool");
  ASSERT_TRUE(other.ok()) << other.status().message();

  StoreOptions stranger = EtcdOptions();
  stranger.tls.cert = other->cert;
  stranger.tls.key = other->key;
  auto s = OpenEtcdStore(etcd_endpoint_, "/pampa/", stranger);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kUnauthorized) << s.status().message();
  EXPECT_EQ(s.status().message(), "etcd at " + etcd_endpoint_ +
                                      " refuses this host's client certificate (sslv3 alert bad certificate): it "
                                      "must be issued by the CA etcd trusts (--trusted-ca-file)");

  StoreOptions misled = EtcdOptions();
  misled.tls = *other;
  s = OpenEtcdStore(etcd_endpoint_, "/pampa/", misled);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kUnauthorized) << s.status().message();
  EXPECT_EQ(s.status().message(), "this host refuses the certificate of etcd at " + etcd_endpoint_ +
                                      ": unable to get local issuer certificate (etcd's --cert-file must be issued "
                                      "by the pool CA for this address)");
}

// A host configured for TLS against a plain etcd, or the other way round,
// is told so rather than getting a protocol error.
TEST_P(StoreTest, TlsAndPlainEtcdDoNotMix) {
  if (!IsEtcd()) GTEST_SKIP() << "only for etcd";
  StoreOptions options;
  if (GetParam() == StoreKind::kEtcd) {
    auto files = MakeTlsFiles(dir_ / "tls");
    ASSERT_TRUE(files.ok()) << files.status().message();
    options.tls = *files;
  }
  auto s = OpenEtcdStore(etcd_endpoint_, "/pampa/", options);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kUnavailable);
  if (GetParam() == StoreKind::kEtcd) {
    EXPECT_EQ(s.status().message(), "etcd at " + etcd_endpoint_ +
                                        " does not speak TLS (start it with --cert-file/--key-file/--client-cert-auth "
                                        "--trusted-ca-file and https:// client URLs, or open the store without TLS)");
  } else {
    EXPECT_EQ(s.status().message(), "etcd at " + etcd_endpoint_ +
                                        " closed the connection without an answer to /v3/kv/range (if it serves "
                                        "https, open the store with TLS: the pool's certificates)");
  }
}

// Waits up to timeout for key to be absent.
bool GoneWithin(Store& store, const std::string& key, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto v = store.Get(key);
    if (v.ok() && !v->has_value()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST_P(StoreTest, LeasedKeysGoWithTheirLease) {
  auto lease = store_->GrantLease(std::chrono::seconds(30));
  ASSERT_TRUE(lease.ok()) << lease.status().message();
  ASSERT_TRUE(store_->PutWithLease("hosts/a/alive", "1", *lease).ok());
  ASSERT_TRUE(store_->PutWithLease("locks/vm", "a", *lease).ok());
  ASSERT_TRUE(store_->Put("hosts/a/info", "stays").ok());
  EXPECT_EQ(**store_->Get("hosts/a/alive"), "1");
  ASSERT_TRUE(store_->KeepAlive(*lease).ok());

  std::vector<WatchEvent> seen;
  Mutex mu;
  auto watch = store_->WatchPrefix("hosts/", 0, [&](const WatchEvent& ev) {
    MutexLock lock(&mu);
    seen.push_back(ev);
  });
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(store_->RevokeLease(*lease).ok());
  EXPECT_TRUE(GoneWithin(*store_, "hosts/a/alive", std::chrono::seconds(2)));
  EXPECT_TRUE(GoneWithin(*store_, "locks/vm", std::chrono::seconds(2)));
  EXPECT_EQ(**store_->Get("hosts/a/info"), "stays");
  // Watchers see the delete; an ended lease can be neither renewed nor used.
  for (int i = 0; i < 100; ++i) {
    {
      MutexLock lock(&mu);
      if (!seen.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    MutexLock lock(&mu);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].type, WatchEvent::Type::kDelete);
    EXPECT_EQ(seen[0].key, "hosts/a/alive");
  }
  EXPECT_EQ(store_->KeepAlive(*lease).code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->PutWithLease("hosts/a/alive", "2", *lease).code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->RevokeLease(*lease).ok());  // ended already: fine
}

// A TCP proxy on loopback to target (HOST:PORT) that can go quiet: it then
// passes no more bytes on the connections it holds, without closing them,
// and refuses new ones. That is what an etcd member that lost power looks
// like from another host: nothing ends the connections already open.
class QuietableProxy {
 public:
  explicit QuietableProxy(const std::string& target) : target_(target) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    port_ = FreeLoopbackPort();
    sockaddr_in addr = Loopback(port_);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener_, 16) != 0) {
      ADD_FAILURE() << "the proxy cannot listen on port " << port_ << ": " << strerror(errno);
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~QuietableProxy() {
    stop_ = true;
    thread_.join();
    if (listener_ >= 0) close(listener_);
    for (auto& [a, b] : pairs_) close(a), close(b);
    for (int fd : held_) close(fd);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  // As a member that died: it refuses new connections and its open ones go silent.
  void GoQuiet() { quiet_ = true; }
  // As a member that froze: its kernel still accepts, nothing answers.
  void GoSilent() { silent_ = true; }

 private:
  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return addr;
  }
  void Run() {
    int target_port = std::stoi(target_.substr(target_.rfind(':') + 1));
    while (!stop_) {
      if (quiet_) {
        if (listener_ >= 0) close(listener_), listener_ = -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      if (silent_) {
        pollfd p{listener_, POLLIN, 0};
        if (poll(&p, 1, 20) > 0) held_.push_back(accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
        continue;
      }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto& [a, b] : pairs_) fds.push_back({a, POLLIN, 0}), fds.push_back({b, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr = Loopback(target_port);
        if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
          pairs_.emplace_back(client, upstream);
        } else {
          close(client), close(upstream);
        }
        continue;
      }
      for (size_t i = pairs_.size(); i-- > 0;) {
        bool ended = false;
        for (int side = 0; side < 2; ++side) {
          if (!(fds[1 + 2 * i + side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
          int from = side == 0 ? pairs_[i].first : pairs_[i].second,
              to = side == 0 ? pairs_[i].second : pairs_[i].first;
          char buf[65536];
          ssize_t n = read(from, buf, sizeof buf);
          if (n <= 0 || write(to, buf, static_cast<size_t>(n)) != n) ended = true;
        }
        if (ended) {  // either side closed: so does the other
          close(pairs_[i].first), close(pairs_[i].second);
          pairs_.erase(pairs_.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    }
  }

  const std::string target_;
  int listener_ = -1, port_ = 0;
  std::vector<std::pair<int, int>> pairs_;  // (client, upstream), touched by the thread only until it ends
  std::vector<int> held_;                   // accepted while silent
  std::atomic<bool> stop_{false}, quiet_{false}, silent_{false};
  std::thread thread_;
};

// A host's store whose first etcd is member, then etcd itself.
Result<std::unique_ptr<Store>> OpenBehind(const QuietableProxy& member, const std::string& etcd,
                                          const StoreOptions& options) {
  return OpenEtcdStore(member.endpoint() + "," + etcd, "/pampa/", options);
}

// Reads of a host whose watch stream went quiet (the etcd member it followed
// died without closing it) do not stay behind: the next answer of another
// member shows a newer revision, reads go to etcd, and the stream is
// reopened on a member that answers.
TEST_P(StoreTest, AWatchStreamThatGoesQuietIsReopenedAndReadsDoNotStayBehind) {
  if (GetParam() != StoreKind::kEtcd) GTEST_SKIP() << "only for plain etcd (a proxy in between)";
  QuietableProxy member(etcd_endpoint_);
  auto s = OpenBehind(member, etcd_endpoint_, EtcdOptions());
  ASSERT_TRUE(s.ok()) << s.status().message();
  Store& host = **s;
  auto lease = host.GrantLease(std::chrono::seconds(10));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(host.Put("vms/a", "1").ok());
  member.GoQuiet();
  ASSERT_TRUE(store_->Put("vms/a", "2").ok());
  ASSERT_TRUE(store_->Put("vms/b", "2").ok());
  // As pampad does: the host keeps its lease alive (the first try waits out
  // the quiet connection), and reads.
  auto start = std::chrono::steady_clock::now();
  bool fresh = false, watched = false;
  std::atomic<bool> saw_c{false};  // before the watch whose callback sets it
  std::unique_ptr<Watch> watch;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(25) && !(fresh && watched)) {
    (void)host.KeepAlive(*lease);
    auto v = host.Get("vms/a");
    if (!fresh && v.ok() && v->has_value() && **v == "2") {
      fresh = true;
      // the stream itself follows etcd again: a watch sees a later write
      auto w = host.WatchPrefix("vms/c", 0, [&](const WatchEvent&) { saw_c = true; });
      ASSERT_TRUE(w.ok()) << w.status().message();
      watch = std::move(*w);
      ASSERT_TRUE(store_->Put("vms/c", "3").ok());
    }
    watched = saw_c;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(fresh) << "reads stayed behind the quiet stream";
  EXPECT_TRUE(watched) << "the watch stream was not reopened";
  auto b = host.Get("vms/b");
  ASSERT_TRUE(b.ok() && b->has_value()) << b.status().message();
  EXPECT_EQ(**b, "2");
}

// A member that accepts connections and never answers (frozen, or its
// host half dead) costs one call its timeout, not every new connection.
TEST_P(StoreTest, AMemberThatAcceptsAndNeverAnswersCostsOneTimeoutNotOneEachConnection) {
  if (!IsEtcd()) GTEST_SKIP() << "only for etcd";
  QuietableProxy member(etcd_endpoint_);
  auto s = OpenBehind(member, etcd_endpoint_, EtcdOptions());
  ASSERT_TRUE(s.ok()) << s.status().message();
  Store& host = **s;
  ASSERT_TRUE(host.Put("vms/a", "1").ok());
  member.GoSilent();
  (void)host.Put("vms/a", "2");  // on the kept connection: it waits out the timeout
  // Calls at once need new connections: none of them waits on the silent
  // member (the fault: each waited its 5 s timeout and failed). A round may
  // take a second: a write waits for the watch stream to show it, and the
  // stream leaves the silent member only 2 s after it fell behind.
  for (int round = 0; round < 3; ++round) {
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> callers;
    std::atomic<int> failed{0};
    for (int i = 0; i < 4; ++i) {
      callers.emplace_back([&, i] {
        if (!host.Put("vms/" + std::to_string(round) + "-" + std::to_string(i), "x").ok()) ++failed;
      });
    }
    for (auto& t : callers) t.join();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    EXPECT_EQ(failed, 0) << "round " << round;
    EXPECT_LT(took.count(), 4000) << "round " << round << " waited on the silent member";
  }
}

TEST_P(StoreTest, ALeaseNotKeptAliveExpiresAndOneKeptAliveStays) {
  auto lapsing = store_->GrantLease(std::chrono::seconds(2));
  auto kept = store_->GrantLease(std::chrono::seconds(2));
  ASSERT_TRUE(lapsing.ok() && kept.ok());
  ASSERT_TRUE(store_->PutWithLease("hosts/a/alive", "1", *lapsing).ok());
  ASSERT_TRUE(store_->PutWithLease("hosts/b/alive", "1", *kept).ok());
  // A key written again without its lease leaves it: it stays when the lease ends.
  ASSERT_TRUE(store_->PutWithLease("hosts/c/alive", "1", *lapsing).ok());
  ASSERT_TRUE(store_->Put("hosts/c/alive", "2").ok());
  auto start = std::chrono::steady_clock::now();
  bool gone = false;
  // etcd revokes an expired lease within half a second, but when that
  // revoke does not go through at once (a busy machine) it tries again only
  // 3 s later (its lessor's expiredLeaseRetryInterval).
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(15)) {
    ASSERT_TRUE(store_->KeepAlive(*kept).ok());
    auto v = store_->Get("hosts/a/alive");
    if (v.ok() && !v->has_value()) {
      gone = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  EXPECT_TRUE(gone);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));  // not before its ttl
  EXPECT_EQ(**store_->Get("hosts/b/alive"), "1");
  EXPECT_EQ(**store_->Get("hosts/c/alive"), "2");
  EXPECT_EQ(store_->KeepAlive(*lapsing).code(), ErrorCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(AllStores, StoreTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite, StoreKind::kEtcd,
                                           StoreKind::kEtcdTls),
                         PrintStoreKind);

}  // namespace
}  // namespace pampa
