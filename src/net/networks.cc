#include "net/networks.h"

#include <arpa/inet.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"
#include "base/units.h"

namespace pampa {
namespace {

bool LinkExists(const std::string& dev) { return Exists("/sys/class/net/" + dev); }

std::string NftTable(const NetworkInfo& n) { return "pampa_" + n.bridge; }

Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunChecked(argv).status();
}

}  // namespace

Status ParseCidr(const std::string& cidr, uint32_t* network, int* prefix) {
  auto bad = [&] {
    return Status::Invalid("invalid subnet '" + cidr + "': use a.b.c.d/len with len 16 to 28, e.g. 10.88.0.0/24");
  };
  auto slash = cidr.find('/');
  if (slash == std::string::npos) return bad();
  in_addr a{};
  if (inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &a) != 1) return bad();
  int len;
  try {
    size_t used;
    len = std::stoi(cidr.substr(slash + 1), &used);
    if (used != cidr.size() - slash - 1) return bad();
  } catch (...) {
    return bad();
  }
  if (len < 16 || len > 28) return bad();
  uint32_t addr = ntohl(a.s_addr);
  uint32_t mask = len == 0 ? 0 : ~0u << (32 - len);
  if (addr & ~mask)
    return Status::Invalid("invalid subnet '" + cidr + "': host bits are set (did you mean " + FormatIpv4(addr & mask) +
                           "/" + std::to_string(len) + "?)");
  *network = addr;
  *prefix = len;
  return Status::Ok();
}

std::string FormatIpv4(uint32_t addr) {
  in_addr a{htonl(addr)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

Networks::Networks(Store& store, std::string run_dir) : store_(store), run_dir_(std::move(run_dir)) {}

NetworkInfo Networks::Load(const std::string& text) const {
  auto j = nlohmann::json::parse(text, nullptr, false);
  NetworkInfo n;
  if (!j.is_object()) return n;
  n.name = j.value("name", "");
  n.mode = j.value("mode", "nat");
  n.bridge = j.value("bridge", "");
  n.subnet = j.value("subnet", "");
  n.gateway = j.value("gateway", "");
  n.dhcp_start = j.value("dhcp_start", "");
  n.dhcp_end = j.value("dhcp_end", "");
  n.active = LinkExists(n.bridge);
  if (n.active && n.mode == "nat") {
    auto pid = ReadFile(run_dir_ + "/net/" + n.name + "/dnsmasq.pid");
    n.active = pid.ok() && ProcessAlive(std::atoi(pid->c_str()), "--interface=" + n.bridge);
  }
  return n;
}

Result<std::vector<NetworkInfo>> Networks::List() {
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("networks/"));
  std::vector<NetworkInfo> out;
  for (auto& [k, v] : kvs) out.push_back(Load(v));
  return out;
}

Result<NetworkInfo> Networks::Get(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("network", name));
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get("networks/" + name));
  if (!v) return Status::NotFound("network '" + name + "' does not exist (see: pampa net list)");
  return Load(*v);
}

