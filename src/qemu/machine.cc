#include "qemu/machine.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/process.h"

namespace pampa {
namespace {

constexpr std::string_view kBusNames[] = {"virtio", "scsi", "sata"};

// PCIe root ports: disks on slots 0x10-0x11, NICs on 0x12, eight functions each.
std::string DiskPort(size_t index) { return "port-disk" + std::to_string(index); }
std::string NicPort(size_t index) { return "port-nic" + std::to_string(index); }

std::string RootPort(const std::string& id, size_t n) {
  char addr[16];
  snprintf(addr, sizeof addr, "0x%zx.%zu", 0x10 + n / 8, n % 8);
  // No I/O window: virtio on PCIe needs none, and two dozen of them would
  // exhaust the firmware's 64 KiB of port space.
  return "pcie-root-port,id=" + id + ",bus=pcie.0,addr=" + addr + (n % 8 == 0 ? ",multifunction=on" : "") +
         ",chassis=" + std::to_string(n + 1) + ",port=" + std::to_string(n + 1) + ",io-reserve=0";
}

}  // namespace

std::string_view Name(DiskBus bus) { return kBusNames[static_cast<size_t>(bus)]; }

bool ParseDiskBus(std::string_view name, DiskBus* out) {
  for (size_t i = 0; i < std::size(kBusNames); ++i) {
    if (kBusNames[i] == name) {
      *out = static_cast<DiskBus>(i);
      return true;
    }
  }
  return false;
}

nlohmann::json BlockdevOptions(const std::string& node, const std::string& format, const std::string& path,
                               bool read_only) {
  nlohmann::json j = {{"driver", format}, {"node-name", node}, {"file", {{"driver", "file"}, {"filename", path}}}};
  if (read_only) j["read-only"] = true;
  return j;
}

std::string DiskNode(size_t index) { return "disk" + std::to_string(index); }

std::string DiskDeviceId(size_t index, DiskBus bus) { return std::string(Name(bus)) + "-" + DiskNode(index); }

nlohmann::json DiskDevice(size_t index, DiskBus bus, size_t sata_slot, int bootindex) {
  nlohmann::json d = {{"drive", DiskNode(index)}, {"id", DiskDeviceId(index, bus)}};
  switch (bus) {
    case DiskBus::kVirtio:
      d["driver"] = "virtio-blk-pci";
      d["bus"] = DiskPort(index);
      break;
    case DiskBus::kScsi:
      d["driver"] = "scsi-hd";
      d["bus"] = "scsi0.0";
      d["channel"] = 0;
      d["scsi-id"] = index;
      d["lun"] = 0;
      break;
    case DiskBus::kSata:
      d["driver"] = "ide-hd";
      d["bus"] = "ide." + std::to_string(2 + sata_slot);  // ide.0 and ide.1 are the CDs'
      break;
  }
  if (bootindex > 0) d["bootindex"] = bootindex;
  return d;
}

std::string NicNetdevId(size_t index) { return "net" + std::to_string(index); }
std::string NicDeviceId(size_t index) { return "nic" + std::to_string(index); }

nlohmann::json NicNetdev(size_t index, const std::string& tap) {
  return {{"type", "tap"}, {"id", NicNetdevId(index)}, {"ifname", tap}, {"script", "no"}, {"downscript", "no"}};
}

nlohmann::json NicDevice(size_t index, const std::string& mac, int bootindex) {
  nlohmann::json d = {{"driver", "virtio-net-pci"},
                      {"netdev", NicNetdevId(index)},
                      {"mac", mac},
                      {"id", NicDeviceId(index)},
                      {"bus", NicPort(index)}};
  if (bootindex > 0) d["bootindex"] = bootindex;
  return d;
}

Status CheckCpuModel(const std::string& model) {
  // "x86 NAME   (description)" per model, read once for the process.
  static Result<std::set<std::string>> models = []() -> Result<std::set<std::string>> {
    auto r = RunChecked({"qemu-system-x86_64", "-cpu", "help"});
    if (!r.ok()) return r.status();
    std::set<std::string> names;
    std::istringstream lines(r->out);
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string arch, name;
      if (words >> arch >> name && arch == "x86") names.insert(name);
    }
    return names;
  }();
  if (!models.ok()) return models.status().Context("listing QEMU's CPU models");
  if (models->count(model)) return Status::Ok();
  return Status::Invalid("QEMU has no CPU model '" + model +
                         "' (see: qemu-system-x86_64 -cpu help; host or max for all of this host's features)");
}

