// Virtual networks: NAT networks (a Linux bridge with an address, nftables
// masquerade and dnsmasq for DHCP) and bridged networks (an existing host
// bridge). Definitions live in the store ("networks/NAME"); the bridge and
// dnsmasq outlive pampad like QEMU does, and Activate() is idempotent.
#pragma once

#include <string>
#include <vector>

#include "store/store.h"

namespace pampa {

struct NetworkInfo {
  std::string name;
  std::string mode;    // nat | bridge
  std::string bridge;  // host bridge device
  std::string subnet;  // nat: a.b.c.d/len
  std::string gateway;
  std::string dhcp_start, dhcp_end;
  bool active = false;  // bridge exists (and dnsmasq runs, for nat)
};

class Networks {
 public:
  Networks(Store& store, std::string run_dir);

  Result<std::vector<NetworkInfo>> List();
  Result<NetworkInfo> Get(const std::string& name);
  // mode "nat" needs subnet; mode "bridge" needs an existing bridge device.
  Result<NetworkInfo> Create(const std::string& name, const std::string& mode, const std::string& subnet,
                             const std::string& bridge);
  // Creates the network when absent, then activates it.
  Status EnsureDefault(const std::string& name, const std::string& subnet);
  // Tears down the bridge, firewall rules and dnsmasq (nat) and forgets the network.
  Status Delete(const std::string& name);
  // Brings bridge, address, masquerade and DHCP up; idempotent.
  Status Activate(const NetworkInfo& net);

  // The address dnsmasq leased to mac on a NAT network ("" when none).
  std::string LeasedAddress(const std::string& network, const std::string& mac);

  // Creates a tap device on the network's bridge (replacing a stale one).
  Status CreateTap(const std::string& network, const std::string& tap);
  // Also removes the tap's limit (its ifb device).
  static void DeleteTap(const std::string& tap);
  // Limits what a tap carries each way to bytes_per_s (0: no limit): a token
  // bucket on the tap (to the guest), and one on an ifb device the tap's
  // ingress is redirected to (from the guest). This kernel may lack tc's
  // police action; mirred + ifb needs only what every kernel has.
  static Status LimitTap(const std::string& tap, uint64_t bytes_per_s);

 private:
  NetworkInfo Load(const std::string& json) const;
  std::string dir(const NetworkInfo& n) const { return run_dir_ + "/net/" + n.name; }
  Status StartDnsmasq(const NetworkInfo& n);

  Store& store_;
  std::string run_dir_;
};

// Parses "a.b.c.d/len" into host-order network address and prefix length.
Status ParseCidr(const std::string& cidr, uint32_t* network, int* prefix);
std::string FormatIpv4(uint32_t addr);

}  // namespace pampa
