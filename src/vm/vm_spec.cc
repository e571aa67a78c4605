#include "vm/vm_spec.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <regex>
#include <set>

#include "base/units.h"
#include "qemu/cgroups.h"

namespace pampa {
namespace {

using json = nlohmann::json;

constexpr int kMaxCpus = 64;
constexpr uint64_t kMinMemoryMib = 16, kMaxMemoryMib = 1024 * 1024;

Status CheckFields(const json& body, const std::set<std::string>& allowed) {
  if (!body.is_object()) return Status::Invalid("the request body must be a JSON object");
  for (auto& [k, v] : body.items()) {
    if (!allowed.count(k)) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return Status::Invalid("unknown field '" + k + "' (known fields: " + list + ")");
    }
  }
  return Status::Ok();
}

Result<std::string> GetString(const json& body, const std::string& key) {
  const auto& v = body.at(key);
  if (!v.is_string()) return Status::Invalid("field '" + key + "' must be a string");
  std::string s = v.get<std::string>();
  if (s.find('\0') != std::string::npos) return Status::Invalid("field '" + key + "' contains a NUL byte");
  return s;
}

Result<int> GetCpus(const json& body) {
  const auto& v = body.at("cpus");
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxCpus) {
    return Status::Invalid("field 'cpus' must be an integer from 1 to " + std::to_string(kMaxCpus));
  }
  return v.get<int>();
}

// "memory": "512M" | bytes-as-string; "memory_mib": 512.
Result<uint64_t> GetMemoryMib(const json& body) {
  uint64_t mib;
  if (body.contains("memory")) {
    if (!body["memory"].is_string())
      return Status::Invalid("field 'memory' must be a size string such as \"512M\" or \"2G\"");
    const std::string& text = body["memory"].get_ref<const std::string&>();
    auto parsed = ParseSize(text);
    if (!parsed.ok()) return parsed.status().Context("memory");
    uint64_t bytes = *parsed;
    // A bare number means MiB for memory, as in Proxmox ("--memory 2048").
    bool bare = !text.empty() && std::isdigit(static_cast<unsigned char>(text.back()));
    mib = bare ? bytes : bytes / (1024 * 1024);
  } else {
    const auto& v = body["memory_mib"];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      return Status::Invalid("field 'memory_mib' must be a positive integer");
    mib = v.get<uint64_t>();
  }
  if (mib < kMinMemoryMib || mib > kMaxMemoryMib) {
    return Status::Invalid("memory must be between 16 MiB and 1 TiB, got " + std::to_string(mib) + " MiB");
  }
  return mib;
}

Status CheckFirmware(const std::string& f) {
  if (f != "bios" && f != "uefi") return Status::Invalid("firmware '" + f + "' is unknown (use bios or uefi)");
  return Status::Ok();
}

Status CheckAppend(const std::string& a) {
  if (a.size() > 4096) return Status::Invalid("kernel command line is longer than 4096 characters");
  for (char c : a) {
    if (c == '\n' || c == '\0') return Status::Invalid("kernel command line may not contain newlines");
  }
  return Status::Ok();
}

}  // namespace

json ToJson(const VmSpec& s) {
  json disks = json::array(), nics = json::array();
  for (auto& d : s.disks) {
    json disk = {{"pool", d.pool}, {"volume", d.volume}};
    if (!d.base.empty()) disk["base"] = d.base;
    if (d.bus != DiskBus::kVirtio) disk["bus"] = Name(d.bus);
    disk["iops"] = d.iops;
    disk["bps"] = d.bps;
    if (d.slot) disk["slot"] = *d.slot;
    disks.push_back(std::move(disk));
  }
  for (auto& n : s.nics) {
    json nic = {{"network", n.network}, {"mac", n.mac}, {"bps", n.bps}};
    if (n.slot) nic["slot"] = *n.slot;
    nics.push_back(std::move(nic));
  }
  json j = {{"name", s.name},         {"uuid", s.uuid},
            {"cpus", s.cpus},         {"memory_mib", s.memory_mib},
            {"disks", disks},         {"cdrom", s.cdrom},
            {"kernel", s.kernel},     {"initrd", s.initrd},
            {"append", s.append},     {"nics", nics},
            {"firmware", s.firmware}, {"autostart", s.autostart},
            {"host", s.host},         {"template", s.is_template}};
  j["cpu_model"] = s.cpu_model;
  if (s.sockets) j["topology"] = {{"sockets", s.sockets}, {"cores", s.cores}, {"threads", s.threads}};
  if (!s.boot_order.empty()) j["boot_order"] = s.boot_order;
  j["ha"] = s.ha;
  if (s.ha) j["ha_priority"] = s.ha_priority;
  j["cpu_weight"] = s.cpu_weight;
  j["cpu_cap"] = s.cpu_cap;
  j["cpu_pin"] = s.cpu_pin;
  j["memory_min_mib"] = s.memory_min_mib;
  if (s.disk_ports || s.nic_ports) j["hotplug_ports"] = {{"disks", s.disk_ports}, {"nics", s.nic_ports}};
  if (!s.cloud_init.empty()) {
    const CloudInit& c = s.cloud_init;
    j["cloud_init"] = {{"user", c.user},
                       {"ssh_keys", c.ssh_keys},
                       {"password_hash", c.password_hash},
                       {"ip", c.ip},
                       {"gateway", c.gateway},
                       {"dns", c.dns},
                       {"hostname", c.hostname}};
  }
  return j;
}

