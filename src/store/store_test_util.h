// Test helpers of the Store conformance suite: a fixture that runs each test
// against every implementation, and a recorder of watch events.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/process.h"
#include "base/test_ports.h"
#include "store/store.h"
#include "tls/pool_ca.h"

namespace pampa {

enum class StoreKind { kMemory, kSqlite, kEtcd, kEtcdTls };

inline std::string PrintStoreKind(const ::testing::TestParamInfo<StoreKind>& info) {
  switch (info.param) {
    case StoreKind::kMemory:
      return "Memory";
    case StoreKind::kSqlite:
      return "Sqlite";
    case StoreKind::kEtcd:
      return "Etcd";
    case StoreKind::kEtcdTls:
      return "EtcdTls";
  }
  return "?";
}

// A new pool CA in dir (ca.pem) and two certificates it issued: etcd's, for
// 127.0.0.1 (etcd.pem, etcd-key.pem), and a client's (client.pem,
// client-key.pem). Returns the files a store opens that etcd with.
inline Result<StoreOptions::Tls> MakeTlsFiles(const std::filesystem::path& dir) {
  PAMPA_ASSIGN_OR_RETURN(tls::Issued ca, tls::MakeCa("test"));
  PAMPA_ASSIGN_OR_RETURN(tls::Issued etcd, tls::IssueCert(ca, "etcd", {"127.0.0.1"}));
  PAMPA_ASSIGN_OR_RETURN(tls::Issued client, tls::IssueCert(ca, "client", {}));
  PAMPA_RETURN_IF_ERROR(MakeDirs(dir.string()));
  for (const auto& [name, pem] : std::vector<std::pair<std::string, std::string>>{{"ca.pem", ca.cert},
                                                                                  {"etcd.pem", etcd.cert},
                                                                                  {"etcd-key.pem", etcd.key},
                                                                                  {"client.pem", client.cert},
                                                                                  {"client-key.pem", client.key}}) {
    PAMPA_RETURN_IF_ERROR(WriteFileAtomic((dir / name).string(), pem, name.ends_with("key.pem") ? 0600 : 0644));
  }
  return StoreOptions::Tls{
      .ca = (dir / "ca.pem").string(), .cert = (dir / "client.pem").string(), .key = (dir / "client-key.pem").string()};
}

// A real etcd (Debian's etcd-server) for one test: its own data directory and
// loopback ports, stopped with the test (and killed with the test process).
class EtcdServer {
 public:
  ~EtcdServer() {
    if (pid_ > 0) StopProcess(pid_, dir_, std::chrono::seconds(5));
  }
  // Starts etcd in dir; returns its client endpoint, HOST:PORT (it answers a
  // moment later). With tls, etcd serves https with a certificate of a new
  // pool CA (MakeTlsFiles in dir/tls) and lets in only clients with a
  // certificate of that CA, such as client_tls().
  Result<std::string> Start(const std::filesystem::path& dir, bool tls = false) {
    if (!HaveExecutable("etcd")) return Status::Unavailable("etcd is not installed (tools/install-deps installs it)");
    dir_ = dir.string();
    std::string client = "127.0.0.1:" + std::to_string(FreeLoopbackPort()),
                peer = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
    std::string scheme = tls ? "https://" : "http://";
    std::vector<std::string> argv = {"etcd",
                                     "--name",
                                     "test",
                                     "--data-dir",
                                     dir_ + "/etcd",
                                     "--listen-client-urls",
                                     scheme + client,
                                     "--advertise-client-urls",
                                     scheme + client,
                                     "--listen-peer-urls",
                                     "http://" + peer,
                                     "--initial-advertise-peer-urls",
                                     "http://" + peer,
                                     "--initial-cluster",
                                     "test=http://" + peer,
                                     "--logger",
                                     "zap",
                                     "--log-level",
                                     "error"};
    if (tls) {
      std::filesystem::path files = dir / "tls";
      PAMPA_ASSIGN_OR_RETURN(client_tls_, MakeTlsFiles(files));
      argv.insert(argv.end(),
                  {"--cert-file", (files / "etcd.pem").string(), "--key-file", (files / "etcd-key.pem").string(),
                   "--client-cert-auth", "--trusted-ca-file", (files / "ca.pem").string()});
    }
    auto pid = SpawnTied(argv, dir_ + "/etcd.log");
    if (!pid.ok()) return pid.status();
    pid_ = *pid;
    return client;
  }
  // The files a store opens this etcd with: empty for plain HTTP.
  const StoreOptions::Tls& client_tls() const { return client_tls_; }

