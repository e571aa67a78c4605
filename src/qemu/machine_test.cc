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
// The JSON -device of this id (null when there is none).
nlohmann::json Device(const std::vector<std::string>& v, const std::string& id) {
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] != "-device" || v[i + 1].empty() || v[i + 1][0] != '{') continue;
    auto d = nlohmann::json::parse(v[i + 1]);
    if (d.value("id", "") == id) return d;
  }
  return nullptr;
}
int BootIndex(const std::vector<std::string>& v, const std::string& id) { return Device(v, id).value("bootindex", 0); }

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
  EXPECT_EQ(Device(a, "nic0")["mac"], "52:54:00:00:00:01");
  EXPECT_EQ(Device(a, "nic0")["bus"], "port-nic0");
  EXPECT_TRUE(HasSub(a, "\"ifname\":\"pt1\""));
  EXPECT_EQ(Device(a, "virtio-disk1")["bus"], "port-disk1");
  EXPECT_TRUE(HasSub(a, "pcie-root-port,id=port-disk15,bus=pcie.0,addr=0x11.7"));
  EXPECT_TRUE(HasSub(a, "pcie-root-port,id=port-nic0,bus=pcie.0,addr=0x12.0,multifunction=on"));
  EXPECT_TRUE(Has(a, "ide-cd,bus=ide.0,id=cdrom0"));  // an empty drive, for a disc put in later
  EXPECT_TRUE(HasSub(a, "path=/run/pampa/vm/x/qmp.sock"));
  EXPECT_TRUE(HasSub(a, "logfile=/run/pampa/vm/x/console.log"));
  EXPECT_TRUE(HasSub(a, "accel=tcg"));
}

TEST(QemuCommandLine, HotPlugPortsOnlyForTheSlotsGiven) {
  MachineConfig m;
  m.disks = {{"/pool/a.qcow2", "qcow2"}};
  m.disk_ports = 4;
  m.nic_ports = 2;
  auto a = QemuCommandLine(m, RuntimePaths{"/run/pampa/vm/x"});
  EXPECT_EQ(std::count_if(a.begin(), a.end(), [](const std::string& x) { return x.rfind("pcie-root-port", 0) == 0; }),
            6);
  EXPECT_TRUE(HasSub(a, "pcie-root-port,id=port-disk3,bus=pcie.0,addr=0x10.3"));
  EXPECT_FALSE(HasSub(a, "id=port-disk4,"));
  // A NIC slot's port keeps its address whatever the disks have.
  EXPECT_TRUE(HasSub(a, "pcie-root-port,id=port-nic1,bus=pcie.0,addr=0x12.1"));
  EXPECT_FALSE(HasSub(a, "id=port-nic2,"));
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
  EXPECT_EQ(BootIndex(a, "virtio-disk0"), 1);
  EXPECT_TRUE(HasSub(a, "id=cdrom0,drive=cdrom0,bootindex=2"));
  EXPECT_EQ(BootIndex(a, "nic0"), 0);
  m.boot_order = {"net", "cdrom"};
  m.cpu_model = "host";  // needs KVM: TCG gets the closest
  a = QemuCommandLine(m, RuntimePaths{"/r"});
  EXPECT_TRUE(Has(a, "max"));
  EXPECT_EQ(BootIndex(a, "nic0"), 1);
  EXPECT_TRUE(HasSub(a, "id=cdrom0,drive=cdrom0,bootindex=2"));
  EXPECT_EQ(BootIndex(a, "virtio-disk0"), 0);
}

TEST(QemuCommandLine, ScsiAndSataDisks) {
  MachineConfig m;
  m.name = "b";
  m.uuid = "u";
  m.disks = {{"/p/0.qcow2", "qcow2", DiskBus::kSata},
             {"/p/1.qcow2", "qcow2", DiskBus::kScsi},
             {"/p/2.qcow2", "qcow2", DiskBus::kSata}};
  auto a = QemuCommandLine(m, RuntimePaths{"/r"});
  EXPECT_EQ(Device(a, "sata-disk0")["bus"], "ide.2");
  EXPECT_EQ(Device(a, "sata-disk0")["driver"], "ide-hd");
  EXPECT_EQ(Device(a, "scsi-disk1")["bus"], "scsi0.0");
  EXPECT_EQ(Device(a, "scsi-disk1")["scsi-id"], 1);
  EXPECT_EQ(Device(a, "sata-disk2")["bus"], "ide.3");
  // A hot-plugged disk gets the very device a start would give it.
  EXPECT_EQ(Device(a, "scsi-disk1"), DiskDevice(1, DiskBus::kScsi, 0, 2));
  DiskBus bus;
  EXPECT_TRUE(ParseDiskBus("scsi", &bus) && bus == DiskBus::kScsi);
  EXPECT_FALSE(ParseDiskBus("ide", &bus));
  EXPECT_EQ(Name(DiskBus::kSata), "sata");
}

TEST(CheckCpuModel, KnowsQemusModels) {
  EXPECT_TRUE(CheckCpuModel("qemu64").ok());
  EXPECT_TRUE(CheckCpuModel("max").ok());
  EXPECT_NE(CheckCpuModel("pentium9").message().find("no CPU model 'pentium9'"), std::string::npos);
}

}  // namespace
}  // namespace pampa
