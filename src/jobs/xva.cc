#include "jobs/xva.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "backup/chunk_codec.h"
#include "base/fs.h"
#include "base/mutex.h"
#include "jobs/import_limits.h"
#include "jobs/xml_doc.h"
#include "vm/vm_spec.h"

namespace pampa {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxChecksumSize = 256;
constexpr uint64_t kReadAhead = 32 << 20;     // archive bytes asked ahead of the header being read
constexpr uint64_t kReadAheadStep = 8 << 20;  // in pieces of this size

// An XML-RPC <value> as JSON: struct -> object, array -> array, boolean ->
// bool, numbers -> numbers, everything else (string, bare text, dates) -> string.
Result<json> XmlRpcValue(const xmlNode* value) {
  auto kids = Children(value);
  if (kids.empty()) return json(Text(value));
  const xmlNode* typed = kids[0];
  std::string_view type = LocalName(typed);
  if (type == "struct") {
    json out = json::object();
    for (xmlNode* member : Children(typed, "member")) {
      xmlNode* v = Child(member, "value");
      if (!v) return Status::Invalid("a struct member without a value");
      PAMPA_ASSIGN_OR_RETURN(out[Text(Child(member, "name"))], XmlRpcValue(v));
    }
    return out;
  }
  if (type == "array") {
    json out = json::array();
    for (xmlNode* v : Children(Child(typed, "data"), "value")) {
      PAMPA_ASSIGN_OR_RETURN(json item, XmlRpcValue(v));
      out.push_back(std::move(item));
    }
    return out;
  }
  std::string text = Text(typed);
  if (type == "boolean") return json(text == "1" || text == "true");
  if (type == "i4" || type == "int" || type == "i8") {
    char* end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end) return Status::Invalid("'" + text + "' is not an integer");
    return json(v);
  }
  if (type == "nil") return json();
  return json(text);  // string, double, dateTime.iso8601, base64: kept as text
}

std::string Str(const json& rec, const std::string& field) {
  auto it = rec.find(field);
  return it != rec.end() && it->is_string() ? it->get<std::string>() : "";
}

// xapi writes its int64 fields as strings.
Result<uint64_t> Unsigned(const json& rec, const std::string& field, const std::string& what) {
  auto it = rec.find(field);
  if (it == rec.end()) return Status::Invalid(what + " has no " + field);
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  std::string text = it->is_string() ? it->get<std::string>() : "";
  if (text.empty() || text.size() > 19 || !std::all_of(text.begin(), text.end(), ::isdigit)) {
    return Status::Invalid(what + " has " + field + " '" + (it->is_string() ? text : it->dump()) +
                           "', not a whole number");
  }
  return std::stoull(text);
}