namespace {

// The slots of devices (disks or NICs) in order, as DiskSlot documents.
template <typename Device>
std::vector<size_t> ResolveSlots(const std::vector<Device>& devices) {
  std::vector<size_t> slots(devices.size());
  std::vector<bool> taken;
  auto take = [&taken](size_t slot) {
    if (slot >= taken.size()) taken.resize(slot + 1, false);
    taken[slot] = true;
  };
  for (const Device& d : devices) {
    if (d.slot) take(*d.slot);
  }
  size_t next = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i].slot) {
      slots[i] = *devices[i].slot;
      continue;
    }
    while (next < taken.size() && taken[next]) ++next;
    slots[i] = next;
    take(next);
  }
  return slots;
}

template <typename Device>
void Pin(std::vector<Device>& devices) {
  std::vector<size_t> slots = ResolveSlots(devices);
  for (size_t i = 0; i < devices.size(); ++i) devices[i].slot = static_cast<uint32_t>(slots[i]);
}

}  // namespace

size_t DiskSlot(const VmSpec& spec, size_t index) { return ResolveSlots(spec.disks).at(index); }
size_t NicSlot(const VmSpec& spec, size_t index) { return ResolveSlots(spec.nics).at(index); }

void PinSlots(VmSpec* spec) {
  Pin(spec->disks);
  Pin(spec->nics);
}

namespace {

// One past the highest slot the devices use (0 for none). Every disk counts,
// whatever its bus: a disk added later takes the lowest free slot.
template <typename Device>
size_t SlotsUsed(const std::vector<Device>& devices) {
  std::vector<size_t> slots = ResolveSlots(devices);
  return slots.empty() ? 0 : *std::max_element(slots.begin(), slots.end()) + 1;
}

}  // namespace

// The record as it is: the machine must not change with the devices (a SCSI
// disk takes a slot but needs no port).
size_t DiskPorts(const VmSpec& spec) { return spec.disk_ports == 0 ? kMaxDisks : spec.disk_ports; }
size_t NicPorts(const VmSpec& spec) { return spec.nic_ports == 0 ? kMaxNics : spec.nic_ports; }

void FitPorts(VmSpec* spec) {
  spec->disk_ports = static_cast<uint32_t>(std::min(kMaxDisks, SlotsUsed(spec->disks) + kSpareDiskPorts));
  spec->nic_ports = static_cast<uint32_t>(std::min(kMaxNics, SlotsUsed(spec->nics) + kSpareNicPorts));
}

std::string TapName(const VmSpec& spec, size_t index) {
  return "pt" + spec.uuid.substr(0, 8) + std::to_string(NicSlot(spec, index));
}

Status CheckCloudInit(const VmSpec& spec) {
  if (!spec.cloud_init.ip.empty() && spec.nics.empty()) {
    return Status::Invalid("vm '" + spec.name + "' has no NIC for the cloud-init address " + spec.cloud_init.ip);
  }
  return Status::Ok();
}