Result<NetworkInfo> Networks::Create(const std::string& name, const std::string& mode, const std::string& subnet,
                                     const std::string& bridge) {
  PAMPA_RETURN_IF_ERROR(ValidateName("network", name));
  if (store_.Get("networks/" + name)->has_value()) return Status::Conflict("network '" + name + "' already exists");
  PAMPA_ASSIGN_OR_RETURN(auto existing, List());
  NetworkInfo n;
  n.name = name;
  n.mode = mode;
  if (mode == "bridge") {
    if (bridge.empty()) return Status::Invalid("a bridged network needs --bridge DEVICE (an existing host bridge)");
    if (bridge.size() > 15 || bridge.find('/') != std::string::npos || !LinkExists(bridge) ||
        !Exists("/sys/class/net/" + bridge + "/bridge")) {
      return Status::Invalid("'" + bridge +
                             "' is not an existing bridge on this host (see: ip -br link show type bridge)");
    }
    if (!subnet.empty()) return Status::Invalid("a bridged network takes no --subnet: addresses come from that LAN");
    n.bridge = bridge;
  } else if (mode == "nat") {
    if (!bridge.empty()) return Status::Invalid("a NAT network creates its own bridge; --bridge is for --mode bridge");
    uint32_t net;
    int len;
    PAMPA_RETURN_IF_ERROR(ParseCidr(subnet, &net, &len));
    uint32_t size = 1u << (32 - len);
    for (const auto& o : existing) {
      uint32_t onet;
      int olen;
      if (o.mode != "nat" || !ParseCidr(o.subnet, &onet, &olen).ok()) continue;
      int common = std::min(len, olen);
      uint32_t mask = ~0u << (32 - common);
      if ((net & mask) == (onet & mask)) {
        return Status::Conflict("subnet " + subnet + " overlaps network '" + o.name + "' (" + o.subnet + ")");
      }
    }
    // Refuse a subnet the host already routes somewhere else.
    auto routes = Run({"ip", "-j", "-4", "route", "show"});
    if (routes.ok() && routes->exit_code == 0) {
      auto j = nlohmann::json::parse(routes->out, nullptr, false);
      if (j.is_array()) {
        for (auto& r : j) {
          uint32_t rnet;
          int rlen;
          std::string dst = r.value("dst", "");
          if (dst.find('/') == std::string::npos || !ParseCidr(dst, &rnet, &rlen).ok()) continue;
          int common = std::min(len, rlen);
          uint32_t mask = ~0u << (32 - common);
          if ((net & mask) == (rnet & mask)) {
            return Status::Conflict("subnet " + subnet + " is already routed on this host (" + dst + " via " +
                                    r.value("dev", "?") + "); pick another");
          }
        }
      }
    }
    n.gateway = FormatIpv4(net + 1);
    n.dhcp_start = FormatIpv4(net + std::min<uint32_t>(10, size / 4));
    n.dhcp_end = FormatIpv4(net + size - 2);
    n.subnet = subnet;
    for (int i = 0; i < 1000; ++i) {
      std::string cand = "pampa" + std::to_string(i);
      bool used = LinkExists(cand);
      for (const auto& o : existing) used |= o.bridge == cand;
      if (!used) {
        n.bridge = cand;
        break;
      }
    }
  } else {
    return Status::Invalid("network mode '" + mode + "' is unknown (use nat or bridge)");
  }
  nlohmann::json j = {{"name", n.name},        {"mode", n.mode},       {"bridge", n.bridge},
                      {"subnet", n.subnet},    {"gateway", n.gateway}, {"dhcp_start", n.dhcp_start},
                      {"dhcp_end", n.dhcp_end}};
  PAMPA_RETURN_IF_ERROR(store_.Create("networks/" + name, j.dump()));
  Status st = Activate(n);
  if (!st.ok()) {
    // Leave nothing half-made behind.
    Status ignored = Delete(name);
    (void)ignored;
    return st.Context("activating network " + name);
  }
  return Load(j.dump());
}

Status Networks::EnsureDefault(const std::string& name, const std::string& subnet) {
  auto n = Get(name);
  if (n.ok()) return Activate(*n);
  if (n.status().code() != ErrorCode::kNotFound) return n.status();
  return Create(name, "nat", subnet, "").status();
}

namespace {

// The MAC of a NAT network's bridge, fixed. A bridge without one takes the
// lowest MAC among its ports, so every VM that started or stopped with a
// lower one changed the gateway's MAC under every guest, which lost its
// gateway for seconds until ARP found it again. Made from the network's
// name, it is the same on every host of a pool: a guest that migrates finds
// its gateway unchanged. Locally administered, apart from the VMs' 52:54:00.
std::string BridgeMac(const std::string& network) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (unsigned char c : network) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:%02x:%02x:%02x:%02x:%02x", static_cast<unsigned>(h >> 32 & 0xff),
                static_cast<unsigned>(h >> 24 & 0xff), static_cast<unsigned>(h >> 16 & 0xff),
                static_cast<unsigned>(h >> 8 & 0xff), static_cast<unsigned>(h & 0xff));
  return buf;
}

}  // namespace