 private:
  pid_t pid_ = 0;
  std::string dir_;
  StoreOptions::Tls client_tls_;
};

// A fresh, empty store of the kind under test for every test; SQLite and etcd
// in a temporary directory removed afterwards.
class StoreConformance : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (GetParam() != StoreKind::kMemory) {
      const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
      std::string name = std::string(info->test_suite_name()) + "-" + info->name();
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
      dir_ = std::filesystem::temp_directory_path() / ("pampa-store-" + std::to_string(getpid()) + "-" + name);
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
    }
    Open(StoreOptions());
  }
  void TearDown() override {
    store_.reset();
    etcd_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  bool IsEtcd() const { return GetParam() == StoreKind::kEtcd || GetParam() == StoreKind::kEtcdTls; }
  // options for a store of the etcd under test (with its client certificate
  // when it serves TLS).
  StoreOptions EtcdOptions(StoreOptions options = {}) const {
    if (etcd_) options.tls = etcd_->client_tls();
    return options;
  }

  // Replaces the store under test by one opened with options (SQLite: the
  // same file again; etcd: the same server; memory: an empty store).
  void Open(const StoreOptions& options) {
    store_.reset();
    if (GetParam() == StoreKind::kMemory) {
      store_ = NewMemoryStore(options);
      return;
    }
    if (IsEtcd()) {
      if (!etcd_) {
        etcd_ = std::make_unique<EtcdServer>();
        auto ep = etcd_->Start(dir_, GetParam() == StoreKind::kEtcdTls);
        ASSERT_TRUE(ep.ok()) << ep.status().message();
        etcd_endpoint_ = *ep;
      }
      // etcd takes a moment to start answering.
      Result<std::unique_ptr<Store>> s = Status::Unavailable("not tried");
      for (int i = 0; i < 200 && !s.ok(); ++i) {
        s = OpenEtcdStore(etcd_endpoint_, "/pampa/", EtcdOptions(options));
        if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ASSERT_TRUE(s.ok()) << s.status().message();
      store_ = std::move(s.value());
      return;
    }
    auto s = OpenSqliteStore((dir_ / "state.db").string(), options);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s.value());
  }

  std::unique_ptr<EtcdServer> etcd_;  // declared before store_: the store goes first
  std::unique_ptr<Store> store_;
  std::filesystem::path dir_;
  std::string etcd_endpoint_;
};

// Records the events a watch delivers. Declare it before the Watch, so that
// the watch stops before the recorder goes away.
class EventLog {
 public:
  std::function<void(const WatchEvent&)> Callback() {
    return [this](const WatchEvent& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
      cv_.notify_all();
    };
  }
  // The events once there are at least n, or those seen after 10 s.
  std::vector<WatchEvent> WaitFor(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return events_.size() >= n; });
    return events_;
  }
  std::vector<WatchEvent> Events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
};

// "put vms/a=1 @3", "delete vms/a @4", "canceled @5": one string per event
// so that a failed expectation shows the whole sequence.
inline std::string Describe(const WatchEvent& e) {
  switch (e.type) {
    case WatchEvent::Type::kPut:
      return "put " + e.key + "=" + e.value + " @" + std::to_string(e.revision);
    case WatchEvent::Type::kDelete:
      return "delete " + e.key + " @" + std::to_string(e.revision);
    case WatchEvent::Type::kCanceled:
      return "canceled @" + std::to_string(e.revision);
  }
  return "?";
}

inline std::vector<std::string> Describe(const std::vector<WatchEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(Describe(e));
  return out;
}

}  // namespace pampa