Result<VmSpec> VmSpecFromJson(const json& j) {
  if (!j.is_object()) return Status::Internal("stored VM spec is not a JSON object");
  try {
    VmSpec s;
    s.name = j.at("name");
    s.uuid = j.at("uuid");
    s.cpus = j.value("cpus", 1);
    s.memory_mib = j.value("memory_mib", 512ull);
    for (auto& d : j.value("disks", json::array())) {
      DiskSpec disk{d.at("pool"), d.at("volume"), d.value("base", "")};
      if (!ParseDiskBus(d.value("bus", "virtio"), &disk.bus)) return Status::Internal("stored disk bus is unknown");
      disk.iops = d.value("iops", uint64_t{0});
      disk.bps = d.value("bps", uint64_t{0});
      if (d.contains("slot")) {
        disk.slot = d.at("slot").get<uint32_t>();
        if (*disk.slot >= kMaxDisks) return Status::Internal("stored disk slot is out of range");
      }
      s.disks.push_back(std::move(disk));
    }
    s.cdrom = j.value("cdrom", "");
    s.kernel = j.value("kernel", "");
    s.initrd = j.value("initrd", "");
    s.append = j.value("append", "");
    for (auto& n : j.value("nics", json::array())) {
      NicSpec nic{n.at("network"), n.at("mac"), n.value("bps", 0ull)};
      if (n.contains("slot")) {
        nic.slot = n.at("slot").get<uint32_t>();
        if (*nic.slot >= kMaxNics) return Status::Internal("stored NIC slot is out of range");
      }
      s.nics.push_back(std::move(nic));
    }
    s.firmware = j.value("firmware", "bios");
    s.autostart = j.value("autostart", false);
    s.ha = j.value("ha", false);
    s.ha_priority = j.value("ha_priority", 0);
    s.cpu_weight = j.value("cpu_weight", 100);
    s.cpu_cap = j.value("cpu_cap", 0);
    s.cpu_pin = j.value("cpu_pin", "");
    s.memory_min_mib = j.value("memory_min_mib", uint64_t{0});
    if (j.contains("hotplug_ports")) {
      const json& ports = j.at("hotplug_ports");
      s.disk_ports = ports.at("disks").get<uint32_t>();
      s.nic_ports = ports.at("nics").get<uint32_t>();
      if (s.disk_ports > kMaxDisks || s.nic_ports > kMaxNics) {
        return Status::Internal("stored hot-plug port count is out of range");
      }
    }
    s.host = j.value("host", "");
    s.is_template = j.value("template", false);
    s.cpu_model = j.value("cpu_model", "");
    if (j.contains("topology") && j["topology"].is_object()) {
      s.sockets = j["topology"].value("sockets", 0);
      s.cores = j["topology"].value("cores", 0);
      s.threads = j["topology"].value("threads", 0);
    }
    s.boot_order = j.value("boot_order", std::vector<std::string>{});
    if (j.contains("cloud_init") && j["cloud_init"].is_object()) {
      const json& c = j["cloud_init"];
      s.cloud_init = {c.value("user", ""),          c.value("ssh_keys", std::vector<std::string>{}),
                      c.value("password_hash", ""), c.value("ip", ""),
                      c.value("gateway", ""),       c.value("dns", ""),
                      c.value("hostname", "")};
    }
    return s;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("stored VM spec is damaged: ") + e.what());
  }
}

namespace {

Result<MachineOptions> ParseMachineOptions(const json& body) {
  MachineOptions o;
  if (body.contains("cpu_model")) {
    PAMPA_ASSIGN_OR_RETURN(std::string model, GetString(body, "cpu_model"));
    static const std::regex kModel("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    if (!model.empty() && !std::regex_match(model, kModel)) {
      return Status::Invalid("cpu model '" + model +
                             "' is not a QEMU CPU model name (see: qemu-system-x86_64 -cpu help)");
    }
    o.cpu_model = model;
  }
  for (auto [key, field] :
       {std::pair{"sockets", &o.sockets}, std::pair{"cores", &o.cores}, std::pair{"threads", &o.threads}}) {
    if (!body.contains(key)) continue;
    const json& v = body[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxCpus) {
      return Status::Invalid(std::string("field '") + key + "' must be an integer from 1 to " +
                             std::to_string(kMaxCpus));
    }
    *field = v.get<int>();
  }
  if (body.contains("boot_order")) {
    const json& v = body["boot_order"];
    std::vector<std::string> order;
    if (!v.is_array() || v.empty() || v.size() > 3) {
      return Status::Invalid("field 'boot_order' must list 1 to 3 of disk, cdrom, net (such as [\"cdrom\", \"disk\"])");
    }
    for (const json& d : v) {
      std::string dev = d.is_string() ? d.get<std::string>() : "";
      if (dev != "disk" && dev != "cdrom" && dev != "net") {
        return Status::Invalid("boot device '" + (d.is_string() ? dev : d.dump()) + "' is not disk, cdrom or net");
      }
      if (std::find(order.begin(), order.end(), dev) != order.end()) {
        return Status::Invalid("boot device '" + dev + "' is named twice in the boot order");
      }
      order.push_back(dev);
    }
    o.boot_order = order;
  }
  return o;
}

}  // namespace