Status Networks::Activate(const NetworkInfo& n) {
  if (n.mode == "bridge") {
    if (!LinkExists(n.bridge))
      return Status::Unavailable("host bridge " + n.bridge + " of network " + n.name + " is missing");
    return Status::Ok();
  }
  uint32_t net;
  int len;
  PAMPA_RETURN_IF_ERROR(ParseCidr(n.subnet, &net, &len));
  if (!LinkExists(n.bridge)) {
    PAMPA_RETURN_IF_ERROR(Ip({"link", "add", n.bridge, "type", "bridge", "stp_state", "0"}));
  }
  // Also for a bridge an older pampad made without one.
  PAMPA_RETURN_IF_ERROR(Ip({"link", "set", "dev", n.bridge, "address", BridgeMac(n.name)}));
  auto addrs = Run({"ip", "-4", "-o", "addr", "show", "dev", n.bridge});
  if (!addrs.ok() || addrs->out.find(" " + n.gateway + "/") == std::string::npos) {
    PAMPA_RETURN_IF_ERROR(Ip({"addr", "add", n.gateway + "/" + std::to_string(len), "dev", n.bridge}));
  }
  PAMPA_RETURN_IF_ERROR(Ip({"link", "set", n.bridge, "up"}));
  // Masquerade traffic leaving the subnet; one table per network so delete is clean.
  if (HaveExecutable("nft")) {
    std::string rules = "table ip " + NftTable(n) + " {}\ndelete table ip " + NftTable(n) + "\ntable ip " +
                        NftTable(n) +
                        " {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n"
                        "  ip saddr " +
                        n.subnet + " ip daddr != " + n.subnet + " masquerade\n }\n}\n";
    auto r = RunChecked({"nft", "-f", "-"}, {.stdin_data = rules});
    if (!r.ok()) log::Warn("network {}: NAT rules not installed: {}", n.name, r.status().message());
    std::ofstream fwd("/proc/sys/net/ipv4/ip_forward");
    fwd << "1\n";
    if (!fwd) log::Warn("network {}: cannot enable IPv4 forwarding; guests cannot reach outside", n.name);
  } else {
    log::Warn("network {}: nft is not installed, guests get no outbound NAT", n.name);
  }
  return StartDnsmasq(n);
}

Status Networks::StartDnsmasq(const NetworkInfo& n) {
  std::string d = dir(n);
  PAMPA_RETURN_IF_ERROR(MakeDirs(d, 0755));
  auto pid = ReadFile(d + "/dnsmasq.pid");
  if (pid.ok() && ProcessAlive(std::atoi(pid->c_str()), "--interface=" + n.bridge)) return Status::Ok();
  if (!HaveExecutable("dnsmasq")) {
    return Status::Unavailable(
        "dnsmasq is not installed; NAT networks need it for DHCP (apt-get install dnsmasq-base)");
  }
  std::vector<std::string> argv = {"dnsmasq",
                                   "--keep-in-foreground",
                                   "--conf-file=/dev/null",
                                   "--no-hosts",
                                   "--bind-interfaces",
                                   "--except-interface=lo",
                                   "--interface=" + n.bridge,
                                   "--listen-address=" + n.gateway,
                                   "--dhcp-range=" + n.dhcp_start + "," + n.dhcp_end + ",12h",
                                   "--dhcp-authoritative",
                                   "--dhcp-leasefile=" + d + "/leases",
                                   "--pid-file=" + d + "/dnsmasq.pid",
                                   "--user=root"};
  PAMPA_ASSIGN_OR_RETURN(pid_t p, SpawnDetached(argv, d + "/dnsmasq.log"));
  // dnsmasq writes its pidfile once it is listening.
  for (int i = 0; i < 50; ++i) {
    auto written = ReadFile(d + "/dnsmasq.pid");
    if (written.ok() && !written->empty()) return Status::Ok();
    if (!ProcessAlive(p, "")) break;
    usleep(100 * 1000);
  }
  return Status::Unavailable("dnsmasq for network " + n.name + " did not start: " + TailFile(d + "/dnsmasq.log", 300));
}

