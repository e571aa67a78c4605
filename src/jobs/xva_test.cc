#include "jobs/xva.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <thread>

#include "backup/tar_test_util.h"
#include "base/fs.h"

namespace pampa {
namespace {

using tar_test::TarEnd;
using tar_test::TarMember;

std::string Member(const std::string& name, const std::string& value) {
  return "<member><name>" + name + "</name><value>" + value + "</value></member>";
}
std::string Struct(const std::string& members) { return "<struct>" + members + "</struct>"; }
std::string Array(const std::vector<std::string>& values) {
  std::string out = "<array><data>";
  for (auto& v : values) out += "<value>" + v + "</value>";
  return out + "</data></array>";
}
std::string Object(const std::string& cls, const std::string& id, const std::string& record) {
  return "<value>" + Struct(Member("class", cls) + Member("id", id) + Member("snapshot", Struct(record))) + "</value>";
}

struct Fields {
  std::string pv_bootloader, policy = "BIOS order", firmware, vcpus = "2", memory = "1073741824";
  std::string vdi_size = "2097664";  // 2 MiB + 512
  std::vector<std::string> vbds = {"Ref:2", "Ref:3"};
};

// An ova.xml as xapi writes it: a VM, a disk VBD and a CD VBD, a VDI, a VIF.
std::string OvaXml(const Fields& f = {}) {
  std::string params = Member("order", "dc") + (f.firmware.empty() ? "" : Member("firmware", f.firmware));
  std::string vm = Member("name_label", "web") + Member("is_a_snapshot", "<boolean>0</boolean>") +
                   Member("memory_static_max", f.memory) + Member("VCPUs_max", "4") +
                   Member("VCPUs_at_startup", f.vcpus) + Member("PV_bootloader", f.pv_bootloader) +
                   Member("HVM_boot_policy", f.policy) + Member("HVM_boot_params", Struct(params)) +
                   Member("VBDs", Array(f.vbds)) + Member("VIFs", Array({"Ref:9"}));
  std::string snap = Member("name_label", "web-old") + Member("is_a_snapshot", "<boolean>1</boolean>");
  std::string objects =
      Object("VM", "Ref:0", vm) + Object("VM", "Ref:1", snap) +
      Object("VBD", "Ref:2", Member("VDI", "Ref:5") + Member("type", "Disk") + Member("userdevice", "0")) +
      Object("VBD", "Ref:3", Member("VDI", "OpaqueRef:NULL") + Member("type", "CD") + Member("userdevice", "3")) +
      Object("VDI", "Ref:5", Member("name_label", "web disk") + Member("virtual_size", f.vdi_size)) +
      Object("VIF", "Ref:9", Member("MAC", "AA:00:12:34:56:78") + Member("device", "0"));
  return "<value>" +
         Struct(Member("version", Struct(Member("export_vsn", "2"))) +
                Member("objects", "<array><data>" + objects + "</data></array>")) +
         "</value>";
}

TEST(OvaXml, ReadsTheVmItsDisksNicsAndFirmware) {
  Fields f;
  f.firmware = "uefi";
  auto vm = ParseOvaXml(OvaXml(f));
  ASSERT_TRUE(vm.ok()) << vm.status().message();
  EXPECT_EQ(vm->label, "web");
  EXPECT_EQ(vm->cpus, 2);
  EXPECT_EQ(vm->memory_mib, 1024u);
  EXPECT_EQ(vm->firmware, "uefi");
  ASSERT_EQ(vm->disks.size(), 1u) << "the CD is not a disk";
  EXPECT_EQ(vm->disks[0].vdi, "Ref:5");
  EXPECT_EQ(vm->disks[0].size, 2097664u);
  ASSERT_EQ(vm->nics.size(), 1u);
  EXPECT_EQ(vm->nics[0].mac, "aa:00:12:34:56:78");
  EXPECT_EQ(ParseOvaXml(OvaXml())->firmware, "bios");
}

TEST(OvaXml, RefusesPvGuestsWithWhatToDo) {
  Fields pygrub;
  pygrub.pv_bootloader = "pygrub";
  Fields no_policy;
  no_policy.policy = "";
  for (const Fields& f : {pygrub, no_policy}) {
    auto vm = ParseOvaXml(OvaXml(f));
    ASSERT_FALSE(vm.ok());
    EXPECT_NE(vm.status().message().find("this is a PV guest"), std::string::npos) << vm.status().message();
    EXPECT_NE(vm.status().message().find("HVM-boot-policy=BIOS"), std::string::npos);
  }
}

TEST(OvaXml, RefusesWhatIsMissingOrOutOfRange) {
  auto expect = [](const Fields& f, const std::string& words) {
    auto vm = ParseOvaXml(OvaXml(f));
    ASSERT_FALSE(vm.ok()) << words;
    EXPECT_NE(vm.status().message().find(words), std::string::npos) << vm.status().message();
  };
  Fields f;
  f.vcpus = "0";
  expect(f, "0 vCPUs");
  f = {};
  f.vcpus = "lots";
  expect(f, "not a whole number");
  f = {};
  f.memory = "1024";
  expect(f, "bytes of memory");
  f = {};
  f.vdi_size = "0";
  expect(f, "virtual size of 0");
  f = {};
  f.vbds = {"Ref:2", "Ref:77"};
  expect(f, "(VBD) Ref:77, which ova.xml does not describe");
  std::string xml = OvaXml();
  std::string missing = xml.replace(xml.find("<value>Ref:5</value>"), 20, "<value>Ref:6</value>");
  auto vm = ParseOvaXml(missing);
  ASSERT_FALSE(vm.ok());
  EXPECT_NE(vm.status().message().find("names VDI 'Ref:6', which the export does not contain"), std::string::npos)
      << vm.status().message();
  EXPECT_NE(ParseOvaXml("<value><struct>").status().message().find("not valid XML"), std::string::npos);
  EXPECT_NE(ParseOvaXml("<value>1</value>").status().message().find("no objects"), std::string::npos);
  EXPECT_FALSE(ParseOvaXml("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><value>&e;</value>").ok());
}

TEST(XvaBlockDigest, IsXapisHex) {
  EXPECT_EQ(*XvaBlockDigest(".checksum", "abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(*XvaBlockDigest(".xxhash", ""), "EF46DB3751D8E999");
  EXPECT_FALSE(XvaBlockDigest(".md5", "abc").ok());
}

// A block and its checksum member.
std::string Block(const std::string& name, const std::string& data, const std::string& kind = ".checksum") {
  return TarMember(name, data) + TarMember(name + kind, *XvaBlockDigest(kind, data));
}

// The archive in a temporary file; reads its blocks, gathering what is written.
struct Import {
  Status status;
  std::map<uint64_t, std::string> written;  // offset -> data
};
// From a file the workers read the blocks themselves (pread); from a pipe
// (from_pipe) the reader hands them over in order.
Import ReadArchive(const std::string& blocks, const Fields& f = {}, bool from_pipe = false) {
  std::string archive = TarMember("ova.xml", OvaXml(f)) + blocks + TarEnd();
  Fd fd;
  std::thread writer;
  if (from_pipe) {
    int ends[2];
    EXPECT_EQ(pipe2(ends, O_CLOEXEC), 0);
    fd = Fd(ends[0]);
    writer = std::thread([&archive, in = Fd(ends[1])] {
      for (size_t at = 0; at < archive.size();) {
        ssize_t n = write(in.get(), archive.data() + at, archive.size() - at);
        if (n <= 0) return;  // the reader stopped early
        at += static_cast<size_t>(n);
      }
    });
  } else {
    char path[] = "/tmp/xva_test.XXXXXX";
    fd = Fd(mkstemp(path));
    unlink(path);
    EXPECT_EQ(write(fd.get(), archive.data(), archive.size()), static_cast<ssize_t>(archive.size()));
    lseek(fd.get(), 0, SEEK_SET);
  }
  struct Joiner {
    std::thread& t;
    Fd& fd;
    ~Joiner() {
      fd = Fd();  // a writer still blocked in write() gets EPIPE
      if (t.joinable()) t.join();
    }
  } joiner{writer, fd};
  TarReader tar(fd.get(), "test.xva");
  Import out;
  std::mutex written;  // the workers write at once (a race here once lost a block in CI)
  auto vm = ReadXvaHeader(tar);
  if (!vm.ok()) return {vm.status(), {}};
  out.status = ReadXvaDisks(
      tar, vm->disks,
      [&](size_t disk, uint64_t offset, const char* data, size_t len) {
        EXPECT_EQ(disk, 0u);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 4096, 0u) << "page-aligned";
        std::lock_guard lock(written);
        out.written[offset] = std::string(data, len);
        return Status::Ok();
      },
      nullptr, nullptr);
  return out;
}

TEST(ReadXvaDisks, WritesVerifiedBlocksWhereTheyBelong) {
  std::string first(kXvaBlock, 'a'), last(512, 'z');
  // Block 1 (zeros) is left out; the last is shorter; newer XenServer's xxhash is read too.
  auto r = ReadArchive(Block("Ref:5/00000000", first) + Block("Ref:5/00000002", last, ".xxhash"));
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  ASSERT_EQ(r.written.size(), 2u);
  EXPECT_EQ(r.written[0], first);
  EXPECT_EQ(r.written[2 * kXvaBlock], last);
}

TEST(ReadXvaDisks, ReadsAnArchiveFromAPipeInOrder) {
  std::string first(kXvaBlock, 'a'), last(512, 'z');
  auto r = ReadArchive(Block("Ref:5/00000000", first) + Block("Ref:5/00000002", last, ".xxhash"), {}, true);
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.written[0], first);
  EXPECT_EQ(r.written[2 * kXvaBlock], last);
  std::string bad = TarMember("Ref:5/00000001", std::string(512, 'z')) +
                    TarMember("Ref:5/00000001.checksum", *XvaBlockDigest(".checksum", "y"));
  auto damaged = ReadArchive(Block("Ref:5/00000000", first) + bad, {}, true);
  EXPECT_NE(damaged.status.message().find("block Ref:5/00000001 does not match its checksum"), std::string::npos)
      << damaged.status.message();
}

TEST(ReadXvaDisks, CountsAnEmptyKeepAliveBlockAsANumberWithoutBytes) {
  // xapi sends an empty block to keep a slow connection open: it takes
  // number 1, and the data after it (number 2) is the disk's second MiB.
  std::string first(kXvaBlock, 'a'), second(kXvaBlock, 'b'), last(512, 'z');
  auto r = ReadArchive(Block("Ref:5/00000000", first) + Block("Ref:5/00000001", "") + Block("Ref:5/00000002", second) +
                       Block("Ref:5/00000003", last));
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  EXPECT_EQ(r.written[kXvaBlock], second);
  EXPECT_EQ(r.written[2 * kXvaBlock], last);
}

TEST(ReadXvaDisks, RefusesABlockThatDoesNotMatchItsChecksum) {
  std::string bad = TarMember("Ref:5/00000002", std::string(512, 'z')) +
                    TarMember("Ref:5/00000002.checksum", *XvaBlockDigest(".checksum", std::string(512, 'y')));
  auto r = ReadArchive(Block("Ref:5/00000000", std::string(kXvaBlock, 'a')) + bad);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("block Ref:5/00000002 does not match its checksum"), std::string::npos)
      << r.status.message();
  EXPECT_EQ(r.written.count(2 * kXvaBlock), 0u) << "nothing of a bad block is written";
}

TEST(ReadXvaDisks, RefusesIncompleteDisorderedAndUncheckedArchives) {
  std::string a(kXvaBlock, 'a');
  auto cut = ReadArchive(Block("Ref:5/00000000", a));
  EXPECT_NE(cut.status.message().find("the export is incomplete"), std::string::npos) << cut.status.message();
  auto order = ReadArchive(Block("Ref:5/00000001", a) + Block("Ref:5/00000000", a));
  EXPECT_NE(order.status.message().find("comes after block"), std::string::npos) << order.status.message();
  auto past = ReadArchive(Block("Ref:5/00000000", a) + Block("Ref:5/00000009", "x"));
  EXPECT_NE(past.status.message().find("past the end"), std::string::npos) << past.status.message();
  auto unchecked = ReadArchive(TarMember("Ref:5/00000000", a));
  EXPECT_NE(unchecked.status.message().find("has no checksum after it"), std::string::npos)
      << unchecked.status.message();
  auto big = ReadArchive(Block("Ref:5/00000000", a + "x"));
  EXPECT_NE(big.status.message().find("more than an XVA block"), std::string::npos) << big.status.message();
}

TEST(ReadXvaHeader, WantsOvaXmlFirst) {
  std::string archive = TarMember("Ref:5/00000000", "x") + TarEnd();
  char path[] = "/tmp/xva_test.XXXXXX";
  Fd fd(mkstemp(path));
  unlink(path);
  ASSERT_EQ(write(fd.get(), archive.data(), archive.size()), static_cast<ssize_t>(archive.size()));
  lseek(fd.get(), 0, SEEK_SET);
  TarReader tar(fd.get(), "x.xva");
  auto vm = ReadXvaHeader(tar);
  ASSERT_FALSE(vm.ok());
  EXPECT_NE(vm.status().message().find("not a XenServer export"), std::string::npos) << vm.status().message();
}

}  // namespace
}  // namespace pampa