Status ApplyMachineOptions(const MachineOptions& o, std::optional<int> cpus, VmSpec* s) {
  if (o.cpu_model) s->cpu_model = *o.cpu_model;
  if (o.boot_order) s->boot_order = *o.boot_order;
  if (o.sockets || o.cores || o.threads) {
    int sockets = o.sockets.value_or(s->sockets ? s->sockets : 1);
    int cores = o.cores.value_or(s->cores ? s->cores : 1);
    int threads = o.threads.value_or(s->threads ? s->threads : 1);
    int n = sockets * cores * threads;
    std::string layout = std::to_string(sockets) + " socket(s) x " + std::to_string(cores) + " core(s) x " +
                         std::to_string(threads) + " thread(s) = " + std::to_string(n);
    if (n > kMaxCpus) return Status::Invalid(layout + " CPUs, more than " + std::to_string(kMaxCpus));
    if (cpus && *cpus != n) {
      return Status::Invalid("--cpus " + std::to_string(*cpus) + " does not match " + layout +
                             ": give the topology alone (it sets the CPUs)");
    }
    s->sockets = sockets;
    s->cores = cores;
    s->threads = threads;
    s->cpus = n;
  } else if (cpus) {
    s->cpus = *cpus;
    s->sockets = s->cores = s->threads = 0;  // QEMU lays out the new count itself
  }
  return Status::Ok();
}

