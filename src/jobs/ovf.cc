#include "jobs/ovf.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <regex>

#include "backup/chunk_codec.h"
#include "jobs/import_limits.h"
#include "jobs/xml_doc.h"
#include "vm/vm_spec.h"

namespace pampa {
namespace {

// CIM resource types (DMTF CIM_ResourceAllocationSettingData).
constexpr int kCpu = 3, kMemory = 4, kEthernet = 10, kDiskDrive = 17;

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<uint64_t> Digits(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 19 || !std::all_of(text.begin(), text.end(), ::isdigit)) {
    return Status::Invalid(what + " '" + text + "' is not a whole number");
  }
  return std::stoull(text);
}

// quantity * units (a units string), refused when it does not fit.
Result<uint64_t> Scaled(const std::string& quantity, const std::string& units, const std::string& what) {
  PAMPA_ASSIGN_OR_RETURN(uint64_t q, Digits(quantity, what));
  auto u = OvfUnits(units);
  if (!u.ok()) return u.status().Context(what);
  if (*u != 0 && q > UINT64_MAX / *u) return Status::Invalid(what + " is too large");
  return q * *u;
}

}  // namespace

Result<uint64_t> OvfUnits(const std::string& units) {
  std::string u;
  for (char c : Lower(units)) {
    if (c != ' ') u += c;
  }
  if (u.empty() || u == "byte" || u == "bytes") return 1;
  if (u == "kilobytes" || u == "kb") return 1ull << 10;
  if (u == "megabytes" || u == "mb") return 1ull << 20;
  if (u == "gigabytes" || u == "gb") return 1ull << 30;
  if (u == "terabytes" || u == "tb") return 1ull << 40;
  if (u.starts_with("byte*2^")) {
    auto e = Digits(u.substr(7), "units exponent");
    if (e.ok() && *e < 63) return 1ull << *e;
  } else if (u.starts_with("byte*")) {
    auto m = Digits(u.substr(5), "units factor");
    if (m.ok() && *m > 0) return *m;
  }
  return Status::Invalid("unknown allocation units '" + units + "'");
}

