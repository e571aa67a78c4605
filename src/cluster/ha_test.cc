#include "cluster/ha.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "base/clock.h"
#include "base/fs.h"
#include "base/process.h"
#include "cluster/fence_agent.h"
#include "net/networks.h"
#include "qemu/accel.h"
#include "storage/pools.h"
#include "task/tasks.h"
#include "vm/vm_spec.h"

namespace pampa {
namespace {

using namespace std::chrono_literals;

TEST(FenceAgentTest, ArmLinesRoundTripAndBadOnesAreRefused) {
  std::vector<FenceTarget> targets = {{4242, "11111111-2222-3333-4444-555555555555"},
                                      {77, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}};
  std::string line = ArmLine(123456, targets);
  int64_t deadline = 0;
  std::vector<FenceTarget> back;
  ASSERT_TRUE(ParseArm(line, &deadline, &back).ok());
  EXPECT_EQ(deadline, 123456);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].pid, 77);
  EXPECT_EQ(back[1].uuid, targets[1].uuid);
  ASSERT_TRUE(ParseArm("arm 5", &deadline, &back).ok());
  EXPECT_TRUE(back.empty());
  for (const char* bad : {"", "disarm", "arm", "arm -1", "arm 5 1 11111111-2222-3333-4444-555555555555", "arm 5 42",
                          "arm 5 42 short", "arm 5 x"}) {
    EXPECT_FALSE(ParseArm(bad, &deadline, &back).ok()) << bad;
  }
}

TEST(HaTest, RecordsAndStatesRoundTrip) {
  HaRecord r;
  r.state = HaState::kRecovering;
  r.host = "h2";
  r.to = "h3";
  r.lost_ms = 99;
  r.tries = 2;
  r.failed_on = {"h1"};
  r.reason = "no room";
  HaRecord back = HaRecordFromJson(ToJson(r));
  EXPECT_EQ(back.state, HaState::kRecovering);
  EXPECT_EQ(back.to, "h3");
  EXPECT_EQ(back.tries, 2);
  EXPECT_EQ(back.failed_on, std::vector<std::string>{"h1"});
  HaState s;
  EXPECT_TRUE(ParseHaState("failed", &s));
  EXPECT_EQ(s, HaState::kFailed);
  EXPECT_FALSE(ParseHaState("running", &s));
}

// The real agent (pampa-fence, built beside this test) guarding a process
// whose command line carries a VM's uuid, as QEMU's does.
class FenceAgentProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("fence-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::error_code ec;
    agent_exe_ = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "pampa-fence").string();
  }
  void TearDown() override {
    for (pid_t p : children_) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
    // The agent exits on its own once idle; end it now.
    (void)::pampa::Run({"pkill", "-f", (dir_ / "fence.sock").string()});
    std::filesystem::remove_all(dir_);
  }
  // A child whose command line contains uuid.
  pid_t Guest(const std::string& uuid) {
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", "sleep 60", uuid.c_str(), nullptr);
      _exit(127);
    }
    children_.push_back(pid);
    // Until exec has happened, its command line is the test's.
    for (int i = 0; i < 200 && !ProcessAlive(pid, uuid); ++i) std::this_thread::sleep_for(5ms);
    return pid;
  }
  // Reaped (killed) within timeout.
  bool Dies(pid_t pid, std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  std::filesystem::path dir_;
  std::string agent_exe_;
  std::vector<pid_t> children_;
};

TEST_F(FenceAgentProcessTest, KillsAtTheDeadlineUnlessMovedAndOutlivesItsClient) {
  if (!std::filesystem::exists(agent_exe_)) GTEST_SKIP() << "no " << agent_exe_;
  const std::string a = "11111111-2222-3333-4444-555555555555", b = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
  pid_t pa = Guest(a), pb = Guest(b);
  {
    FenceAgent agent(agent_exe_, (dir_ / "fence.sock").string(), (dir_ / "fence.log").string());
    // A wrong uuid for pb's pid: the agent must not take it (pid reuse guard).
    ASSERT_TRUE(agent.Arm(std::chrono::steady_clock::now() + 400ms, {{pa, a}, {pb, a}}).ok());
    ASSERT_TRUE(agent.Arm(std::chrono::steady_clock::now() + 400ms, {{pa, a}, {pb, a}}).ok());
    // Renewed in time: nothing dies.
    for (int i = 0; i < 6; ++i) {
      std::this_thread::sleep_for(100ms);
      ASSERT_TRUE(agent.Arm(std::chrono::steady_clock::now() + 400ms, {{pa, a}, {pb, a}}).ok());
    }
    EXPECT_FALSE(Dies(pa, 0ms));
  }  // pampad "dies": the connection closes, the deadline stands
  EXPECT_TRUE(Dies(pa, 2s)) << "the guarded process outlived the deadline";
  EXPECT_FALSE(Dies(pb, 300ms)) << "a process that was not the named VM's was killed";
  auto log = ReadFile((dir_ / "fence.log").string());
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("fenced: killed QEMU pid " + std::to_string(pa)), std::string::npos) << *log;

  // A restarted pampad finds the same agent (no second one) and takes over.
  FenceAgent again(agent_exe_, (dir_ / "fence.sock").string(), (dir_ / "fence.log").string());
  ASSERT_TRUE(again.Arm(std::chrono::steady_clock::now() + 300ms, {{pb, b}}).ok());
  EXPECT_TRUE(Dies(pb, 2s));
  auto log2 = ReadFile((dir_ / "fence.log").string());
  ASSERT_TRUE(log2.ok());
  EXPECT_EQ(log2->find("listening on"), log2->rfind("listening on")) << "a second agent started:\n" << *log2;
}