Result<CreateRequest> ParseCreateRequest(const json& body) {
  PAMPA_RETURN_IF_ERROR(
      CheckFields(body, {"name",  "cpus",       "memory",    "memory_mib", "pool",     "disk_image", "disks",
                         "cdrom", "kernel",     "initrd",    "append",     "networks", "firmware",   "autostart",
                         "host",  "cloud_init", "cpu_model", "sockets",    "cores",    "threads",    "boot_order"}));
  CreateRequest r;
  if (body.contains("host")) {
    PAMPA_ASSIGN_OR_RETURN(r.host, GetString(body, "host"));
    PAMPA_RETURN_IF_ERROR(ValidateName("host", r.host));
  }
  if (!body.contains("name")) return Status::Invalid("field 'name' is required");
  PAMPA_ASSIGN_OR_RETURN(r.name, GetString(body, "name"));
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", r.name));
  PAMPA_ASSIGN_OR_RETURN(r.machine, ParseMachineOptions(body));
  bool topology = r.machine.sockets || r.machine.cores || r.machine.threads;
  if (!body.contains("cpus") && !topology) return Status::Invalid("field 'cpus' is required (e.g. --cpus 2)");
  if (body.contains("cpus")) {
    PAMPA_ASSIGN_OR_RETURN(r.cpus, GetCpus(body));
  }
  VmSpec shaped;  // the CPU count a topology gives, checked against cpus
  PAMPA_RETURN_IF_ERROR(
      ApplyMachineOptions(r.machine, body.contains("cpus") ? std::optional<int>(r.cpus) : std::nullopt, &shaped));
  r.cpus = shaped.cpus;
  if (!body.contains("memory") && !body.contains("memory_mib")) {
    return Status::Invalid("field 'memory' is required (e.g. --memory 1G)");
  }
  PAMPA_ASSIGN_OR_RETURN(r.memory_mib, GetMemoryMib(body));
  if (body.contains("pool")) {
    PAMPA_ASSIGN_OR_RETURN(r.pool, GetString(body, "pool"));
    PAMPA_RETURN_IF_ERROR(ValidateName("pool", r.pool));
  }
  for (auto key : {"disk_image", "cdrom", "kernel", "initrd", "append"}) {
    if (!body.contains(key)) continue;
    PAMPA_ASSIGN_OR_RETURN(std::string v, GetString(body, key));
    if (std::string(key) == "disk_image")
      r.disk_image = v;
    else if (std::string(key) == "cdrom")
      r.cdrom = v;
    else if (std::string(key) == "kernel")
      r.kernel = v;
    else if (std::string(key) == "initrd")
      r.initrd = v;
    else
      r.append = v;
  }
  PAMPA_RETURN_IF_ERROR(CheckAppend(r.append));
  if (!r.initrd.empty() && r.kernel.empty()) return Status::Invalid("an initrd needs a kernel (--kernel)");
  if (!r.append.empty() && r.kernel.empty()) return Status::Invalid("a kernel command line needs a kernel (--kernel)");
  if (body.contains("disks")) {
    if (!body["disks"].is_array()) return Status::Invalid("field 'disks' must be an array of sizes such as [\"10G\"]");
    for (auto& d : body["disks"]) {
      if (!d.is_string()) return Status::Invalid("each entry of 'disks' must be a size string such as \"10G\"");
      auto size = ParseDiskSize(d.get<std::string>());
      if (!size.ok()) return size.status().Context("disk");
      if (*size < 1024 * 1024)
        return Status::Invalid("disk size " + d.get<std::string>() + " is below the 1 MiB minimum");
      r.disks.push_back(*size);
    }
  }
  if (r.disks.size() + (r.disk_image.empty() ? 0 : 1) > 16) return Status::Invalid("a VM can have at most 16 disks");
  if (body.contains("networks")) {
    if (!body["networks"].is_array()) return Status::Invalid("field 'networks' must be an array of network names");
    r.networks.clear();
    for (auto& n : body["networks"]) {
      if (!n.is_string()) return Status::Invalid("each entry of 'networks' must be a network name");
      PAMPA_RETURN_IF_ERROR(ValidateName("network", n.get<std::string>()));
      r.networks.push_back(n);
    }
    if (r.networks.size() > 8) return Status::Invalid("a VM can have at most 8 NICs");
  }
  if (body.contains("firmware")) {
    PAMPA_ASSIGN_OR_RETURN(r.firmware, GetString(body, "firmware"));
  }
  PAMPA_RETURN_IF_ERROR(CheckFirmware(r.firmware));
  if (body.contains("autostart")) {
    if (!body["autostart"].is_boolean()) return Status::Invalid("field 'autostart' must be true or false");
    r.autostart = body["autostart"];
  }
  if (body.contains("cloud_init")) PAMPA_RETURN_IF_ERROR(ApplyCloudInit(body["cloud_init"], &r.cloud_init));
  return r;
}

