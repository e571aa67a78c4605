#include "qemu/machine.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/process.h"

namespace pampa {
namespace {

// -blockdev in JSON form: file names need no comma escaping.
std::string Blockdev(const std::string& node, const std::string& format, const std::string& path, bool read_only) {
  nlohmann::json file = {{"driver", "file"}, {"filename", path}};
  nlohmann::json j = {{"driver", format}, {"node-name", node}, {"file", file}};
  if (read_only) j["read-only"] = true;
  return j.dump();
}

}  // namespace

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
  add({"-device", "virtio-balloon-pci,id=balloon0"});
  add({"-vga", "std", "-vnc", "unix:" + p.vnc()});
  if (m.firmware == "uefi") {
    add({"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + m.ovmf_code});
    add({"-drive", "if=pflash,format=raw,unit=1,file=" + m.ovmf_vars});
  }
  // Boot indexes in the order asked: every disk, the CD, every NIC; a kind
  // left out of the order is not booted from.
  std::vector<std::string> order = m.boot_order;
  if (order.empty()) order = {"disk", "cdrom"};
  std::vector<std::string> disk_boot(m.disks.size()), nic_boot(m.nics.size());
  std::string cdrom_boot;
  int boot = 1;
  for (const auto& kind : order) {
    if (kind == "disk") {
      for (auto& b : disk_boot) b = ",bootindex=" + std::to_string(boot++);
    } else if (kind == "cdrom" && !m.cdrom.empty()) {
      cdrom_boot = ",bootindex=" + std::to_string(boot++);
    } else if (kind == "net") {
      for (auto& b : nic_boot) b = ",bootindex=" + std::to_string(boot++);
    }
  }
  for (size_t i = 0; i < m.disks.size(); ++i) {
    std::string node = "disk" + std::to_string(i);
    add({"-blockdev", Blockdev(node, m.disks[i].format, m.disks[i].path, false)});
    add({"-device", "virtio-blk-pci,drive=" + node + ",id=virtio-" + node + disk_boot[i]});
  }
  if (!m.cdrom.empty()) {
    add({"-blockdev", Blockdev("cdrom0", "raw", m.cdrom, true)});
    add({"-device", "ide-cd,drive=cdrom0,bus=ide.0,id=cdrom0" + cdrom_boot});
  }
  if (!m.cidata.empty()) {
    add({"-blockdev", Blockdev("cidata", "raw", m.cidata, true)});
    add({"-device", "ide-cd,drive=cidata,bus=ide.1,id=cidata"});
  }
  if (!m.kernel.empty()) add({"-kernel", m.kernel});
  if (!m.initrd.empty()) add({"-initrd", m.initrd});
  if (!m.append.empty()) add({"-append", m.append});
  for (size_t i = 0; i < m.nics.size(); ++i) {
    std::string id = "net" + std::to_string(i);
    add({"-netdev", "tap,id=" + id + ",ifname=" + m.nics[i].tap + ",script=no,downscript=no"});
    add({"-device",
         "virtio-net-pci,netdev=" + id + ",mac=" + m.nics[i].mac + ",id=nic" + std::to_string(i) + nic_boot[i]});
  }
  if (!m.loadvm.empty()) add({"-loadvm", m.loadvm});
  if (m.incoming) add({"-incoming", "defer", "-S"});
  add({"-pidfile", p.pidfile()});
  return a;
}

}  // namespace pampa