bool Truthy(const json& rec, const std::string& field) {
  auto it = rec.find(field);
  if (it == rec.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  return it->is_string() && (*it == "true" || *it == "1");
}

std::vector<std::string> Refs(const json& rec, const std::string& field) {
  std::vector<std::string> out;
  auto it = rec.find(field);
  if (it == rec.end() || !it->is_array()) return out;
  for (auto& r : *it) {
    if (r.is_string()) out.push_back(r.get<std::string>());
  }
  return out;
}

int Device(const json& rec) {
  std::string d = Str(rec, "userdevice").empty() ? Str(rec, "device") : Str(rec, "userdevice");
  if (d.empty() || d.size() > 4 || !std::all_of(d.begin(), d.end(), ::isdigit)) return 1 << 20;  // last
  return std::stoi(d);
}

struct Object {
  std::string cls;
  json record;
};

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IsBlockNumber(std::string_view s) {
  return s.size() == 8 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct AlignedFree {
  void operator()(char* p) const { std::free(p); }
};

}  // namespace

Result<XvaVm> ParseOvaXml(std::string_view xml) {
  PAMPA_ASSIGN_OR_RETURN(XmlDoc doc, ParseXml(xml, "ova.xml"));
  xmlNode* root = xmlDocGetRootElement(doc.get());
  if (LocalName(root) != "value") return Status::Invalid("ova.xml is not a XenServer export description (no <value>)");
  auto top = XmlRpcValue(root);
  if (!top.ok()) return top.status().Context("ova.xml");
  if (!top->is_object() || !top->contains("objects") || !(*top)["objects"].is_array()) {
    return Status::Invalid("ova.xml lists no objects: not a XenServer VM export");
  }
  std::map<std::string, Object> objects;
  std::vector<std::string> vms;
  for (auto& o : (*top)["objects"]) {
    if (!o.is_object() || !o.contains("snapshot") || !o["snapshot"].is_object()) continue;
    std::string id = Str(o, "id"), cls = Str(o, "class");
    if (id.empty()) continue;
    if (cls == "VM" && !Truthy(o["snapshot"], "is_a_snapshot") && !Truthy(o["snapshot"], "is_control_domain")) {
      vms.push_back(id);
    }
    objects[id] = {cls, o["snapshot"]};
  }
  if (vms.empty()) return Status::Invalid("ova.xml describes no VM");
  if (vms.size() > 1)
    return Status::Invalid("ova.xml describes " + std::to_string(vms.size()) + " VMs; import one VM's export");
  const json& vm = objects[vms[0]].record;

  XvaVm out;
  out.label = Str(vm, "name_label");
  std::string policy = Str(vm, "HVM_boot_policy"), domain = Str(vm, "domain_type");
  bool pv =
      !Str(vm, "PV_bootloader").empty() || policy.empty() || domain == "pv" || domain == "pv_in_pvh" || domain == "pvh";
  if (pv) {
    return Status::Invalid("vm '" + out.label +
                           "': this is a PV guest (it boots a Xen paravirtual kernel, which KVM cannot run): "
                           "convert it to HVM in XenServer (xe vm-param-set uuid=UUID HVM-boot-policy=BIOS\\ order "
                           "HVM-boot-params:order=dc PV-bootloader= ; the guest needs a bootloader on its disk), "
                           "check that it boots there, and export again");
  }
  const json* params =
      vm.contains("HVM_boot_params") && vm["HVM_boot_params"].is_object() ? &vm["HVM_boot_params"] : nullptr;
  if (params && Lower(Str(*params, "firmware")) == "uefi") out.firmware = "uefi";

  std::string what = "vm '" + out.label + "'";
  uint64_t cpus = 0;
  if (vm.contains("VCPUs_at_startup")) {
    PAMPA_ASSIGN_OR_RETURN(cpus, Unsigned(vm, "VCPUs_at_startup", what));
  } else {
    PAMPA_ASSIGN_OR_RETURN(cpus, Unsigned(vm, "VCPUs_max", what));
  }
  PAMPA_ASSIGN_OR_RETURN(uint64_t memory, Unsigned(vm, "memory_static_max", what));
  out.cpus = static_cast<int>(std::min(cpus, kImportMaxCpus + 1));
  out.memory_mib = memory >> 20;

  for (const std::string& ref : Refs(vm, "VBDs")) {
    auto vbd = objects.find(ref);
    if (vbd == objects.end() || vbd->second.cls != "VBD") {
      return Status::Invalid(what + " names disk attachment (VBD) " + ref + ", which ova.xml does not describe");
    }
    const json& b = vbd->second.record;
    if (Lower(Str(b, "type")) != "disk") continue;  // CD drives: their media are not exported
    std::string vdi_ref = Str(b, "VDI");
    auto vdi = objects.find(vdi_ref);
    if (vdi == objects.end() || vdi->second.cls != "VDI") {
      return Status::Invalid(what + ": disk " + Str(b, "userdevice") + " (VBD " + ref + ") names VDI '" + vdi_ref +
                             "', which the export does not contain");
    }
    XvaDisk d;
    d.vdi = vdi_ref;
    d.label = Str(vdi->second.record, "name_label");
    d.device = Device(b);
    PAMPA_ASSIGN_OR_RETURN(d.size, Unsigned(vdi->second.record, "virtual_size", "disk " + vdi_ref));
    PAMPA_RETURN_IF_ERROR(CheckImportedDiskSize("disk " + vdi_ref, d.size));
    for (auto& other : out.disks) {
      if (other.vdi == d.vdi) return Status::Invalid(what + " attaches VDI " + d.vdi + " twice");
    }
    out.disks.push_back(std::move(d));
  }
  std::stable_sort(out.disks.begin(), out.disks.end(),
                   [](const XvaDisk& a, const XvaDisk& b) { return a.device < b.device; });

  for (const std::string& ref : Refs(vm, "VIFs")) {
    auto vif = objects.find(ref);
    if (vif == objects.end() || vif->second.cls != "VIF") {
      return Status::Invalid(what + " names network interface (VIF) " + ref + ", which ova.xml does not describe");
    }
    XvaNic n;
    n.mac = Lower(Str(vif->second.record, "MAC"));
    if (!CheckMac(n.mac).ok()) n.mac.clear();
    n.device = Device(vif->second.record);
    out.nics.push_back(std::move(n));
  }
  PAMPA_RETURN_IF_ERROR(CheckImportedHardware(what, cpus, memory, out.disks.size(), out.nics.size()));
  std::stable_sort(out.nics.begin(), out.nics.end(),
                   [](const XvaNic& a, const XvaNic& b) { return a.device < b.device; });
  return out;
}

Result<XvaVm> ReadXvaHeader(TarReader& tar) {
  auto read = tar.Next();
  if (!read.ok()) return Status::Invalid("not a XenServer export (XVA): " + read.status().message());
  const auto& first = *read;
  if (!first || first->name != "ova.xml" || !first->regular()) {
    return Status::Invalid("not a XenServer export (XVA): its first member is " +
                           (first ? "'" + first->name + "'" : std::string("missing")) + ", not ova.xml");
  }
  if (first->size > (16u << 20)) return Status::Invalid("ova.xml is larger than 16 MiB: not a real one");
  std::string xml(first->size, '\0');
  PAMPA_RETURN_IF_ERROR(tar.Read(xml.data(), xml.size()));
  return ParseOvaXml(xml);
}

Result<std::string> XvaBlockDigest(std::string_view kind, std::string_view data) {
  if (kind == ".xxhash") {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llX", static_cast<unsigned long long>(XXH64(data.data(), data.size(), 0)));
    return std::string(hex);
  }
  if (kind == ".checksum") {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), md, &n, EVP_sha1(), nullptr) != 1) {
      return Status::Internal("SHA-1 is not available from OpenSSL");
    }
    return ToHex(std::string(reinterpret_cast<const char*>(md), n));
  }
  return Status::Invalid("'" + std::string(kind) + "' is not a checksum kind of XVA blocks (.checksum, .xxhash)");
}