namespace {

Result<std::optional<size_t>> GetIndex(const json& body, const std::string& key) {
  if (!body.contains(key)) return std::optional<size_t>();
  const json& v = body[key];
  if (!v.is_number_unsigned() || v.get<uint64_t>() > 63) {
    return Status::Invalid("field '" + key + "' must be a device number (0 is the first)");
  }
  return std::optional<size_t>(v.get<size_t>());
}

// add_disks: ["10G", "POOL/VOLUME"]; disk_bus: virtio|scsi|sata; remove_disk: N; keep_volume;
// add_nics: [{"network": NET, "mac": M}]; remove_nic: N.
Status ParseDeviceChanges(const json& body, EditRequest* e) {
  if (body.contains("add_disks")) {
    if (!body["add_disks"].is_array()) {
      return Status::Invalid("field 'add_disks' must be an array of sizes (\"10G\") or volumes (\"POOL/VOLUME\")");
    }
    for (const auto& d : body["add_disks"]) {
      if (!d.is_string()) return Status::Invalid("each entry of 'add_disks' must be a size or POOL/VOLUME");
      const std::string& text = d.get_ref<const std::string&>();
      EditRequest::NewDisk disk;
      if (auto slash = text.find('/'); slash != std::string::npos) {
        disk.pool = text.substr(0, slash);
        disk.volume = text.substr(slash + 1);
        PAMPA_RETURN_IF_ERROR(ValidateName("pool", disk.pool));
        PAMPA_RETURN_IF_ERROR(ValidateName("volume", disk.volume));
      } else {
        auto size = ParseDiskSize(text);
        if (!size.ok()) return size.status().Context("disk");
        if (*size < 1024 * 1024) return Status::Invalid("disk size " + text + " is below the 1 MiB minimum");
        disk.size = *size;
      }
      e->add_disks.push_back(std::move(disk));
    }
  }
  if (body.contains("disk_bus")) {
    PAMPA_ASSIGN_OR_RETURN(std::string bus, GetString(body, "disk_bus"));
    DiskBus parsed;
    if (!ParseDiskBus(bus, &parsed))
      return Status::Invalid("disk bus '" + bus + "' is unknown (use virtio, scsi or sata)");
    if (e->add_disks.empty()) return Status::Invalid("disk_bus goes with add_disks");
    for (auto& d : e->add_disks) d.bus = parsed;
  }
  PAMPA_ASSIGN_OR_RETURN(e->remove_disk, GetIndex(body, "remove_disk"));
  if (body.contains("keep_volume")) {
    if (!body["keep_volume"].is_boolean()) return Status::Invalid("field 'keep_volume' must be true or false");
    e->keep_volume = body["keep_volume"].get<bool>();
    if (!e->remove_disk) return Status::Invalid("keep_volume goes with remove_disk");
  }
  if (body.contains("add_nics")) {
    if (!body["add_nics"].is_array()) {
      return Status::Invalid("field 'add_nics' must be an array of {\"network\": NAME, \"mac\": MAC (optional)}");
    }
    for (const auto& n : body["add_nics"]) {
      if (!n.is_object()) return Status::Invalid("each entry of 'add_nics' must be {\"network\": NAME, \"mac\": MAC}");
      PAMPA_RETURN_IF_ERROR(CheckFields(n, {"network", "mac"}));
      NicSpec nic;
      PAMPA_ASSIGN_OR_RETURN(nic.network, GetString(n, "network"));
      PAMPA_RETURN_IF_ERROR(ValidateName("network", nic.network));
      if (n.contains("mac")) {
        PAMPA_ASSIGN_OR_RETURN(nic.mac, GetString(n, "mac"));
        for (char& c : nic.mac) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        PAMPA_RETURN_IF_ERROR(CheckMac(nic.mac));
      }
      e->add_nics.push_back(std::move(nic));
    }
  }
  PAMPA_ASSIGN_OR_RETURN(e->remove_nic, GetIndex(body, "remove_nic"));
  return Status::Ok();
}

}  // namespace

Status CheckMac(const std::string& mac) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid("MAC '" + mac + "' " + why + " (write six hex pairs, e.g. 52:54:00:12:34:56)");
  };
  if (mac.size() != 17) return bad("is not a MAC address");
  for (size_t i = 0; i < mac.size(); ++i) {
    bool colon = i % 3 == 2;
    if (colon ? mac[i] != ':' : !std::isxdigit(static_cast<unsigned char>(mac[i]))) return bad("is not a MAC address");
  }
  if (std::stoi(mac.substr(0, 2), nullptr, 16) & 1) return bad("is a multicast address");
  if (mac == "00:00:00:00:00:00") return bad("is all zeros");
  return Status::Ok();
}

namespace {

Result<int64_t> GetWhole(const json& body, const std::string& key, int64_t lo, int64_t hi, const std::string& what) {
  const json& v = body[key];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    return Status::Invalid("field '" + key + "' must be a whole number from " + std::to_string(lo) + " to " +
                           std::to_string(hi) + " (" + what + ")");
  }
  return v.get<int64_t>();
}

