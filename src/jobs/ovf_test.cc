#include "jobs/ovf.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

struct Parts {
  std::string file = R"(<File ovf:id="file1" ovf:href="web-disk1.vmdk" ovf:size="123456"/>)";
  std::string disk_format = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";
  std::string cpus = "2", memory = "2048", memory_units = "byte * 2^20";
  std::string drive = "ovf:/disk/vmdisk1";
  std::string extra;  // more hardware items, or config
  std::string systems = "1";
};

// An OVF as VMware writes it.
std::string Ovf(const Parts& p = {}) {
  std::string system = R"(<VirtualSystem ovf:id="web"><Info>A VM</Info><Name>web</Name>
    <VirtualHardwareSection>
      <Item><rasd:ElementName>2 virtual CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>)" +
                       p.cpus + R"(</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>)" +
                       p.memory_units + R"(</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>)" +
                       p.memory + R"(</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:HostResource>)" +
                       p.drive + R"(</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Address>00:50:56:AB:CD:EF</rasd:Address><rasd:Connection>VM Network</rasd:Connection>
        <rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item ovf:configuration="big"><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>16</rasd:VirtualQuantity></Item>
      )" + p.extra + R"(
    </VirtualHardwareSection></VirtualSystem>)";
  std::string body =
      p.systems == "1" ? system : "<VirtualSystemCollection>" + system + system + "</VirtualSystemCollection>";
  return R"(<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>)" +
         p.file + R"(</References>
  <DiskSection><Info>Virtual disks</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format=")" +
         p.disk_format + R"("/>
  </DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"/></NetworkSection>
  )" + body +
         "</Envelope>";
}

TEST(Ovf, MapsTheHardware) {
  Parts p;
  p.extra = R"(<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>)";
  auto vm = ParseOvf(Ovf(p));
  ASSERT_TRUE(vm.ok()) << vm.status().message();
  EXPECT_EQ(vm->label, "web");
  EXPECT_EQ(vm->cpus, 2) << "the default configuration, not the deployment option's 16";
  EXPECT_EQ(vm->memory_mib, 2048u);
  EXPECT_EQ(vm->firmware, "uefi");
  ASSERT_EQ(vm->disks.size(), 1u);
  EXPECT_EQ(vm->disks[0].file, "web-disk1.vmdk");
  EXPECT_EQ(vm->disks[0].capacity, 16ull << 30);
  ASSERT_EQ(vm->nics.size(), 1u);
  EXPECT_EQ(vm->nics[0].network, "VM Network");
  EXPECT_EQ(vm->nics[0].mac, "00:50:56:ab:cd:ef");
  EXPECT_EQ(ParseOvf(Ovf())->firmware, "bios");
}

TEST(Ovf, ReadsUnits) {
  EXPECT_EQ(*OvfUnits("byte * 2^20"), 1ull << 20);
  EXPECT_EQ(*OvfUnits("byte*2^30"), 1ull << 30);
  EXPECT_EQ(*OvfUnits("MegaBytes"), 1ull << 20);
  EXPECT_EQ(*OvfUnits(""), 1u);
  EXPECT_FALSE(OvfUnits("furlongs").ok());
  EXPECT_FALSE(OvfUnits("byte * 2^99").ok());
  Parts p;
  p.memory = "2";
  p.memory_units = "GigaBytes";
  EXPECT_EQ(ParseOvf(Ovf(p))->memory_mib, 2048u);
}

TEST(Ovf, RefusesWhatCannotBeImported) {
  auto expect = [](const Parts& p, const std::string& words) {
    auto vm = ParseOvf(Ovf(p));
    ASSERT_FALSE(vm.ok()) << words;
    EXPECT_NE(vm.status().message().find(words), std::string::npos) << vm.status().message();
  };
  Parts p;
  p.cpus = "0";
  expect(p, "0 vCPUs");
  p = {};
  p.cpus = "-1";
  expect(p, "not a whole number");
  p = {};
  p.memory = "8";
  expect(p, "bytes of memory");
  p = {};
  p.memory = "99999999999999999999";
  expect(p, "not a whole number");
  p = {};
  p.memory = "4611686018427387904";
  expect(p, "too large");
  p = {};
  p.drive = "ovf:/disk/nope";
  expect(p, "names 'ovf:/disk/nope', which its DiskSection does not list");
  p = {};
  p.disk_format = "http://example.com/qcow2";
  p.file = R"(<File ovf:id="file1" ovf:href="web.qcow2"/>)";
  expect(p, "Pampa imports VMDK disks");
  p = {};
  p.file = R"(<File ovf:id="file1" ovf:href="web-disk1.vmdk.gz" ovf:compression="gzip"/>)";
  expect(p, "gzip-compressed");
  p = {};
  p.file = R"(<File ovf:id="file1" ovf:href="../../etc/shadow"/>)";
  expect(p, "only files inside the package");
  p = {};
  p.file = R"(<File ovf:id="other" ovf:href="x.vmdk"/>)";
  expect(p, "names file 'file1', which References does not list");
  p = {};
  p.systems = "2";
  expect(p, "describes 2 VMs");
  EXPECT_NE(ParseOvf("<Envelope>").status().message().find("not valid XML"), std::string::npos);
  EXPECT_NE(ParseOvf("<html/>").status().message().find("not an OVF"), std::string::npos);
}

TEST(OvaManifest, ReadsEachFilesDigestAndRefusesOtherLines) {
  auto m = ParseOvaManifest(
      "SHA256(web.ovf)= 3F9A000000000000000000000000000000000000000000000000000000000000\r\n"
      "SHA1 (disk1.vmdk) = 0123456789abcdef0123456789abcdef01234567\n\n");
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ(m->at("web.ovf").algorithm, "SHA256");
  EXPECT_EQ(m->at("web.ovf").hex.substr(0, 4), "3f9a");
  EXPECT_EQ(m->at("disk1.vmdk").algorithm, "SHA1");
  for (const char* bad : {"MD5(a)= 00", "SHA256(a)= 123", "SHA256 a = 00", "garbage"}) {
    EXPECT_FALSE(ParseOvaManifest(bad).ok()) << bad;
  }
  OvaHasher h("SHA256");
  h.Update("abc", 3);
  EXPECT_EQ(h.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace pampa
