#include "cluster/cluster.h"

#include <gtest/gtest.h>

#include "base/clock.h"
#include "cluster/disk_mirror.h"
#include "vm/vm_spec.h"

namespace pampa {
namespace {

using json = nlohmann::json;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<Cluster>(*store_, events_, ClusterConfig{"h1", "http://10.0.0.1:8006", "t", true}, "");
  }
  // A lost host is one without its alive key (its lease ended).
  void AddHost(const std::string& name, int cpus, uint64_t memory_gib, int64_t heartbeat_age_ms,
               bool maintenance = false) {
    if (heartbeat_age_ms < 10000) {
      ASSERT_TRUE(store_->Put("hosts/" + name + "/alive", "1").ok());
    }
    json info = {{"name", name},
                 {"url", "http://10.0.0.9:8006"},
                 {"cpus", cpus},
                 {"memory_bytes", memory_gib << 30},
                 {"heartbeat_ms", NowMs() - heartbeat_age_ms},
                 {"maintenance", maintenance}};
    ASSERT_TRUE(store_->Put("hosts/" + name + "/info", info.dump()).ok());
  }
  void AddVm(const std::string& name, const std::string& host, int cpus, uint64_t memory_mib, bool running) {
    VmSpec s;
    s.name = name;
    s.uuid = name + "-uuid";
    s.cpus = cpus;
    s.memory_mib = memory_mib;
    s.host = host;
    ASSERT_TRUE(store_->Put("vms/" + name, ToJson(s).dump()).ok());
    if (running) {
      ASSERT_TRUE(
          store_->Put("hosts/" + host + "/runtime/" + name, json{{"pid", 42}, {"state", "running"}}.dump()).ok());
    }
  }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  EventBus events_;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(ClusterTest, HostsShowStateAndWhatTheirVmsTake) {
  AddHost("h1", 8, 32, 0);
  AddHost("h2", 4, 16, 60000);  // silent for a minute
  AddHost("h3", 4, 16, 500, /*maintenance=*/true);
  AddVm("a", "h1", 2, 4096, true);
  AddVm("b", "h1", 4, 8192, false);  // stopped: takes nothing
  ASSERT_TRUE(store_->Put("hosts/h1/pools/local", "{}").ok());
  ASSERT_TRUE(store_->Put("pools/nfs", "{}").ok());
  ASSERT_TRUE(store_->Put("networks/lan", "{}").ok());
  auto hosts = cluster_->Hosts();
  ASSERT_TRUE(hosts.ok()) << hosts.status().message();
  ASSERT_EQ(hosts->size(), 3u);
  EXPECT_EQ((*hosts)[0].state, HostState::kOnline);
  EXPECT_EQ((*hosts)[0].memory_committed, 4096ull << 20);
  EXPECT_EQ((*hosts)[0].cpus_committed, 2);
  EXPECT_EQ((*hosts)[0].vms, 2);
  EXPECT_EQ((*hosts)[0].running, 1);
  EXPECT_EQ((*hosts)[1].state, HostState::kLost);
  EXPECT_EQ((*hosts)[2].state, HostState::kMaintenance);
  EXPECT_EQ((*hosts)[0].pools, (std::vector<std::string>{"local", "nfs"}));
  EXPECT_EQ((*hosts)[1].pools, std::vector<std::string>{"nfs"});
  EXPECT_EQ((*hosts)[2].networks, std::vector<std::string>{"lan"});
  EXPECT_EQ(cluster_->Host("h9").status().code(), ErrorCode::kNotFound);
}

TEST_F(ClusterTest, PlacementPicksRoomAndSaysWhyNot) {
  AddHost("h1", 4, 8, 0);
  AddHost("h2", 8, 8, 0);
  AddHost("h3", 16, 64, 60000);        // lost
  AddHost("h4", 16, 64, 0, true);      // maintenance
  AddVm("busy", "h2", 6, 1024, true);  // h2: 2 CPUs left, h1: 4
  auto host = cluster_->Place(1024, 1);
  ASSERT_TRUE(host.ok()) << host.status().message();
  EXPECT_EQ(*host, "h1");

  auto none = cluster_->Place(20 << 10, 1);  // 20 GiB: h1 and h2 are too small, h3 lost, h4 in maintenance
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no host can take the VM"), std::string::npos);
  EXPECT_NE(none.status().message().find("host h3 is lost"), std::string::npos);
  EXPECT_NE(none.status().message().find("host h4 is in maintenance"), std::string::npos);
  EXPECT_NE(none.status().message().find("host h1 has 8.0 GiB of memory free"), std::string::npos)
      << none.status().message();

  EXPECT_TRUE(cluster_->CheckPlacement("h2", 1024, 1).ok());
  EXPECT_EQ(cluster_->CheckPlacement("h4", 1024, 1).code(), ErrorCode::kConflict);
}

TEST_F(ClusterTest, OwnersAndOtherHostsVms) {
  AddHost("h1", 4, 8, 0);
  AddHost("h2", 4, 8, 0);
  AddVm("mine", "h1", 1, 512, true);
  AddVm("theirs", "h2", 1, 512, true);
  AddVm("parked", "h2", 1, 512, false);
  EXPECT_EQ(*cluster_->OwnerOf("mine"), "h1");
  EXPECT_EQ(*cluster_->OwnerOf("theirs"), "h2");
  EXPECT_EQ(*cluster_->OwnerOf("ghost"), "");
  auto remote = cluster_->RemoteVms();
  ASSERT_TRUE(remote.ok());
  ASSERT_EQ(remote->size(), 2u);  // ordered by key: parked, theirs
  EXPECT_EQ((*remote)[0].value("state", ""), "stopped");
  EXPECT_EQ((*remote)[1].value("state", ""), "running");
  EXPECT_EQ((*remote)[1].value("host", ""), "h2");
}

TEST_F(ClusterTest, OnlyALostHostWithoutVmsIsRemoved) {
  AddHost("h1", 4, 8, 0);
  AddHost("h2", 4, 8, 0);
  AddHost("h3", 4, 8, 60000);  // lost
  AddHost("h4", 4, 8, 60000);  // lost, with a VM
  AddVm("stranded", "h4", 1, 512, false);
  ASSERT_TRUE(store_->Put("hosts/h3/pools/local", "{}").ok());
  EXPECT_EQ(cluster_->Remove("h1").code(), ErrorCode::kConflict);  // this host
  EXPECT_EQ(cluster_->Remove("h2").code(), ErrorCode::kConflict);  // online
  Status st = cluster_->Remove("h4");
  EXPECT_EQ(st.code(), ErrorCode::kConflict);
  EXPECT_NE(st.message().find("stranded"), std::string::npos) << st.message();
  ASSERT_TRUE(cluster_->Remove("h3").ok());
  EXPECT_EQ(cluster_->Host("h3").status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(store_->Get("hosts/h3/pools/local")->has_value());
  EXPECT_EQ(cluster_->Remove("h9").code(), ErrorCode::kNotFound);
}

TEST(LocalDisksTest, TheTargetTakesOnlyWellFormedCopies) {
  auto ok = LocalDisksFromJson(json::array({ToJson(LocalDisk{1, "qcow2", 1 << 30})}), 2);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].index, 1u);
  EXPECT_EQ((*ok)[0].size, uint64_t{1} << 30);
  EXPECT_FALSE(LocalDisksFromJson(json::array({ToJson(LocalDisk{2, "qcow2", 1})}), 2).ok());  // no disk 2
  EXPECT_FALSE(LocalDisksFromJson(json::array({ToJson(LocalDisk{0, "vmdk", 1})}), 1).ok());
  EXPECT_FALSE(LocalDisksFromJson(json::array({ToJson(LocalDisk{0, "raw", 0})}), 1).ok());
  EXPECT_FALSE(LocalDisksFromJson(json{{"index", 0}}, 1).ok());
  EXPECT_FALSE(LocalDisksFromJson(json::array({{{"index", -1}, {"format", "raw"}, {"size", 1}}}), 1).ok());
}

TEST(PoolTokenTest, TheFirstHostsTokenIsThePools) {
  auto store = NewMemoryStore();
  std::string first(64, 'a'), second(64, 'b');
  EXPECT_EQ(*PoolToken(*store, first), first);
  EXPECT_EQ(*PoolToken(*store, second), first);
}

}  // namespace
}  // namespace pampa
