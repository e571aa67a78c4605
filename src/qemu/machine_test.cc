#include "qemu/machine.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace pampa {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
bool HasSub(const std::vector<std::string>& v, const std::string& s) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& x) { return x.find(s) != std::string::npos; });
}

TEST(QemuCommandLine, DisksNicsAndSockets) {
  MachineConfig m;
  m.name = "web";
  m.uuid = "u-1";
  m.cpus = 2;
  m.memory_mib = 512;
  m.disks = {{"/pool/web-disk0.qcow2", "qcow2"}, {"/pool/a,b.raw", "raw"}};
  m.nics = {{"pt1", "52:54:00:00:00:01"}};
  RuntimePaths p{"/run/pampa/vm/x"};
  auto a = QemuCommandLine(m, p);
  EXPECT_EQ(a[0], "qemu-system-x86_64");
  EXPECT_TRUE(Has(a, "u-1"));
  EXPECT_TRUE(Has(a, "-no-shutdown"));
  EXPECT_TRUE(Has(a, "512"));
  EXPECT_TRUE(HasSub(a, "\"filename\":\"/pool/a,b.raw\""));  // JSON: no comma escaping needed
  EXPECT_TRUE(HasSub(a, "mac=52:54:00:00:00:01"));
  EXPECT_TRUE(HasSub(a, "ifname=pt1"));
  EXPECT_TRUE(HasSub(a, "path=/run/pampa/vm/x/qmp.sock"));
  EXPECT_TRUE(HasSub(a, "logfile=/run/pampa/vm/x/console.log"));
  EXPECT_TRUE(HasSub(a, "accel=tcg"));
}

TEST(QemuCommandLine, KernelBootAndUefi) {
  MachineConfig m;
  m.name = "k";
  m.uuid = "u";
  m.kernel = "/g/vmlinuz";
  m.initrd = "/g/initrd.img";
  m.append = "console=ttyS0 quiet";
  m.firmware = "uefi";
  m.ovmf_code = "/usr/share/OVMF/OVMF_CODE.fd";
  m.ovmf_vars = "/data/k.vars";
  auto a = QemuCommandLine(m, RuntimePaths{"/r"});
  EXPECT_TRUE(Has(a, "console=ttyS0 quiet"));  // one argv element, never split by a shell
  EXPECT_TRUE(HasSub(a, "file=/data/k.vars"));
}

TEST(QemuCommandLine, CpuModelTopologyAndBootOrder) {
  MachineConfig m;
  m.name = "t";
  m.uuid = "u";
  m.cpus = 4;
  m.sockets = 2;
  m.cores = 2;
  m.threads = 1;
  m.disks = {{"/p/t-disk0.qcow2", "qcow2"}};
  m.cdrom = "/iso/x.iso";
  m.nics = {{"pt1", "52:54:00:00:00:01"}};
  auto a = QemuCommandLine(m, RuntimePaths{"/r"});
  EXPECT_TRUE(Has(a, "4,sockets=2,cores=2,threads=1"));
  EXPECT_TRUE(Has(a, "qemu64"));  // TCG's default
  EXPECT_TRUE(HasSub(a, "id=virtio-disk0,bootindex=1"));
  EXPECT_TRUE(HasSub(a, "id=cdrom0,bootindex=2"));
  EXPECT_FALSE(HasSub(a, "id=nic0,bootindex"));
  m.boot_order = {"net", "cdrom"};
  m.cpu_model = "host";  // needs KVM: TCG gets the closest
  a = QemuCommandLine(m, RuntimePaths{"/r"});
  EXPECT_TRUE(Has(a, "max"));
  EXPECT_TRUE(HasSub(a, "id=nic0,bootindex=1"));
  EXPECT_TRUE(HasSub(a, "id=cdrom0,bootindex=2"));
  EXPECT_FALSE(HasSub(a, "id=virtio-disk0,bootindex"));
}

TEST(CheckCpuModel, KnowsQemusModels) {
  EXPECT_TRUE(CheckCpuModel("qemu64").ok());
  EXPECT_TRUE(CheckCpuModel("max").ok());
  EXPECT_NE(CheckCpuModel("pentium9").message().find("no CPU model 'pentium9'"), std::string::npos);
}

}  // namespace
}  // namespace pampa