std::vector<std::string> QemuCommandLine(const MachineConfig& m, const RuntimePaths& p) {
  std::vector<std::string> a = {"qemu-system-x86_64"};
  auto add = [&](std::initializer_list<std::string> xs) { a.insert(a.end(), xs); };
  // The uuid in argv also lets us recognise our process after a pid is reused.
  add({"-name", "guest=" + m.name + ",debug-threads=on", "-uuid", m.uuid});
  add({"-no-user-config", "-nodefaults", "-msg", "timestamp=on"});
  // "host" needs KVM: under TCG, "max" is what comes closest.
  std::string cpu = m.cpu_model.empty() ? (m.accel == "kvm" ? "host" : "qemu64") : m.cpu_model;
  if (cpu == "host" && m.accel != "kvm") cpu = "max";
  add({"-machine", "q35,accel=" + m.accel, "-cpu", cpu});
  std::string smp = std::to_string(m.cpus);
  if (m.sockets > 0) {
    smp += ",sockets=" + std::to_string(m.sockets) + ",cores=" + std::to_string(m.cores) +
           ",threads=" + std::to_string(m.threads);
  }
  add({"-smp", smp, "-m", std::to_string(m.memory_mib)});
  // A guest power-off leaves QEMU alive in "shutdown" state, so pampad sees a
  // clean stop even when it was not running; any other QEMU exit is a crash.
  add({"-no-shutdown"});
  add({"-chardev", "socket,id=qmp,path=" + p.qmp() + ",server=on,wait=off", "-mon", "chardev=qmp,mode=control"});
  add({"-chardev",
       "socket,id=serial0,path=" + p.serial() + ",server=on,wait=off,logfile=" + p.serial_log() + ",logappend=on",
       "-serial", "chardev:serial0"});
  add({"-device", "virtio-serial-pci,id=vser0", "-chardev", "socket,id=qga0,path=" + p.qga() + ",server=on,wait=off",
       "-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0"});
  // deflate-on-oom: a guest about to OOM takes its ballooned memory back by
  // itself, the last guard should the balloon controller be late.
  add({"-device", "virtio-balloon-pci,id=balloon0,deflate-on-oom=on"});
  add({"-vga", "std", "-vnc", "unix:" + p.vnc()});
  if (m.firmware == "uefi") {
    add({"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + m.ovmf_code});
    add({"-drive", "if=pflash,format=raw,unit=1,file=" + m.ovmf_vars});
  }
  for (size_t i = 0; i < std::min(m.disk_ports, kMaxDisks); ++i) add({"-device", RootPort(DiskPort(i), i)});
  for (size_t i = 0; i < std::min(m.nic_ports, kMaxNics); ++i) add({"-device", RootPort(NicPort(i), kMaxDisks + i)});
  add({"-device", "virtio-scsi-pci,id=scsi0,bus=pcie.0,addr=0x13"});
  // Boot indexes in the order asked: every disk, the CD, every NIC; a kind
  // left out of the order is not booted from.
  std::vector<std::string> order = m.boot_order;
  if (order.empty()) order = {"disk", "cdrom"};
  std::vector<int> disk_boot(m.disks.size()), nic_boot(m.nics.size());
  int cdrom_boot = 0;
  int boot = 1;
  for (const auto& kind : order) {
    if (kind == "disk") {
      for (auto& b : disk_boot) b = boot++;
    } else if (kind == "cdrom" && !m.cdrom.empty()) {
      cdrom_boot = boot++;
    } else if (kind == "net") {
      for (auto& b : nic_boot) b = boot++;
    }
  }
  size_t sata = 0;
  for (size_t i = 0; i < m.disks.size(); ++i) {
    const DiskConfig& d = m.disks[i];
    size_t slot = d.slot.value_or(i);
    add({"-blockdev", BlockdevOptions(DiskNode(slot), d.format, d.path, false).dump()});
    add({"-device", DiskDevice(slot, d.bus, sata, disk_boot[i]).dump()});
    if (d.bus == DiskBus::kSata) ++sata;
  }
  // The CD drive is always there, empty or not: a disc can then be changed
  // while the guest runs.
  std::string cd = "ide-cd,bus=ide.0,id=cdrom0";
  if (!m.cdrom.empty()) {
    add({"-blockdev", BlockdevOptions("cdrom0", "raw", m.cdrom, true).dump()});
    cd += ",drive=cdrom0";
    if (cdrom_boot > 0) cd += ",bootindex=" + std::to_string(cdrom_boot);
  }
  add({"-device", cd});
  if (!m.cidata.empty()) {
    add({"-blockdev", BlockdevOptions("cidata", "raw", m.cidata, true).dump()});
    add({"-device", "ide-cd,drive=cidata,bus=ide.1,id=cidata"});
  }
  if (!m.kernel.empty()) add({"-kernel", m.kernel});
  if (!m.initrd.empty()) add({"-initrd", m.initrd});
  if (!m.append.empty()) add({"-append", m.append});
  for (size_t i = 0; i < m.nics.size(); ++i) {
    size_t slot = m.nics[i].slot.value_or(i);
    add({"-netdev", NicNetdev(slot, m.nics[i].tap).dump()});
    add({"-device", NicDevice(slot, m.nics[i].mac, nic_boot[i]).dump()});
  }
  if (!m.loadvm.empty()) add({"-loadvm", m.loadvm});
  if (m.incoming) add({"-incoming", "defer", "-S"});
  add({"-pidfile", p.pidfile()});
  return a;
}

}  // namespace pampa