// "disk_limits": [{"disk": N, "iops": N, "bps": N}], "nic_limits": [{"nic": N, "bps": N}]; 0 removes a limit.
Status ParseLimits(const json& body, const std::string& key, const std::string& device,
                   std::vector<EditRequest::Limit>* out) {
  if (!body.contains(key)) return Status::Ok();
  const json& list = body[key];
  std::string shape = "field '" + key + "' must be a list of {\"" + device + "\": N" +
                      (device == "disk" ? ", \"iops\": N" : "") + ", \"bps\": N} (0: no limit)";
  if (!list.is_array() || list.empty()) return Status::Invalid(shape);
  for (const json& l : list) {
    if (!l.is_object() || !l.contains(device)) return Status::Invalid(shape);
    for (auto& [k, v] : l.items()) {
      if (k != device && k != "bps" && !(k == "iops" && device == "disk")) return Status::Invalid(shape);
    }
    EditRequest::Limit limit;
    PAMPA_ASSIGN_OR_RETURN(int64_t index, GetWhole(l, device, 0, 63, device + " number, 0 is the first"));
    limit.index = static_cast<size_t>(index);
    if (l.contains("iops")) {
      PAMPA_ASSIGN_OR_RETURN(int64_t iops, GetWhole(l, "iops", 0, 1'000'000, "I/O operations per second, 0: none"));
      limit.iops = static_cast<uint64_t>(iops);
    }
    if (l.contains("bps")) {
      PAMPA_ASSIGN_OR_RETURN(int64_t bps, GetWhole(l, "bps", 0, int64_t{1} << 40, "bytes per second, 0: none"));
      if (bps > 0 && bps < 64 * 1024) {
        return Status::Invalid("a " + device + " limit under 64 KiB/s (" + std::to_string(bps) +
                               " bytes/s) would stall the guest; give a size such as 10M, or 0 for none");
      }
      limit.bps = static_cast<uint64_t>(bps);
    }
    if (!limit.iops && !limit.bps) return Status::Invalid(shape);
    out->push_back(limit);
  }
  return Status::Ok();
}

// cpu_weight, cpu_cap, cpu_pin, memory_min (a size) or memory_min_mib, disk_limits, nic_limits.
Status ParseResources(const json& body, EditRequest* e) {
  if (body.contains("cpu_weight")) {
    PAMPA_ASSIGN_OR_RETURN(int64_t w,
                           GetWhole(body, "cpu_weight", 1, 10000, "the VM's relative CPU share; 100 is the default"));
    e->cpu_weight = static_cast<int>(w);
  }
  if (body.contains("cpu_cap")) {
    PAMPA_ASSIGN_OR_RETURN(int64_t c, GetWhole(body, "cpu_cap", 0, 100 * kMaxCpus, "percent of one core; 0: no cap"));
    if (c > 0 && c < 5)
      return Status::Invalid("field 'cpu_cap' of " + std::to_string(c) +
                             "% would starve the guest: give at least 5 (percent of one core), or 0 for no cap");
    e->cpu_cap = static_cast<int>(c);
  }
  if (body.contains("cpu_pin")) {
    PAMPA_ASSIGN_OR_RETURN(std::string pin, GetString(body, "cpu_pin"));
    if (!pin.empty()) PAMPA_RETURN_IF_ERROR(ParseCpuList(pin).status().Context("field 'cpu_pin'"));
    e->cpu_pin = pin;
  }
  if (body.contains("memory_min") || body.contains("memory_min_mib")) {
    const json& given = body.contains("memory_min") ? body["memory_min"] : body["memory_min_mib"];
    if (given == 0 || given == "0") {
      e->memory_min_mib = 0;  // static memory
    } else {
      json m;
      m[body.contains("memory_min") ? "memory" : "memory_mib"] = given;
      auto mib = GetMemoryMib(m);
      if (!mib.ok()) return mib.status().Context("minimum memory (0: static memory)");
      e->memory_min_mib = *mib;
    }
  }
  PAMPA_RETURN_IF_ERROR(ParseLimits(body, "disk_limits", "disk", &e->disk_limits));
  return ParseLimits(body, "nic_limits", "nic", &e->nic_limits);
}

}  // namespace