// The manager's decisions on a store (a pool of records, no QEMU): this
// host (h1) is the only online host and too small, so the HA VMs of lost h2
// wait, with the reason as an event; once h3 with room joins, they go to h3
// in one transaction each, highest priority first.
class HaManagerTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;
  void Host(const std::string& name, uint64_t memory_gib, bool alive) {
    ASSERT_TRUE(store_
                    ->Put("hosts/" + name + "/info", json{{"name", name},
                                                          {"url", "http://10.0.0.9:8006"},
                                                          {"cpus", 4},
                                                          {"memory_bytes", memory_gib << 30},
                                                          {"heartbeat_ms", NowMs()}}
                                                         .dump())
                    .ok());
    if (alive) {
      ASSERT_TRUE(store_->Put(HostAliveKey(name), "1").ok());
    }
  }
  void HaVm(const std::string& name, int priority, const std::string& state) {
    VmSpec s;
    s.name = name;
    s.uuid = NewUuid();
    s.memory_mib = 2048;
    s.host = "h2";
    s.ha = true;
    s.ha_priority = priority;
    ASSERT_TRUE(store_->Put("vms/" + name, ToJson(s).dump()).ok());
    ASSERT_TRUE(store_->Put(HostRuntimeKey("h2", name), json{{"pid", 42}, {"state", state}}.dump()).ok());
  }
  std::string Events() {
    std::string all;
    auto events = store_->List("ha/events/");
    for (auto& [k, v] : *events) {
      json e = json::parse(v);
      all += "vm " + e.value("vm", "") + ": " + e.value("message", "") + "\n";
    }
    return all;
  }
  // Waits for pred over the store, a few seconds at most.
  bool Eventually(const std::function<bool()>& pred) {
    for (int i = 0; i < 100; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  std::string HostOf(const std::string& vm) {
    auto v = store_->Get("vms/" + vm);
    return v.ok() && *v ? json::parse(**v).value("host", "") : "";
  }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  EventBus events_;
};

TEST_F(HaManagerTest, WaitsWithTheReasonThenPlacesByPriorityOnAHostWithRoom) {
  Tasks tasks(*store_, events_);
  Storage storage(*store_, {});
  Networks networks(*store_, "/tmp");
  AccelProbe accel("/nonexistent", "", "/tmp");
  VmManager vms({"/tmp", "/tmp", "h1"}, *store_, storage, networks, tasks, events_, accel);
  Cluster cluster(*store_, events_, {"h1", "http://10.0.0.1:8006", "t", true}, "");
  FenceAgent agent("/nonexistent", "/nonexistent", "/nonexistent");
  HaConfig config;
  config.tick = 50ms;
  Host("h1", 1, true);    // this host: too small for a 2 GiB VM
  Host("h2", 64, false);  // lost: its lease ended
  HaVm("low", 1, "running");
  HaVm("high", 900, "running");
  HaVm("off", 500, "stopped");  // stopped by its user: stays where it is
  // A record left by a deleted VM of that name, which failed: it goes.
  ASSERT_TRUE(store_->Put("ha/state/gone", ToJson(HaRecord{HaState::kFailed, "h2", "", 0, 3, {}, "x"}).dump()).ok());
  HaManager ha(*store_, cluster, vms, events_, agent, config);
  ha.Start();

  ASSERT_TRUE(Eventually([&] { return Events().find("vm high: cannot be placed") != std::string::npos; })) << Events();
  EXPECT_NE(Events().find("of memory free"), std::string::npos) << Events();
  EXPECT_EQ(HostOf("high"), "h2");
  EXPECT_TRUE(Eventually([&] { return !*store_->Get("ha/state/gone"); }));
  auto report = ha.Report();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ((*report)["manager"], "h1");
  std::map<std::string, std::string> states;
  for (auto& v : (*report)["vms"]) states[v["name"]] = v["state"];
  EXPECT_EQ(states["high"], "fenced");
  EXPECT_EQ(states["off"], "stopped");

  Host("h3", 64, true);
  ASSERT_TRUE(Eventually([&] { return HostOf("high") == "h3" && HostOf("low") == "h3"; })) << Events();
  EXPECT_EQ(HostOf("off"), "h2");
  auto rec = HaRecordFromJson(json::parse(**store_->Get("ha/state/high")));
  EXPECT_EQ(rec.state, HaState::kRecovering);
  EXPECT_EQ(rec.to, "h3");
  EXPECT_FALSE(*store_->Get(HostRuntimeKey("h2", "high")));  // the lost host's record went with the move
  std::string events = Events();
  // Priority order: high was given away before low.
  size_t high = events.find("vm high: host h2 lost"), low = events.find("vm low: host h2 lost");
  ASSERT_NE(high, std::string::npos) << events;
  ASSERT_NE(low, std::string::npos) << events;
  EXPECT_LT(high, low);
  EXPECT_NE(events.find("starting the VM on host h3"), std::string::npos);
  ha.Stop();
}

}  // namespace
}  // namespace pampa
