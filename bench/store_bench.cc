// store_bench: what the state store costs a caller, SQLite (one host) against
// etcd (a pool), in the same run: a Put, a Get, a compare-and-swap, and the
// List of 1,500 VM records that a pool-wide `vm list` reads (its p99 goal is
// 10 ms for the whole request). Starts its own etcd on loopback.
//
//   build/store_bench            (make bench-store)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/process.h"
#include "base/test_ports.h"
#include "store/store.h"

using namespace pampa;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
  double p50 = 0, p99 = 0;
};

Stats Measure(int n, const std::function<void(int)>& op) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    op(i);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

void Run(const char* name, Store& s) {
  // A VM record is ~1 KB of JSON.
  std::string record(1000, 'x');
  auto put = Measure(300, [&](int i) { (void)s.Put("bench/put/" + std::to_string(i), record); });
  auto get = Measure(300, [&](int i) { (void)s.Get("bench/put/" + std::to_string(i)); });
  auto cas = Measure(300, [&](int) {
    auto v = s.GetVersioned("bench/cas");
    (void)s.CompareAndPut("bench/cas", record, v.ok() && *v ? (*v)->mod_revision : 0);
  });
  for (int i = 0; i < 1500; ++i) (void)s.Put("vms/vm" + std::to_string(i), record);
  auto list = Measure(50, [&](int) { (void)s.List("vms/"); });
  std::printf("%-7s put p50 %6.2f p99 %6.2f | get p50 %6.2f p99 %6.2f | get+cas p50 %6.2f p99 %6.2f | "
              "list 1500 p50 %6.2f p99 %6.2f  (ms)\n",
              name, put.p50, put.p99, get.p50, get.p99, cas.p50, cas.p99, list.p50, list.p99);
}

}  // namespace

int main() {
  auto dir = std::filesystem::temp_directory_path() / ("pampa-store-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  {
    auto sqlite = OpenSqliteStore((dir / "state.db").string());
    if (!sqlite.ok()) return std::fprintf(stderr, "sqlite: %s\n", sqlite.status().message().c_str()), 1;
    Run("sqlite", **sqlite);
  }
  std::string client = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  std::string peer = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  auto pid = SpawnTied({"etcd", "--name", "bench", "--data-dir", (dir / "etcd").string(), "--listen-client-urls",
                            "http://" + client, "--advertise-client-urls", "http://" + client, "--listen-peer-urls",
                            "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer, "--initial-cluster",
                            "bench=http://" + peer, "--logger", "zap", "--log-level", "error"},
                           (dir / "etcd.log").string());
  if (!pid.ok()) return std::fprintf(stderr, "etcd: %s\n", pid.status().message().c_str()), 1;
  Result<std::unique_ptr<Store>> etcd = Status::Unavailable("not started");
  for (int i = 0; i < 200 && !etcd.ok(); ++i) {
    etcd = OpenEtcdStore(client, "/pampa/");
    if (!etcd.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (etcd.ok()) Run("etcd", **etcd);
  etcd = Status::Unavailable("closed");
  StopProcess(*pid, dir.string(), std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
  return 0;
}