Result<EditRequest> ParseEditRequest(const json& body) {
  PAMPA_RETURN_IF_ERROR(CheckFields(
      body, {"cpus",        "memory",      "memory_mib", "autostart",   "cdrom",       "kernel",     "initrd",
             "append",      "firmware",    "add_disks",  "remove_disk", "keep_volume", "add_nics",   "remove_nic",
             "cloud_init",  "cpu_model",   "sockets",    "cores",       "threads",     "boot_order", "disk_bus",
             "ha",          "ha_priority", "cpu_weight", "cpu_cap",     "cpu_pin",     "memory_min", "memory_min_mib",
             "disk_limits", "nic_limits"}));
  if (body.empty()) return Status::Invalid("nothing to change: give at least one field");
  EditRequest e;
  PAMPA_RETURN_IF_ERROR(ParseResources(body, &e));
  if (body.contains("cpus")) {
    PAMPA_ASSIGN_OR_RETURN(e.cpus, GetCpus(body));
  }
  if (body.contains("memory") || body.contains("memory_mib")) {
    PAMPA_ASSIGN_OR_RETURN(e.memory_mib, GetMemoryMib(body));
  }
  if (body.contains("autostart")) {
    if (!body["autostart"].is_boolean()) return Status::Invalid("field 'autostart' must be true or false");
    e.autostart = body["autostart"].get<bool>();
  }
  if (body.contains("ha")) {
    if (!body["ha"].is_boolean()) return Status::Invalid("field 'ha' must be true or false");
    e.ha = body["ha"].get<bool>();
  }
  if (body.contains("ha_priority")) {
    const json& p = body["ha_priority"];
    if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() > 1000) {
      return Status::Invalid("field 'ha_priority' must be a whole number from 0 to 1000 (higher restarts first)");
    }
    e.ha_priority = p.get<int>();
  }
  for (auto key : {"cdrom", "kernel", "initrd", "append", "firmware"}) {
    if (!body.contains(key)) continue;
    PAMPA_ASSIGN_OR_RETURN(std::string v, GetString(body, key));
    std::string k = key;
    if (k == "cdrom")
      e.cdrom = v;
    else if (k == "kernel")
      e.kernel = v;
    else if (k == "initrd")
      e.initrd = v;
    else if (k == "append")
      e.append = v;
    else
      e.firmware = v;
  }
  if (e.append) PAMPA_RETURN_IF_ERROR(CheckAppend(*e.append));
  if (e.firmware) PAMPA_RETURN_IF_ERROR(CheckFirmware(*e.firmware));
  PAMPA_RETURN_IF_ERROR(ParseDeviceChanges(body, &e));
  PAMPA_ASSIGN_OR_RETURN(e.machine, ParseMachineOptions(body));
  if (body.contains("cloud_init")) {
    CloudInit scratch;  // checked now, applied to the VM's by the edit
    if (!body["cloud_init"].is_null()) PAMPA_RETURN_IF_ERROR(ApplyCloudInit(body["cloud_init"], &scratch));
    e.cloud_init = body["cloud_init"];
  }
  return e;
}

Result<CloneRequest> ParseCloneRequest(const std::string& source, const json& body) {
  PAMPA_RETURN_IF_ERROR(CheckFields(body, {"name", "linked", "snapshot", "pool", "cloud_init"}));
  CloneRequest r;
  r.source = source;
  if (!body.contains("name")) return Status::Invalid("field 'name' is required: the new VM's name");
  PAMPA_ASSIGN_OR_RETURN(r.name, GetString(body, "name"));
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", r.name));
  if (r.name == source) return Status::Invalid("a clone needs a name of its own, not '" + source + "'");
  if (body.contains("linked")) {
    if (!body["linked"].is_boolean()) return Status::Invalid("field 'linked' must be true or false");
    r.linked = body["linked"].get<bool>();
  }
  if (body.contains("snapshot")) {
    PAMPA_ASSIGN_OR_RETURN(r.snapshot, GetString(body, "snapshot"));
    PAMPA_RETURN_IF_ERROR(ValidateName("snapshot", r.snapshot));
  }
  if (body.contains("pool")) {
    PAMPA_ASSIGN_OR_RETURN(r.pool, GetString(body, "pool"));
    PAMPA_RETURN_IF_ERROR(ValidateName("pool", r.pool));
  }
  if (body.contains("cloud_init")) {
    CloudInit scratch;
    PAMPA_RETURN_IF_ERROR(ApplyCloudInit(body["cloud_init"], &scratch));
    r.cloud_init = body["cloud_init"];
  }
  if (r.linked && !r.snapshot.empty()) {
    return Status::Invalid(
        "a linked clone reads its template's disks as they are now; a clone of a snapshot is a full copy: drop "
        "--linked or --snapshot");
  }
  if (r.linked && !r.pool.empty()) {
    return Status::Invalid("a linked clone's disks sit beside its template's; --pool is for full clones");
  }
  return r;
}

std::string NewMac() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  char buf[18];
  std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", static_cast<unsigned>(rng() & 0xff),
                static_cast<unsigned>(rng() & 0xff), static_cast<unsigned>(rng() & 0xff));
  return buf;
}

std::string NewUuid() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;  // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant 1
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

}  // namespace pampa