namespace {

using BlockBuffer = std::unique_ptr<char, AlignedFree>;

// One block read from the archive, with what its checksum member says, and
// where it goes once it matches.
struct XvaBlock {
  uint64_t seq = 0;  // its place among the blocks of the archive
  BlockBuffer data;
  size_t len = 0;
  int fd = -1;  // when not -1, data is still to be read from this archive, at `at`
  uint64_t at = 0;
  std::string name, kind, want;
  std::optional<size_t> disk;  // nullopt: a disk the VM does not attach, checked only
  uint64_t offset = 0;
};

// Reads a block (when the reader left that to the worker), checks it against
// its checksum and hands it to write when it matches.
Status CheckAndWrite(const XvaBlock& b, const XvaWrite& write) {
  if (b.fd >= 0) PAMPA_RETURN_IF_ERROR(ReadAt(b.fd, b.data.get(), b.len, b.at, "block " + b.name + " of the archive"));
  PAMPA_ASSIGN_OR_RETURN(std::string got, XvaBlockDigest(b.kind, std::string_view(b.data.get(), b.len)));
  std::string want = b.want;
  want.erase(want.find_last_not_of(" \t\r\n\0", std::string::npos, 5) + 1);
  if (Lower(want) != Lower(got)) {
    return Status::Invalid("block " + b.name + " does not match its checksum (" + b.name + b.kind + " says " +
                           want.substr(0, 64) + ", the data hashes to " + got +
                           "): the XVA is damaged; export it again");
  }
  if (b.disk && b.len > 0) return write(*b.disk, b.offset, b.data.get(), b.len);
  return Status::Ok();
}

// Checks and writes blocks on worker threads while the caller reads the next
// ones from the archive: reading, hashing and writing overlap. A few buffers
// go round between the reader and the workers, so memory stays bounded. The
// first failure in archive order is the one reported, and once a block has
// failed no further block is taken.
class BlockPipeline {
 public:
  BlockPipeline(const XvaWrite& write, int workers) : write_(write) {
    for (int i = 0; i < workers + 2; ++i) {
      BlockBuffer buf(static_cast<char*>(std::aligned_alloc(4096, kXvaBlock)));
      if (buf) free_.push_back(std::move(buf));
    }
    if (free_.empty()) failure_.emplace(0, Status::Internal("out of memory for the XVA's 1 MiB block buffers"));
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~BlockPipeline() {
    {
      MutexLock lock(&mu_);
      closed_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  BlockPipeline(const BlockPipeline&) = delete;
  BlockPipeline& operator=(const BlockPipeline&) = delete;

  // A buffer for the next block, once one is free; nullptr after a failure.
  BlockBuffer Buffer() {
    MutexLock lock(&mu_);
    lock.Wait(cv_, [&]() REQUIRES(mu_) { return !free_.empty() || failure_; });
    if (failure_) return nullptr;
    BlockBuffer buf = std::move(free_.back());
    free_.pop_back();
    return buf;
  }
  void Submit(XvaBlock block) {
    {
      MutexLock lock(&mu_);
      queue_.push_back(std::move(block));
    }
    cv_.notify_all();
  }
  // Waits for every block submitted; the first failure in archive order.
  Status Finish() {
    MutexLock lock(&mu_);
    lock.Wait(cv_, [&]() REQUIRES(mu_) { return queue_.empty() && busy_ == 0; });
    return failure_ ? failure_->second : Status::Ok();
  }

 private:
  void Work() {
    MutexLock lock(&mu_);
    for (;;) {
      lock.Wait(cv_, [&]() REQUIRES(mu_) { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;
      XvaBlock b = std::move(queue_.front());
      queue_.pop_front();
      bool skip = failure_ && failure_->first < b.seq;
      ++busy_;
      lock.Unlock();
      Status st = skip ? Status::Ok() : CheckAndWrite(b, write_);
      lock.Lock();
      --busy_;
      if (!st.ok() && (!failure_ || b.seq < failure_->first)) failure_.emplace(b.seq, std::move(st));
      free_.push_back(std::move(b.data));
      cv_.notify_all();
    }
  }

  const XvaWrite& write_;
  Mutex mu_;
  std::condition_variable cv_;
  std::vector<BlockBuffer> free_ GUARDED_BY(mu_);
  std::deque<XvaBlock> queue_ GUARDED_BY(mu_);
  int busy_ GUARDED_BY(mu_) = 0;
  bool closed_ GUARDED_BY(mu_) = false;
  std::optional<std::pair<uint64_t, Status>> failure_ GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace

Status ReadXvaDisks(TarReader& tar, const std::vector<XvaDisk>& disks, const XvaWrite& write,
                    const std::function<void(uint64_t)>& progress, const std::atomic<bool>* cancel) {
  struct Cursor {
    uint64_t offset = 0;  // where the next block's bytes go
    int64_t last = -1;    // the previous block's number
  };
  std::vector<Cursor> at(disks.size());
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < disks.size(); ++i) index[disks[i].vdi] = i;
  // Two workers read, hash and write while this thread walks the archive's
  // headers; from a pipe this thread reads the blocks too (docs/design.md, imports).
  BlockPipeline pipeline(write, 2);
  const int fd = tar.RandomAccessFd();
  uint64_t ahead = tar.position();  // the archive's bytes handed to the kernel's read-ahead so far
  Status read = [&]() -> Status {
    for (uint64_t seq = 0;; ++seq) {
      if (cancel && cancel->load()) return Status::Cancelled("import cancelled");
      // The workers' reads land one behind another but not in order: the kernel
      // is told what comes, so they copy from the page cache instead of waiting.
      for (; fd >= 0 && ahead < tar.position() + kReadAhead; ahead += kReadAheadStep) {
        posix_fadvise(fd, static_cast<off_t>(ahead), static_cast<off_t>(kReadAheadStep), POSIX_FADV_WILLNEED);
      }
      PAMPA_ASSIGN_OR_RETURN(auto m, tar.Next());
      if (!m) return Status::Ok();
      if (!m->regular()) continue;  // directories: the blocks name their own
      size_t slash = m->name.rfind('/');
      std::string vdi = slash == std::string::npos ? "" : m->name.substr(0, slash);
      std::string base = slash == std::string::npos ? m->name : m->name.substr(slash + 1);
      if (!IsBlockNumber(base)) {
        if (base.size() > 8 && IsBlockNumber(base.substr(0, 8)) && base[8] == '.') {
          return Status::Invalid("the XVA has a checksum (" + m->name + ") with no block before it: damaged archive");
        }
        continue;  // nothing the import uses
      }
      if (m->size > kXvaBlock) {
        return Status::Invalid("block " + m->name + " is " + std::to_string(m->size) +
                               " bytes, more than an XVA block (1 MiB): damaged archive");
      }
      XvaBlock b;
      b.seq = seq;
      b.name = m->name;
      b.len = static_cast<size_t>(m->size);
      b.data = pipeline.Buffer();
      if (!b.data) return Status::Ok();  // a block failed: Finish says which
      if (fd >= 0) {
        b.fd = fd;  // Next() seeks past it
        b.at = m->offset;
      } else {
        PAMPA_RETURN_IF_ERROR(tar.Read(b.data.get(), b.len));
      }
      PAMPA_ASSIGN_OR_RETURN(auto sum, tar.Next());
      b.kind = sum && sum->name.starts_with(m->name) ? sum->name.substr(m->name.size()) : "";
      if (!sum || (b.kind != ".checksum" && b.kind != ".xxhash") || sum->size > kMaxChecksumSize) {
        return Status::Invalid("block " + m->name + " has no checksum after it (" +
                               (sum ? "'" + sum->name + "' follows" : std::string("the archive ends")) +
                               "): the XVA is damaged or too old to verify");
      }
      b.want.assign(sum->size, '\0');
      PAMPA_RETURN_IF_ERROR(tar.Read(b.want.data(), b.want.size()));
      if (auto it = index.find(vdi); it != index.end()) {
        Cursor& c = at[it->second];
        const XvaDisk& d = disks[it->second];
        int64_t n = std::stoll(base);
        if (n <= c.last) {
          return Status::Invalid("block " + m->name + " comes after block " + std::to_string(c.last) +
                                 " of its disk: damaged archive");
        }
        uint64_t offset = c.offset + static_cast<uint64_t>(n - c.last - 1) * kXvaBlock;
        if (offset > d.size || b.len > d.size - offset) {
          return Status::Invalid("block " + m->name + " lies past the end of its disk (" + std::to_string(d.size) +
                                 " bytes): damaged archive");
        }
        b.disk = it->second;
        b.offset = offset;
        c.offset = offset + b.len;
        c.last = n;
      }  // else a disk the VM does not attach (a CD's, a suspend image): checked, not written
      pipeline.Submit(std::move(b));
      if (progress) progress(tar.position());
    }
  }();
  // A damaged block reported by a worker comes before whatever the reader met later.
  Status checked = pipeline.Finish();
  PAMPA_RETURN_IF_ERROR(checked);
  PAMPA_RETURN_IF_ERROR(read);
  for (size_t i = 0; i < disks.size(); ++i) {
    if (at[i].offset != disks[i].size) {
      return Status::Invalid("disk " + std::to_string(i) + " (" + disks[i].vdi + ") ends at byte " +
                             std::to_string(at[i].offset) + " of its " + std::to_string(disks[i].size) +
                             " in the XVA: the export is incomplete (cut short?)");
    }
  }
  return Status::Ok();
}

}  // namespace pampa
