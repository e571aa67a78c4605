#include "vm/vm_spec.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

using json = nlohmann::json;

TEST(ParseCreateRequest, FullRequest) {
  auto r = ParseCreateRequest(json::parse(R"({"name":"web","cpus":2,"memory":"1G","disks":["10G","512M"],
      "networks":["default","lan"],"firmware":"uefi","autostart":true})"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->memory_mib, 1024u);
  EXPECT_EQ(r->disks.size(), 2u);
  EXPECT_EQ(r->networks.size(), 2u);
  EXPECT_TRUE(r->autostart);
}

TEST(ParseCreateRequest, BareMemoryNumberIsMiB) {
  auto r = ParseCreateRequest(json::parse(R"({"name":"a","cpus":1,"memory":"2048"})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->memory_mib, 2048u);
}

TEST(ParseCreateRequest, RejectsBadInputWithAClearMessage) {
  struct Case {
    const char* body;
    const char* expect;
  } cases[] = {
      {R"({"cpus":1,"memory":"1G"})", "'name' is required"},
      {R"({"name":"Web","cpus":1,"memory":"1G"})", "invalid vm name"},
      {R"({"name":"a","cpus":0,"memory":"1G"})", "'cpus' must be"},
      {R"({"name":"a","cpus":"2","memory":"1G"})", "'cpus' must be"},
      {R"({"name":"a","cpus":1,"memory":"lots"})", "invalid size"},
      {R"({"name":"a","cpus":1,"memory":"1K"})", "between 16 MiB"},
      {R"({"name":"a","cpus":1,"memory":"1G","colour":"red"})", "unknown field 'colour'"},
      {R"({"name":"a","cpus":1,"memory":"1G","disks":["1Q"]})", "invalid size"},
      {R"({"name":"a","cpus":1,"memory":"1G","disks":"10G"})", "must be an array"},
      {R"({"name":"a","cpus":1,"memory":"1G","firmware":"coreboot"})", "firmware 'coreboot'"},
      {R"({"name":"a","cpus":1,"memory":"1G","initrd":"/x"})", "needs a kernel"},
      {R"({"name":"a","cpus":1,"memory":"1G","networks":["Bad_Net"]})", "invalid network name"},
      {R"([1,2])", "JSON object"},
  };
  for (auto& c : cases) {
    auto r = ParseCreateRequest(json::parse(c.body));
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalid);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << c.body << " -> " << r.status().message();
  }
}

TEST(ParseEditRequest, OnlyGivenFields) {
  auto e = ParseEditRequest(json::parse(R"({"cpus":4})"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e->cpus, 4);
  EXPECT_FALSE(e->memory_mib.has_value());
  EXPECT_FALSE(ParseEditRequest(json::parse("{}")).ok());
  EXPECT_FALSE(ParseEditRequest(json::parse(R"({"name":"x"})")).ok());
}

TEST(ParseEditRequest, DiskAndNicChanges) {
  auto e = ParseEditRequest(json::parse(R"({"add_disks":["10G","fast/data"],"remove_disk":1,"keep_volume":true,)"
                                        R"("add_nics":[{"network":"lab","mac":"52:54:00:AB:CD:EF"}],"remove_nic":0})"));
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_EQ(e->add_disks.size(), 2u);
  EXPECT_EQ(e->add_disks[0].size, 10ull << 30);
  EXPECT_EQ(e->add_disks[1].pool, "fast");
  EXPECT_EQ(e->add_disks[1].volume, "data");
  EXPECT_EQ(*e->remove_disk, 1u);
  EXPECT_TRUE(e->keep_volume);
  EXPECT_EQ(e->add_nics[0].mac, "52:54:00:ab:cd:ef");
  EXPECT_EQ(*e->remove_nic, 0u);
  EXPECT_TRUE(e->ChangesDevices());
  EXPECT_FALSE(e->ChangesMachine());

  auto refused = [](const char* body) {
    auto r = ParseEditRequest(json::parse(body));
    return r.ok() ? std::string("accepted") : r.status().message();
  };
  EXPECT_EQ(refused(R"({"add_disks":["100"]})"),
            "disk: size '100' has no unit: write 100G or 100M (or 100B if you mean bytes)");
  EXPECT_EQ(refused(R"({"remove_disk":-1})"), "field 'remove_disk' must be a device number (0 is the first)");
  EXPECT_EQ(refused(R"({"keep_volume":true})"), "keep_volume goes with remove_disk");
  EXPECT_EQ(refused(R"({"add_nics":[{"network":"lab","mac":"01:00:5e:00:00:01"}]})"),
            "MAC '01:00:5e:00:00:01' is a multicast address (write six hex pairs, e.g. 52:54:00:12:34:56)");
  EXPECT_EQ(refused(R"({"add_nics":[{"network":"lab","mac":"52-54-00-12-34-56"}]})"),
            "MAC '52-54-00-12-34-56' is not a MAC address (write six hex pairs, e.g. 52:54:00:12:34:56)");
  EXPECT_EQ(refused(R"({"add_disks":["../etc/x"]})"),
            "invalid pool name '..': it must start with a lowercase letter or digit (use 1-63 of a-z, 0-9 and '-', "
            "starting with a letter or digit)");
}

TEST(VmSpec, JsonRoundTrip) {
  VmSpec s;
  s.name = "db";
  s.uuid = NewUuid();
  s.disks = {{"default", "db-disk0"}, {"default", "db-disk1", "default/base-disk1"}};
  s.nics = {{"default", NewMac()}};
  s.is_template = true;
  s.cloud_init.user = "ana";
  s.cloud_init.ssh_keys = {"ssh-ed25519 AAAA ana@desk"};
  auto back = VmSpecFromJson(ToJson(s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(ToJson(*back), ToJson(s));
  EXPECT_TRUE(back->is_template);
  EXPECT_EQ(back->cloud_init.ssh_keys, s.cloud_init.ssh_keys);
  EXPECT_EQ(back->disks[1].base, "default/base-disk1");
  EXPECT_FALSE(ToJson(s)["disks"][0].contains("base"));  // a disk of its own says nothing
  EXPECT_EQ(s.uuid.size(), 36u);
  EXPECT_EQ(s.nics[0].mac.substr(0, 9), "52:54:00:");
}

TEST(VmSpec, SlotsAreThePositionsUntilADeviceLeavesARunningVm) {
  VmSpec s;
  s.uuid = NewUuid();
  s.disks = {{"p", "a"}, {"p", "b"}, {"p", "c"}};
  s.nics = {{"n", "52:54:00:00:00:01"}, {"n", "52:54:00:00:00:02"}};
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(DiskSlot(s, i), i);
  EXPECT_FALSE(ToJson(s)["disks"][0].contains("slot"));  // nothing pinned, nothing stored
  // A running VM loses its middle disk and first NIC: the others keep theirs.
  PinSlots(&s);
  s.disks.erase(s.disks.begin() + 1);
  s.nics.erase(s.nics.begin());
  EXPECT_EQ(DiskSlot(s, 0), 0u);
  EXPECT_EQ(DiskSlot(s, 1), 2u);
  EXPECT_EQ(NicSlot(s, 0), 1u);
  EXPECT_EQ(TapName(s, 0), "pt" + s.uuid.substr(0, 8) + "1");
  // One that joins takes the lowest free slot, and the slots survive the store.
  s.disks.push_back({"p", "d"});
  EXPECT_EQ(DiskSlot(s, 2), 1u);
  auto back = VmSpecFromJson(ToJson(s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(DiskSlot(*back, 1), 2u);
  EXPECT_EQ(DiskSlot(*back, 2), 1u);
  EXPECT_EQ(NicSlot(*back, 0), 1u);
  // A stored slot past the machine's ports is damage, not a device.
  json bad = ToJson(s);
  bad["disks"][0]["slot"] = kMaxDisks;
  EXPECT_FALSE(VmSpecFromJson(bad).ok());
}

TEST(VmSpec, HotPlugPortsFitTheSlotsWithSomeSpare) {
  VmSpec s;
  s.uuid = NewUuid();
  s.disks = {{"p", "a"}};
  // A VM from before ports were counted has one for every slot.
  EXPECT_EQ(DiskPorts(s), kMaxDisks);
  EXPECT_EQ(NicPorts(s), kMaxNics);
  EXPECT_FALSE(ToJson(s).contains("hotplug_ports"));
  FitPorts(&s);
  EXPECT_EQ(DiskPorts(s), 1 + kSpareDiskPorts);
  EXPECT_EQ(NicPorts(s), kSpareNicPorts);
  auto back = VmSpecFromJson(ToJson(s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->disk_ports, 1 + kSpareDiskPorts);
  EXPECT_EQ(back->nic_ports, kSpareNicPorts);
  // The highest slot counts, gap and all; never past the machine's slots.
  s.disks.push_back({"p", "b", "", DiskBus::kVirtio, 0, 0, 14});
  FitPorts(&s);
  EXPECT_EQ(DiskPorts(s), kMaxDisks);
  // The record is the machine, whatever the devices: a SCSI disk takes a slot but no port.
  s.disk_ports = 4;
  s.disks[1].bus = DiskBus::kScsi;
  s.disks[1].slot = 4;
  EXPECT_EQ(DiskPorts(s), 4u);
  json bad = ToJson(s);
  bad["hotplug_ports"]["nics"] = kMaxNics + 1;
  EXPECT_FALSE(VmSpecFromJson(bad).ok());
}

TEST(ParseCreateRequest, ATopologySetsTheCpusAndABadOneIsRefused) {
  auto r = ParseCreateRequest(
      nlohmann::json{{"name", "t"}, {"memory", "1G"}, {"sockets", 2}, {"cores", 2}, {"boot_order", {"cdrom", "disk"}}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->cpus, 4);
  auto msg = [](nlohmann::json body) {
    body["name"] = "t";
    body["memory"] = "1G";
    return ParseCreateRequest(body).status().message();
  };
  EXPECT_EQ(msg({{"cpus", 3}, {"cores", 2}}),
            "--cpus 3 does not match 1 socket(s) x 2 core(s) x 1 thread(s) = 2: give the topology alone (it sets the "
            "CPUs)");
  EXPECT_NE(msg({{"cpus", 1}, {"sockets", 0}}).find("from 1 to 64"), std::string::npos);
  EXPECT_NE(msg({{"cpus", 1}, {"boot_order", {"floppy"}}}).find("not disk, cdrom or net"), std::string::npos);
  EXPECT_NE(msg({{"cpus", 1}, {"boot_order", {"disk", "disk"}}}).find("named twice"), std::string::npos);
  EXPECT_NE(msg({{"cpus", 1}, {"cpu_model", "a b"}}).find("not a QEMU CPU model name"), std::string::npos);
  EXPECT_EQ(msg(nlohmann::json::object()), "field 'cpus' is required (e.g. --cpus 2)");
}

TEST(ApplyMachineOptions, CpusAloneClearsTheTopology) {
  VmSpec s;
  MachineOptions o;
  o.cores = 4;
  ASSERT_TRUE(ApplyMachineOptions(o, std::nullopt, &s).ok());
  EXPECT_EQ(s.cpus, 4);
  EXPECT_EQ(s.sockets, 1);
  o = {};
  o.sockets = 2;  // the cores stay
  ASSERT_TRUE(ApplyMachineOptions(o, std::nullopt, &s).ok());
  EXPECT_EQ(s.cpus, 8);
  ASSERT_TRUE(ApplyMachineOptions(MachineOptions{}, 3, &s).ok());
  EXPECT_EQ(s.cpus, 3);
  EXPECT_EQ(s.sockets, 0);
}

TEST(ParseCloneRequest, TakesANameAndRefusesWhatCannotGoTogether) {
  auto r = ParseCloneRequest("base", nlohmann::json{{"name", "web1"}, {"linked", true}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->source, "base");
  EXPECT_EQ(r->name, "web1");
  EXPECT_TRUE(r->linked);
  auto msg = [](const nlohmann::json& body) { return ParseCloneRequest("base", body).status().message(); };
  EXPECT_EQ(msg(nlohmann::json::object()), "field 'name' is required: the new VM's name");
  EXPECT_EQ(msg({{"name", "base"}}), "a clone needs a name of its own, not 'base'");
  EXPECT_NE(msg({{"name", "a b"}}).find("vm name"), std::string::npos);
  EXPECT_NE(msg({{"name", "x"}, {"linked", true}, {"snapshot", "s"}}).find("drop --linked or --snapshot"),
            std::string::npos);
  EXPECT_NE(msg({{"name", "x"}, {"linked", true}, {"pool", "p"}}).find("--pool is for full clones"), std::string::npos);
  EXPECT_NE(msg({{"name", "x"}, {"linked", "yes"}}).find("true or false"), std::string::npos);
  EXPECT_NE(msg({{"name", "x"}, {"size", 1}}).find("unknown field 'size'"), std::string::npos);
}

}  // namespace
}  // namespace pampa