Result<OvfVm> ParseOvf(std::string_view xml) {
  PAMPA_ASSIGN_OR_RETURN(XmlDoc doc, ParseXml(xml, "the OVF descriptor"));
  xmlNode* env = xmlDocGetRootElement(doc.get());
  if (LocalName(env) != "Envelope") return Status::Invalid("the OVF descriptor has no <Envelope>: not an OVF file");

  // References: file id -> href.
  std::map<std::string, std::string> files;
  for (xmlNode* f : Children(Child(env, "References"), "File")) {
    std::string id = Attr(f, "id"), href = Attr(f, "href");
    if (!Attr(f, "compression").empty() && Attr(f, "compression") != "identity") {
      return Status::Invalid("file '" + href + "' of the OVF is " + Attr(f, "compression") +
                             "-compressed; unpack it and the descriptor's reference, or export uncompressed");
    }
    if (!Attr(f, "chunkSize").empty()) {
      return Status::Invalid("file '" + href + "' of the OVF is split in chunks; export it as one file");
    }
    if (href.empty() || href.find("://") != std::string::npos || href[0] == '/' ||
        href.find("..") != std::string::npos) {
      return Status::Invalid("the OVF names file '" + href + "': only files inside the package are imported");
    }
    files[id] = href;
  }
  // DiskSection: disk id -> disk.
  std::map<std::string, OvfDisk> disks;
  std::vector<std::string> disk_order;
  for (xmlNode* d : Descendants(Child(env, "DiskSection"), "Disk")) {
    OvfDisk disk;
    disk.id = Attr(d, "diskId");
    std::string what = "disk '" + disk.id + "'";
    PAMPA_ASSIGN_OR_RETURN(disk.capacity,
                           Scaled(Attr(d, "capacity"), Attr(d, "capacityAllocationUnits"), what + " capacity"));
    PAMPA_RETURN_IF_ERROR(CheckImportedDiskSize(what, disk.capacity));
    std::string ref = Attr(d, "fileRef");
    if (!ref.empty()) {
      auto f = files.find(ref);
      if (f == files.end()) return Status::Invalid(what + " names file '" + ref + "', which References does not list");
      disk.file = f->second;
      std::string format = Lower(Attr(d, "format"));
      if (format.find("vmdk") == std::string::npos && !Lower(disk.file).ends_with(".vmdk")) {
        return Status::Invalid(what + " is in format '" + Attr(d, "format") + "'; Pampa imports VMDK disks");
      }
    }
    if (disk.id.empty() || disks.count(disk.id)) return Status::Invalid("the OVF lists a disk without a unique diskId");
    disk_order.push_back(disk.id);
    disks[disk.id] = std::move(disk);
  }

  auto systems = Descendants(env, "VirtualSystem");
  if (systems.empty()) return Status::Invalid("the OVF describes no VirtualSystem");
  if (systems.size() > 1) {
    return Status::Invalid("the OVF describes " + std::to_string(systems.size()) + " VMs; import one VM's package");
  }
  xmlNode* vs = systems[0];
  OvfVm out;
  out.label = Text(Child(vs, "Name"));
  if (out.label.empty()) out.label = Attr(vs, "id");
  xmlNode* hw = Child(vs, "VirtualHardwareSection");
  if (!hw) return Status::Invalid("the OVF's VirtualSystem has no VirtualHardwareSection");

  bool have_cpu = false, have_memory = false;
  uint64_t cpus = 0, memory = 0;
  std::vector<std::string> used;  // disk ids in the order of their drives
  for (xmlNode* item : Children(hw)) {
    std::string_view kind = LocalName(item);
    if (kind != "Item" && kind != "EthernetPortItem" && kind != "StorageItem") continue;
    if (!Attr(item, "configuration").empty()) continue;  // only for a deployment option: not the default
    std::string type_text = Text(Child(item, "ResourceType"));
    if (type_text.empty() || type_text.size() > 4 || !std::all_of(type_text.begin(), type_text.end(), ::isdigit))
      continue;
    int type = std::stoi(type_text);
    std::string quantity = Text(Child(item, "VirtualQuantity")), units = Text(Child(item, "AllocationUnits"));
    if (type == kCpu) {
      PAMPA_ASSIGN_OR_RETURN(cpus, Digits(quantity, "the CPU count"));
      have_cpu = true;
    } else if (type == kMemory) {
      PAMPA_ASSIGN_OR_RETURN(memory, Scaled(quantity, units.empty() ? "byte * 2^20" : units, "the memory size"));
      have_memory = true;
    } else if (type == kEthernet) {
      OvfNic nic{Text(Child(item, "Connection")), Lower(Text(Child(item, "Address")))};
      if (!CheckMac(nic.mac).ok()) nic.mac.clear();
      out.nics.push_back(std::move(nic));
    } else if (type == kDiskDrive) {
      std::string res = Text(Child(item, "HostResource"));
      size_t slash = res.rfind('/');
      std::string id = slash == std::string::npos ? res : res.substr(slash + 1);
      if (res.find("/disk/") == std::string::npos || !disks.count(id)) {
        return Status::Invalid("a disk drive of the OVF names '" + res + "', which its DiskSection does not list");
      }
      if (std::find(used.begin(), used.end(), id) != used.end()) {
        return Status::Invalid("disk '" + id + "' is attached twice in the OVF");
      }
      used.push_back(id);
    }
  }
  if (!have_memory) return Status::Invalid("the OVF gives no memory size (no Item of ResourceType 4)");
  if (!have_cpu) return Status::Invalid("the OVF gives no CPU count (no Item of ResourceType 3)");
  // Disks no drive names come last, in the order DiskSection lists them.
  for (auto& id : disk_order) {
    if (std::find(used.begin(), used.end(), id) == used.end()) used.push_back(id);
  }
  for (auto& id : used) out.disks.push_back(disks[id]);
  PAMPA_RETURN_IF_ERROR(CheckImportedHardware("the OVF's VM", cpus, memory, out.disks.size(), out.nics.size()));
  out.cpus = static_cast<int>(cpus);
  out.memory_mib = memory >> 20;
  // VMware: <vmw:Config vmw:key="firmware" vmw:value="efi"/>; VirtualBox: <Firmware type="EFI"/>.
  for (xmlNode* c : Descendants(hw, "Config")) {
    if (Attr(c, "key") == "firmware" && Lower(Attr(c, "value")) == "efi") out.firmware = "uefi";
  }
  for (xmlNode* f : Descendants(vs, "Firmware")) {
    if (Lower(Attr(f, "type")).starts_with("efi")) out.firmware = "uefi";
  }
  return out;
}

Result<std::map<std::string, OvaDigest>> ParseOvaManifest(std::string_view text) {
  static const std::regex kLine(R"(^\s*(SHA1|SHA256|SHA512)\s*\(([^()]+)\)\s*=\s*([0-9A-Fa-f]+)\s*$)");
  std::map<std::string, OvaDigest> out;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string line(rest.substr(0, eol));
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::smatch m;
    if (!std::regex_match(line, m, kLine)) {
      return Status::Invalid("the manifest has a line that is not ALGORITHM(FILE)= HEX: '" + line.substr(0, 80) + "'");
    }
    std::string hex = m[3];
    for (auto& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t want = m[1] == "SHA1" ? 40 : m[1] == "SHA256" ? 64 : 128;
    if (hex.size() != want)
      return Status::Invalid("the manifest's " + std::string(m[1]) + " of " + std::string(m[2]) + " is not " +
                             std::to_string(want) + " hex digits");
    out[m[2]] = {m[1], hex};
  }
  return out;
}

OvaHasher::OvaHasher(const std::string& algorithm) : ctx_(EVP_MD_CTX_new()) {
  const EVP_MD* md = algorithm == "SHA1" ? EVP_sha1() : algorithm == "SHA512" ? EVP_sha512() : EVP_sha256();
  EVP_DigestInit_ex(ctx_, md, nullptr);
}

OvaHasher::~OvaHasher() { EVP_MD_CTX_free(ctx_); }

void OvaHasher::Update(const void* data, size_t size) { EVP_DigestUpdate(ctx_, data, size); }

std::string OvaHasher::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, md, &n);
  return ToHex(std::string(reinterpret_cast<const char*>(md), n));
}

}  // namespace pampa