Status Networks::Delete(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto n, Get(name));
  if (n.mode == "nat") {
    auto pid = ReadFile(dir(n) + "/dnsmasq.pid");
    if (pid.ok()) {
      pid_t p = std::atoi(pid->c_str());
      if (ProcessAlive(p, "--interface=" + n.bridge)) kill(p, SIGTERM);
    }
    if (HaveExecutable("nft")) {
      auto r = Run({"nft", "delete", "table", "ip", NftTable(n)});
      (void)r;
    }
    if (LinkExists(n.bridge)) {
      auto r = Run({"ip", "link", "del", n.bridge});
      (void)r;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir(n), ec);
  }
  return store_.Delete("networks/" + name);
}

std::string Networks::LeasedAddress(const std::string& network, const std::string& mac) {
  auto net = Get(network);
  if (!net.ok() || net->mode != "nat") return "";
  // dnsmasq's lease file: "EXPIRY MAC IP HOSTNAME CLIENT-ID" per line.
  auto text = ReadFile(dir(*net) + "/leases");
  if (!text.ok()) return "";
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string expiry, lease_mac, ip;
    if (f >> expiry >> lease_mac >> ip && strcasecmp(lease_mac.c_str(), mac.c_str()) == 0) return ip;
  }
  return "";
}

Status Networks::CreateTap(const std::string& network, const std::string& tap) {
  PAMPA_ASSIGN_OR_RETURN(auto n, Get(network));
  if (!n.active) PAMPA_RETURN_IF_ERROR(Activate(n));
  if (LinkExists(tap)) DeleteTap(tap);
  PAMPA_RETURN_IF_ERROR(Ip({"tuntap", "add", "dev", tap, "mode", "tap"}));
  Status st = Ip({"link", "set", tap, "master", n.bridge, "up"});
  if (!st.ok()) DeleteTap(tap);
  return st;
}

namespace {

// The ifb device that takes a tap's ingress: "pt..." -> "pi...".
std::string IfbName(const std::string& tap) { return "pi" + tap.substr(std::min<size_t>(2, tap.size())); }

}  // namespace

void Networks::DeleteTap(const std::string& tap) {
  for (const std::string& link : {IfbName(tap), tap}) {
    if (!LinkExists(link)) continue;
    auto r = Run({"ip", "link", "del", link});
    (void)r;
  }
}

Status Networks::LimitTap(const std::string& tap, uint64_t bytes_per_s) {
  std::string ifb = IfbName(tap);
  // What was there goes first; absent qdiscs make tc complain, harmlessly.
  for (const char* parent : {"root", "ingress"}) {
    auto r = Run({"tc", "qdisc", "del", "dev", tap, parent});
    (void)r;
  }
  if (bytes_per_s == 0) {
    if (LinkExists(ifb)) PAMPA_RETURN_IF_ERROR(RunChecked({"ip", "link", "del", ifb}).status());
    return Status::Ok();
  }
  // A tenth of a second of traffic may pass in one burst (at least 64 KiB).
  std::string rate = std::to_string(bytes_per_s * 8) + "bit";
  std::string burst = std::to_string(std::max<uint64_t>(bytes_per_s / 10, 64 * 1024)) + "b";
  auto tbf = [&](const std::string& dev) {
    return RunChecked(
               {"tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms"})
        .status();
  };
  Status st = tbf(tap);
  if (st.ok() && !LinkExists(ifb)) st = RunChecked({"ip", "link", "add", ifb, "type", "ifb"}).status();
  if (st.ok()) st = RunChecked({"ip", "link", "set", ifb, "up"}).status();
  if (st.ok()) st = tbf(ifb);
  if (st.ok()) st = RunChecked({"tc", "qdisc", "add", "dev", tap, "handle", "ffff:", "ingress"}).status();
  if (st.ok()) {
    st = RunChecked({"tc",  "filter", "add", "dev", tap, "parent", "ffff:",  "protocol", "all",      "prio", "10",
                     "u32", "match",  "u32", "0",   "0", "action", "mirred", "egress",   "redirect", "dev",  ifb})
             .status();
  }
  return st.Context("limiting " + tap + " to " + FormatSize(bytes_per_s) + "/s");
}

}  // namespace pampa
