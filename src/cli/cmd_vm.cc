// pampa vm ...: the VM lifecycle.
#include <iostream>
#include <tuple>

#include "base/fs.h"
#include "base/units.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {
namespace {

using json = nlohmann::json;

std::string VmPath(const std::string& name) { return "/api/v1/vms/" + name; }

// --disk-iops/--disk-bps [--disk N] and --net-bps [--nic N] of vm edit, as the
// request's disk_limits and nic_limits; without --disk (--nic), for every one
// the VM has. Returns 0, or the exit code of an error it printed.
int DeviceLimits(Globals& g, const CLI::App& cmd, const std::string& vm, uint64_t iops, const std::string& disk_bps,
                 unsigned disk, const std::string& net_bps, unsigned nic, json* body) {
  bool disks = cmd.count("--disk-iops") || cmd.count("--disk-bps"), nics = cmd.count("--net-bps");
  if (cmd.count("--disk") && !disks) return PrintError("--disk goes with --disk-iops or --disk-bps");
  if (cmd.count("--nic") && !nics) return PrintError("--nic goes with --net-bps");
  if (!disks && !nics) return 0;
  auto bytes = [](const std::string& flag, const std::string& text) -> Result<uint64_t> {
    if (text == "0") return uint64_t{0};
    auto size = ParseSize(text);
    if (!size.ok()) return size.status().Context(flag + " (bytes per second, e.g. 20M; 0: no limit)");
    return *size;
  };
  Result<json> shown = json::object();
  if ((disks && !cmd.count("--disk")) || (nics && !cmd.count("--nic"))) shown = g.client().Call("GET", VmPath(vm));
  if (!shown.ok()) return PrintError(shown.status().message());
  auto indexes = [&](const char* flag, const char* list, unsigned one) {
    std::vector<size_t> all;
    if (cmd.count(flag)) return std::vector<size_t>{one};
    for (size_t i = 0; i < shown->value(list, json::array()).size(); ++i) all.push_back(i);
    return all;
  };
  if (disks) {
    json limit = json::object();
    if (cmd.count("--disk-iops")) limit["iops"] = iops;
    if (cmd.count("--disk-bps")) {
      auto b = bytes("--disk-bps", disk_bps);
      if (!b.ok()) return PrintError(b.status().message());
      limit["bps"] = *b;
    }
    std::vector<size_t> which = indexes("--disk", "disks", disk);
    if (which.empty()) return PrintError("vm " + vm + " has no disk to limit");
    for (size_t i : which) {
      limit["disk"] = i;
      (*body)["disk_limits"].push_back(limit);
    }
  }
  if (nics) {
    auto b = bytes("--net-bps", net_bps);
    if (!b.ok()) return PrintError(b.status().message());
    std::vector<size_t> which = indexes("--nic", "nics", nic);
    if (which.empty()) return PrintError("vm " + vm + " has no NIC to limit");
    for (size_t i : which) (*body)["nic_limits"].push_back({{"nic", i}, {"bps", *b}});
  }
  return 0;
}

// --ci-* options of vm create, clone and edit: the "cloud_init" object of
// the request. The key and password files are read here, by the CLI.
class CloudInitOptions {
 public:
  void Add(CLI::App* cmd) {
    cmd_ = cmd;
    cmd->add_option("--ci-user", user_, "cloud-init: create this user (sudo); '' for the image's default user");
    cmd->add_option("--ci-ssh-key", key_files_, "cloud-init: authorized keys from this file (repeatable; '' clears)");
    cmd->add_option("--ci-password-file", password_file_, "cloud-init: the user's password, first line of FILE");
    cmd->add_option("--ci-ip", ip_, "cloud-init: first NIC's address, CIDR (10.0.0.5/24) or dhcp");
    cmd->add_option("--ci-gw", gateway_, "cloud-init: default gateway (with a static --ci-ip)");
    cmd->add_option("--ci-dns", dns_, "cloud-init: DNS server (with a static --ci-ip)");
    cmd->add_option("--ci-hostname", hostname_, "cloud-init: the guest's hostname");
  }
  // Empty when no --ci- option was given.
  Result<json> Body() const {
    json ci = json::object();
    for (auto [flag, key, value] : {std::tuple{"--ci-user", "user", &user_}, std::tuple{"--ci-ip", "ip", &ip_},
                                    std::tuple{"--ci-gw", "gateway", &gateway_}, std::tuple{"--ci-dns", "dns", &dns_},
                                    std::tuple{"--ci-hostname", "hostname", &hostname_}}) {
      if (cmd_->count(flag)) ci[key] = *value;
    }
    if (cmd_->count("--ci-ssh-key")) {
      ci["ssh_keys"] = json::array();
      for (const auto& file : key_files_) {
        if (file.empty()) continue;
        PAMPA_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
        size_t at = 0;
        while (at < text.size()) {
          size_t end = text.find('\n', at);
          std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
          at = end == std::string::npos ? text.size() : end + 1;
          while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
          if (!line.empty() && line[0] != '#') ci["ssh_keys"].push_back(line);
        }
      }
    }
    if (cmd_->count("--ci-password-file")) {
      std::string password;
      if (!password_file_.empty()) {
        PAMPA_ASSIGN_OR_RETURN(password, ReadFile(password_file_));
        password = password.substr(0, password.find('\n'));
        if (password.empty())
          return Status::Invalid(password_file_ + " is empty: write the password on its first line");
      }
      ci["password"] = password;
    }
    return ci;
  }

 private:
  CLI::App* cmd_ = nullptr;
  std::string user_, password_file_, ip_, gateway_, dns_, hostname_;
  std::vector<std::string> key_files_;
};

// --cpu-model, --sockets/--cores/--threads and --boot-order of vm create and edit.
class MachineFlags {
 public:
  void Add(CLI::App* cmd) {
    cmd_ = cmd;
    cmd->add_option("--cpu-model", cpu_model_, "QEMU CPU model (host, max, Skylake-Server...; '' for the default)");
    cmd->add_option("--sockets", sockets_, "CPU sockets (the CPUs are sockets x cores x threads)");
    cmd->add_option("--cores", cores_, "cores per socket");
    cmd->add_option("--threads", threads_, "threads per core");
    cmd->add_option("--boot-order", boot_order_, "boot devices in order, of disk, cdrom, net (such as cdrom,disk)");
  }
  void AddTo(json& body) const {
    if (cmd_->count("--cpu-model")) body["cpu_model"] = cpu_model_;
    if (cmd_->count("--sockets")) body["sockets"] = sockets_;
    if (cmd_->count("--cores")) body["cores"] = cores_;
    if (cmd_->count("--threads")) body["threads"] = threads_;
    if (cmd_->count("--boot-order")) {
      json order = json::array();
      size_t at = 0;
      while (at <= boot_order_.size()) {
        size_t comma = boot_order_.find(',', at);
        if (comma == std::string::npos) comma = boot_order_.size();
        order.push_back(boot_order_.substr(at, comma - at));
        at = comma + 1;
      }
      body["boot_order"] = order;
    }
  }

 private:
  CLI::App* cmd_ = nullptr;
  std::string cpu_model_, boot_order_;
  int sockets_ = 0, cores_ = 0, threads_ = 0;
};

// wide: each VM has its "addresses" (vm list --wide), shown as a column.
int PrintVmList(const json& vms, bool as_json, bool wide) {
  if (as_json) {
    PrintJson(vms);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (auto& v : vms) {
    std::string state = v.value("template", false) ? "template" : v.value("state", "");
    if (!v.value("busy", "").empty()) state += " (" + v.value("busy", "") + ")";
    rows.push_back({v.value("name", ""), state, std::to_string(v.value("cpus", 0)),
                    std::to_string(v.value("memory_mib", 0)) + " MiB", std::to_string(v["disks"].size()),
                    v.value("autostart", false) ? "yes" : "no", v.value("host", "")});
    if (wide) {
      std::string addresses;
      for (auto& a : v.value("addresses", json::array())) {
        addresses += (addresses.empty() ? "" : " ") + a.value("address", "");
      }
      rows.back().push_back(addresses.empty() ? "-" : addresses);
    }
  }
  std::vector<std::string> head = {"NAME", "STATE", "CPUS", "MEMORY", "DISKS", "AUTOSTART", "HOST"};
  if (wide) head.emplace_back("ADDRESSES");
  PrintTable(head, rows);
  return 0;
}

// " (2 sockets x 2 cores x 1 thread, Skylake-Server)" when the VM sets them.
std::string Topology(const json& v) {
  std::vector<std::string> parts;
  if (v.contains("topology")) {
    const json& t = v["topology"];
    parts.push_back(std::to_string(t.value("sockets", 0)) + " sockets x " + std::to_string(t.value("cores", 0)) +
                    " cores x " + std::to_string(t.value("threads", 0)) + " threads");
  }
  if (!v.value("cpu_model", "").empty()) parts.push_back("model " + v.value("cpu_model", ""));
  std::string out;
  for (auto& p : parts) out += (out.empty() ? " (" : ", ") + p;
  return out.empty() ? out : out + ")";
}

int PrintVm(const json& v, bool as_json) {
  if (as_json) {
    PrintJson(v);
    return 0;
  }
  std::cout << "name:      " << v.value("name", "") << "\n"
            << "state:     " << v.value("state", "")
            << (v.value("reason", "").empty() ? "" : " (" + v.value("reason", "") + ")") << "\n"
            << "uuid:      " << v.value("uuid", "") << "\n"
            << "host:      " << v.value("host", "") << "\n"
            << "cpus:      " << v.value("cpus", 0) << Topology(v) << "\n"
            << "memory:    " << v.value("memory_mib", 0) << " MiB"
            << (v.value("memory_min_mib", 0) > 0
                    ? " (dynamic, at least " + std::to_string(v.value("memory_min_mib", 0)) + " MiB" +
                          (v.contains("balloon_mib") ? "; " + std::to_string(v.value("balloon_mib", 0)) + " MiB now"
                                                     : "") +
                          ")"
                    : "")
            << "\n"
            << "firmware:  " << v.value("firmware", "") << "\n"
            << "autostart: " << (v.value("autostart", false) ? "yes" : "no") << "\n";
  if (v.value("ha", false)) std::cout << "ha:        on (priority " << v.value("ha_priority", 0) << ")\n";
  if (!v.value("boot_order", json::array()).empty()) {
    std::string order;
    for (auto& d : v["boot_order"]) order += (order.empty() ? "" : ",") + d.get<std::string>();
    std::cout << "boot:      " << order << "\n";
  }
  if (v.value("template", false))
    std::cout << "template:  yes (clones only: pampa vm clone " << v.value("name", "") << " NEW)\n";
  {
    std::string cpu;
    if (v.value("cpu_weight", 100) != 100) cpu += "weight " + std::to_string(v.value("cpu_weight", 100));
    if (v.value("cpu_cap", 0) > 0)
      cpu += (cpu.empty() ? "" : ", ") + ("cap " + std::to_string(v.value("cpu_cap", 0)) + "%");
    if (!v.value("cpu_pin", "").empty()) cpu += (cpu.empty() ? "" : ", ") + ("pinned to " + v.value("cpu_pin", ""));
    if (!cpu.empty()) std::cout << "cpu share: " << cpu << "\n";
  }
  if (v.contains("hotplug_ports")) {
    std::cout << "hot-plug:  " << v["hotplug_ports"].value("disks", 0) << " disk and "
              << v["hotplug_ports"].value("nics", 0)
              << " NIC slots while it runs (edited stopped and without snapshots, it gets the ones it needs)\n";
  }
  if (v.value("pid", 0) != 0) std::cout << "pid:       " << v.value("pid", 0) << " (" << v.value("accel", "") << ")\n";
  for (auto& d : v["disks"]) {
    std::cout << "disk:      " << d.value("pool", "") << "/" << d.value("volume", "")
              << (d.value("base", "").empty() ? "" : " (linked to " + d.value("base", "") + ")");
    if (d.value("iops", 0) > 0) std::cout << ", at most " << d.value("iops", 0) << " IOPS";
    if (d.value("bps", 0) > 0) std::cout << ", at most " << HumanSize(d.value("bps", uint64_t{0})) << "/s";
    std::cout << "\n";
  }
  for (auto& n : v["nics"]) {
    std::cout << "nic:       " << n.value("network", "") << " " << n.value("mac", "");
    if (n.value("bps", 0) > 0) std::cout << ", at most " << HumanSize(n.value("bps", uint64_t{0})) << "/s each way";
    std::cout << "\n";
  }
  if (!v.value("kernel", "").empty()) std::cout << "kernel:    " << v.value("kernel", "") << "\n";
  if (!v.value("initrd", "").empty()) std::cout << "initrd:    " << v.value("initrd", "") << "\n";
  if (!v.value("append", "").empty()) std::cout << "append:    " << v.value("append", "") << "\n";
  if (!v.value("cdrom", "").empty()) std::cout << "cdrom:     " << v.value("cdrom", "") << "\n";
  if (v.contains("cloud_init")) {
    const json& c = v["cloud_init"];
    std::string line;
    for (auto key : {"user", "hostname", "ip", "gateway", "dns"}) {
      if (!c.value(key, "").empty()) line += std::string(line.empty() ? "" : ", ") + key + " " + c.value(key, "");
    }
    size_t keys = c.value("ssh_keys", json::array()).size();
    if (keys) line += (line.empty() ? "" : ", ") + std::to_string(keys) + " ssh key(s)";
    if (!c.value("password_hash", "").empty()) line += std::string(line.empty() ? "" : ", ") + "password set";
    std::cout << "cloud-init: " << line << "\n";
  }
  for (auto& a : v.value("addresses", json::array())) {
    std::cout << "address:   " << a.value("interface", "") << " " << a.value("address", "") << "\n";
  }
  return 0;
}

// An addresses answer (GET /vms/NAME/addresses) as one list:
// [{"interface": the guest's name for it, or the network, "address"}].
json FlatAddresses(const json& reply) {
  json out = json::array();
  for (const auto& i : reply.value("interfaces", json::array())) {
    for (const auto& a : i.value("addresses", json::array())) {
      out.push_back({{"interface", i.value("name", i.value("network", ""))}, {"address", a}});
    }
  }
  return out;
}

// The guest's addresses as vm show lists them, for a VM whose QEMU runs;
// none when neither its agent nor a lease knows.
json GuestAddresses(Globals& g, const json& vm) {
  std::string state = vm.value("state", "");
  if (state != "running" && state != "paused") return json::array();
  auto r = g.client().Call("GET", VmPath(vm.value("name", "")) + "/addresses");
  return r.ok() ? FlatAddresses(*r) : json::array();
}

// vm start|stop|reboot|pause|resume|delete NAME
void AddSimple(CLI::App* vm, Globals& g, const std::string& verb, const std::string& method, const std::string& help,
               const std::string& done) {
  auto cmd = vm->add_subcommand(verb, help);
  auto name = std::make_shared<std::string>();
  cmd->add_option("name", *name, "VM name")->required();
  Bind(cmd, g, [&g, name, verb, method, done] {
    std::string path = verb == "delete" ? VmPath(*name) : VmPath(*name) + "/" + verb;
    auto r = g.client().Call(method, path, method == "POST" ? json::object() : json());
    if (!r.ok()) return PrintError(r.status().message());
    std::cout << done << " " << *name << "\n";
    return 0;
  });
}

// vm import NAME --xva FILE | --ova FILE: a VM from another hypervisor's export.
void AddVmImport(CLI::App* vm, Globals& g) {
  struct Opts {
    std::string name, xva, ova, pool, network, bus, from_host, identity, known_hosts;
    std::vector<std::string> disks;
    bool second_pass = false;
    bool async = false;
  };
  auto o = std::make_shared<Opts>();
  auto cmd = vm->add_subcommand("import", "a new VM from an export: vm import NAME --xva FILE | --ova FILE");
  cmd->add_option("name", o->name, "the new VM's name")->required();
  auto xva = cmd->add_option("--xva", o->xva, "a XenServer/XCP-ng export (xe vm-export), on pampad's host");
  auto ova = cmd->add_option("--ova", o->ova, "an OVF package (.ova from VMware, VirtualBox), on pampad's host");
  xva->excludes(ova);
  cmd->add_option("--pool", o->pool, "pool for the disks (default: default)");
  cmd->add_option("--network", o->network, "network for every NIC (default: default)");
  cmd->add_option("--bus", o->bus, "disk bus: virtio (default), scsi, or sata for a guest without virtio drivers");
  auto from = cmd->add_option("--from-host", o->from_host, "P2V: ssh://root@server, a running physical server");
  from->excludes(xva)->excludes(ova);
  cmd->add_option("--disk", o->disks, "with --from-host: a block device of the server to copy (repeatable)");
  cmd->add_option("--ssh-key", o->identity, "with --from-host: the private key (default: root's own keys)");
  cmd->add_option("--known-hosts", o->known_hosts, "with --from-host: known_hosts file (default: root's)");
  cmd->add_flag("--second-pass", o->second_pass,
                "with --from-host: copy again only what changed since the first pass (stop the services first)");
  cmd->add_flag("--async", o->async, "print the task id and return at once");
  Bind(cmd, g, [&g, o] {
    if (o->xva.empty() && o->ova.empty() && o->from_host.empty()) {
      return PrintError("give what to import: --xva FILE, --ova FILE or --from-host ssh://root@server --disk DEV");
    }
    if (o->from_host.empty() && (!o->disks.empty() || o->second_pass)) {
      return PrintError("--disk and --second-pass go with --from-host");
    }
    json body = {{"name", o->name}};
    if (!o->xva.empty()) body["xva"] = AbsolutePath(o->xva);
    if (!o->ova.empty()) body["ova"] = AbsolutePath(o->ova);
    if (!o->pool.empty()) body["pool"] = o->pool;
    if (!o->network.empty()) body["network"] = o->network;
    if (!o->bus.empty()) body["disk_bus"] = o->bus;
    if (!o->from_host.empty()) body["from_host"] = o->from_host;
    if (!o->disks.empty()) body["disks"] = o->disks;
    if (!o->identity.empty()) body["identity"] = AbsolutePath(o->identity);
    if (!o->known_hosts.empty()) body["known_hosts"] = AbsolutePath(o->known_hosts);
    if (o->second_pass) body["second_pass"] = true;
    auto r = g.client().Call("POST", "/api/v1/vms/import", body);
    if (!r.ok()) return PrintError(r.status().message());
    return FinishTask(g, (*r)["task"], o->async,
                      "imported vm " + o->name + " from " +
                          (!o->from_host.empty() ? o->from_host
                           : o->xva.empty()      ? o->ova
                                                 : o->xva) +
                          (o->second_pass ? " (second pass)" : ""));
  });
}

}  // namespace

void AddVmCommands(CLI::App& app, Globals& g) {
  auto vm = app.add_subcommand("vm", "virtual machines");
  vm->require_subcommand(1);

  {
    struct Opts {
      std::string name, memory, pool, image, cdrom, kernel, initrd, append, firmware, host;
      int cpus = 0;
      std::vector<std::string> disks, nets;
      bool autostart = false, async = false, as_json = false;
      CloudInitOptions ci;
      MachineFlags machine;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = vm->add_subcommand("create", "define a VM (its disks are volumes in a pool)");
    o->ci.Add(cmd);
    o->machine.Add(cmd);
    cmd->add_option("name", o->name, "VM name: a-z, 0-9 and '-'")->required();
    cmd->add_option("--cpus", o->cpus, "virtual CPUs (or give --sockets/--cores/--threads)");
    cmd->add_option("--memory", o->memory, "memory, e.g. 512M or 2G")->required();
    cmd->add_option("--pool", o->pool, "pool for the disks (default: default)");
    cmd->add_option("--disk-image", o->image, "import this image (raw, qcow2, vmdk, vhd, vhdx) as the first disk");
    cmd->add_option("--disk", o->disks, "add a blank disk of this size (repeatable)");
    cmd->add_option("--cdrom", o->cdrom, "ISO image to attach");
    cmd->add_option("--kernel", o->kernel, "boot this kernel directly");
    cmd->add_option("--initrd", o->initrd, "initrd for --kernel");
    cmd->add_option("--append", o->append, "kernel command line for --kernel");
    cmd->add_option("--net", o->nets, "network for a NIC (repeatable), or 'none' (default: default)");
    cmd->add_option("--firmware", o->firmware, "bios or uefi");
    cmd->add_flag("--autostart", o->autostart, "start this VM when the host boots");
    cmd->add_option("--host", o->host, "in a pool: the host to run it on (default: the one with most room)");
    cmd->add_flag("--async", o->async, "print the task id and return at once");
    cmd->add_flag("--json", o->as_json, "print the answer (task, vm, host, warnings) as JSON");
    Bind(cmd, g, [&g, o, cmd] {
      json body = {{"name", o->name}, {"memory", o->memory}};
      if (cmd->count("--cpus")) body["cpus"] = o->cpus;
      o->machine.AddTo(body);
      if (!o->pool.empty()) body["pool"] = o->pool;
      if (!o->image.empty()) body["disk_image"] = AbsolutePath(o->image);
      if (!o->disks.empty()) body["disks"] = o->disks;
      if (!o->cdrom.empty()) body["cdrom"] = AbsolutePath(o->cdrom);
      if (!o->kernel.empty()) body["kernel"] = AbsolutePath(o->kernel);
      if (!o->initrd.empty()) body["initrd"] = AbsolutePath(o->initrd);
      if (!o->append.empty()) body["append"] = o->append;
      if (!o->firmware.empty()) body["firmware"] = o->firmware;
      if (o->autostart) body["autostart"] = true;
      if (!o->host.empty()) body["host"] = o->host;
      auto ci = o->ci.Body();
      if (!ci.ok()) return PrintError(ci.status().message());
      if (!ci->empty()) body["cloud_init"] = *ci;
      if (!o->nets.empty()) {
        if (o->nets.size() == 1 && o->nets[0] == "none")
          body["networks"] = json::array();
        else
          body["networks"] = o->nets;
      }
      auto r = g.client().Call("POST", "/api/v1/vms", body);
      if (!r.ok()) return PrintError(r.status().message());
      if (o->as_json) {
        if (!o->async) {
          auto t = g.client().WaitTask((*r)["task"], /*quiet=*/true);
          if (!t.ok()) return PrintError(t.status().message());
        }
        PrintJson(*r);
        return 0;
      }
      for (auto& w : r->value("warnings", json::array())) std::cerr << "warning: " << w.get<std::string>() << "\n";
      return FinishTask(g, (*r)["task"], o->async, "created vm " + o->name);
    });
  }

  {
    auto as_json = std::make_shared<bool>(false);
    auto wide = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("list", "list VMs");
    cmd->add_flag("--json", *as_json, "print JSON");
    cmd->add_flag("--wide", *wide, "also the guests' addresses (one question per running VM)");
    Bind(cmd, g, [&g, as_json, wide] {
      auto r = g.client().Call("GET", "/api/v1/vms");
      if (!r.ok()) return PrintError(r.status().message());
      if (*wide) {
        for (auto& v : *r) v["addresses"] = GuestAddresses(g, v);
      }
      return PrintVmList(*r, *as_json, *wide);
    });
  }

  {
    struct Opts {
      std::string name, to;
      uint64_t bandwidth = 0;
      int max_downtime = 0;
      bool async = false, as_json = false;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = vm->add_subcommand("migrate", "move a VM to another host of the pool (live when it runs)");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("--to", o->to, "the target host (see: pampa host list)")->required();
    cmd->add_option("--bandwidth", o->bandwidth, "MiB/s at most (default: as fast as the link goes)");
    cmd->add_option("--max-downtime", o->max_downtime, "milliseconds the guest may stop at the switch (default 100)");
    cmd->add_flag("--async", o->async, "print the task id and return at once");
    cmd->add_flag("--json", o->as_json, "print the finished task (downtime, total time) as JSON");
    Bind(cmd, g, [&g, o] {
      json body = {{"to", o->to}};
      if (o->bandwidth > 0) body["bandwidth_mib"] = o->bandwidth;
      if (o->max_downtime > 0) body["max_downtime_ms"] = o->max_downtime;
      auto r = g.client().Call("POST", VmPath(o->name) + "/migrate", body);
      if (!r.ok()) return PrintError(r.status().message());
      if (o->async) return FinishTask(g, (*r)["task"], true, "");
      auto t = g.client().WaitTask((*r)["task"], o->as_json);
      if (!t.ok()) return PrintError(t.status().message());
      if (o->as_json) {
        PrintJson(*t);
        return 0;
      }
      const json& res = (*t)["result"];
      std::cout << "moved vm " << o->name << " to host " << o->to;
      if (res.value("live", false)) {
        std::cout << " (live: downtime " << int(res.value("downtime_ms", 0.0)) << " ms, total "
                  << int(res.value("total_ms", 0.0)) << " ms)";
      }
      std::cout << "\n";
      return 0;
    });
  }

  {
    auto name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("show", "show one VM");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, name, as_json] {
      auto r = g.client().Call("GET", VmPath(*name));
      if (!r.ok()) return PrintError(r.status().message());
      // For a person: the addresses too (an agent that does not answer costs
      // up to 3 s; scripts polling --json do not pay it: vm ip --json).
      if (!*as_json) (*r)["addresses"] = GuestAddresses(g, *r);
      return PrintVm(*r, *as_json);
    });
  }

  {
    auto name = std::make_shared<std::string>();
    auto since = std::make_shared<std::string>("1h");
    auto as_json = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("stats",
                                  "a VM's CPU, memory, disk and network history (every 5 s for an hour, "
                                  "each minute for a day, each 30 min for a year)");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_option("--since", *since, "how far back: 10m, 1h, 1d, 7w...")->capture_default_str();
    cmd->add_flag("--json", *as_json, "print JSON (every point)");
    Bind(cmd, g, [&g, name, since, as_json] {
      return PrintStats(g.client().Call("GET", VmPath(*name) + "/stats?since=" + *since), *as_json,
                        {{"cpu_percent", "CPU", "%"},
                         {"memory_assigned_bytes", "MEMORY", "B"},
                         {"memory_used_bytes", "USED", "B"},
                         {"disk_read_bps", "DISK READ", "B/s"},
                         {"disk_write_bps", "DISK WRITE", "B/s"},
                         {"disk_read_iops", "READS", "/s"},
                         {"disk_write_iops", "WRITES", "/s"},
                         {"net_rx_bps", "NET RX", "B/s"},
                         {"net_tx_bps", "NET TX", "B/s"}});
    });
  }

  {
    auto name = std::make_shared<std::string>();
    auto force = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("start", "start a VM");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_flag("--force", *force, "start even when the VM has more memory than the host");
    Bind(cmd, g, [&g, name, force] {
      json body = json::object();
      if (*force) body["force"] = true;
      auto r = g.client().Call("POST", VmPath(*name) + "/start", body);
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "started " << *name << "\n";
      return 0;
    });
  }
  AddSimple(vm, g, "stop", "POST", "power a VM off at once (like pulling the plug)", "stopped");
  AddSimple(vm, g, "reboot", "POST", "reboot a VM (through the guest agent, else a hard reset)", "rebooting");
  AddSimple(vm, g, "pause", "POST", "pause a VM's CPUs", "paused");
  AddSimple(vm, g, "resume", "POST", "resume a paused VM", "resumed");
  AddSimple(vm, g, "delete", "DELETE", "delete a stopped VM and its disks", "deleted");

  {
    auto name = std::make_shared<std::string>();
    auto timeout = std::make_shared<int>(120);
    auto async = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("shutdown", "ask the guest to power off (ACPI), force it off after --timeout");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_option("--timeout", *timeout, "seconds before forcing it off")->capture_default_str();
    cmd->add_flag("--async", *async, "print the task id and return at once");
    Bind(cmd, g, [&g, name, timeout, async] {
      auto r = g.client().Call("POST", VmPath(*name) + "/shutdown", {{"timeout", *timeout}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*async) return FinishTask(g, (*r)["task"], true, "");
      auto t = g.client().WaitTask((*r)["task"]);
      if (!t.ok()) return PrintError(t.status().message());
      bool forced = (*t)["result"].value("forced", false);
      std::cout << (forced ? "forced off " : "shut down ") << *name << "\n";
      return 0;
    });
  }

  {
    auto disk = vm->add_subcommand("disk", "a VM's disks");
    disk->require_subcommand(1);
    auto name = std::make_shared<std::string>();
    auto index = std::make_shared<unsigned>(0);
    auto size = std::make_shared<std::string>();
    auto cmd = disk->add_subcommand("resize", "grow a disk, live while the VM runs: vm disk resize NAME N +5G|20G");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_option("disk", *index, "the disk's number (0 is the first)")->required();
    cmd->add_option("size", *size, "new size (20G) or growth (+5G)")->required();
    Bind(cmd, g, [&g, name, index, size] {
      auto r =
          g.client().Call("POST", VmPath(*name) + "/disks/" + std::to_string(*index) + "/resize", {{"size", *size}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "disk " << *index << " of " << *name << " is now " << HumanSize(r->value("size", 0ull)) << "\n";
      return 0;
    });
  }

  {
    struct Opts {
      std::string source, name, snapshot, pool;
      bool linked = false, async = false;
      CloudInitOptions ci;
    };
    auto o = std::make_shared<Opts>();
    auto cmd =
        vm->add_subcommand("clone", "a new VM from another's disks: vm clone SOURCE NEW [--linked] [--snapshot S]");
    cmd->add_option("source", o->source, "the VM (or template) to clone")->required();
    cmd->add_option("name", o->name, "the new VM's name")->required();
    cmd->add_flag("--linked", o->linked, "qcow2 overlays on a template's disks (instant, shares its data)");
    o->ci.Add(cmd);
    cmd->add_option("--snapshot", o->snapshot, "copy the disks as this snapshot has them (the source may run)");
    cmd->add_option("--pool", o->pool, "where a full clone's disks go (default: beside the source's)");
    cmd->add_flag("--async", o->async, "print the task id and return at once");
    Bind(cmd, g, [&g, o] {
      json body = {{"name", o->name}};
      if (o->linked) body["linked"] = true;
      if (!o->snapshot.empty()) body["snapshot"] = o->snapshot;
      if (!o->pool.empty()) body["pool"] = o->pool;
      auto ci = o->ci.Body();
      if (!ci.ok()) return PrintError(ci.status().message());
      if (!ci->empty()) body["cloud_init"] = *ci;
      auto r = g.client().Call("POST", VmPath(o->source) + "/clone", body);
      if (!r.ok()) return PrintError(r.status().message());
      return FinishTask(g, (*r)["task"], o->async,
                        "vm " + o->name + " cloned from " + o->source + (o->linked ? " (linked)" : ""));
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto cmd = vm->add_subcommand("template", "make a stopped VM a template for good (never starts; clones only)");
    cmd->add_option("name", *name, "VM name")->required();
    Bind(cmd, g, [&g, name] {
      auto r = g.client().Call("POST", VmPath(*name) + "/template", json::object());
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "vm " << *name << " is now a template: pampa vm clone " << *name << " NEW [--linked]\n";
      return 0;
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto to = std::make_shared<std::string>();
    auto cmd = vm->add_subcommand("rename", "give a stopped VM a new name: vm rename OLD NEW");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_option("new", *to, "its new name")->required();
    Bind(cmd, g, [&g, name, to] {
      auto r = g.client().Call("POST", VmPath(*name) + "/rename", {{"name", *to}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "vm " << *name << " is now " << *to << "\n";
      return 0;
    });
  }

  {
    struct Opts {
      std::string name, memory, autostart, kernel, initrd, append, cdrom, mac, bus, ha;
      std::string cpu_pin, memory_min, disk_bps, net_bps;
      int cpus = 0, ha_priority = 0, cpu_weight = 100, cpu_cap = 0;
      uint64_t disk_iops = 0;
      unsigned disk = 0, nic = 0;
      std::vector<std::string> add_disks, add_nics;
      unsigned remove_disk = 0, remove_nic = 0;
      bool keep_volume = false, no_cloud_init = false;
      CloudInitOptions ci;
      MachineFlags machine;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = vm->add_subcommand(
        "edit", "change a VM's settings (disks, NICs and the CD also while it runs; the rest once it is stopped)");
    o->ci.Add(cmd);
    o->machine.Add(cmd);
    cmd->add_flag("--no-cloud-init", o->no_cloud_init, "remove every cloud-init setting (the seed CD goes)");
    cmd->add_option("--add-disk", o->add_disks, "add a blank disk of SIZE, or an existing POOL/VOLUME (repeatable)");
    cmd->add_option("--bus", o->bus, "with --add-disk: virtio (default), scsi or sata (for guests without virtio)");
    cmd->add_option("--remove-disk", o->remove_disk, "remove disk N (0 is the first); its volume goes too");
    cmd->add_flag("--keep-volume", o->keep_volume, "with --remove-disk: keep the volume in its pool");
    cmd->add_option("--add-nic", o->add_nics, "add a NIC on network NET (repeatable)");
    cmd->add_option("--mac", o->mac, "with one --add-nic: its MAC (default: a new one)");
    cmd->add_option("--remove-nic", o->remove_nic, "remove NIC N (0 is the first)");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("--cpus", o->cpus, "virtual CPUs");
    cmd->add_option("--memory", o->memory, "memory, e.g. 1G");
    cmd->add_option("--autostart", o->autostart, "true or false");
    cmd->add_option("--ha", o->ha,
                    "on or off: in a pool, start the VM on another host when its host is lost (disks in a shared "
                    "pool), and again when it crashes");
    cmd->add_option("--ha-priority", o->ha_priority, "0..1000: HA VMs with a higher one are started first");
    cmd->add_option("--kernel", o->kernel, "kernel for direct boot ('' to remove)");
    cmd->add_option("--initrd", o->initrd, "initrd ('' to remove)");
    cmd->add_option("--append", o->append, "kernel command line");
    cmd->add_option("--cdrom", o->cdrom, "ISO image to put in the CD drive, or none to eject it");
    cmd->add_option("--cpu-weight", o->cpu_weight, "relative CPU share, 1..10000 (default 100), also while it runs");
    cmd->add_option("--cpu-cap", o->cpu_cap, "most CPU it may use, in percent of one core (150: 1.5 cores); 0: none");
    cmd->add_option("--cpu-pin", o->cpu_pin, "host cores its vCPUs run on, e.g. 0-1,3; none: any");
    cmd->add_option(
        "--memory-min", o->memory_min,
        "dynamic memory: the balloon may take the guest down to SIZE when the host needs memory; 0: static");
    cmd->add_option("--memory-max", o->memory, "dynamic memory's maximum (the VM's memory; once it is stopped)");
    cmd->add_option("--disk-iops", o->disk_iops, "limit a disk's I/O operations per second (0: none)");
    cmd->add_option("--disk-bps", o->disk_bps, "limit a disk's bytes per second, e.g. 50M (0: none)");
    cmd->add_option("--disk", o->disk, "with --disk-iops/--disk-bps: the disk (0 is the first); default: every disk");
    cmd->add_option("--net-bps", o->net_bps, "limit a NIC's bytes per second each way, e.g. 10M (0: none)");
    cmd->add_option("--nic", o->nic, "with --net-bps: the NIC (0 is the first); default: every NIC");
    Bind(cmd, g, [&g, o, cmd] {
      json body = json::object();
      if (cmd->count("--cpus")) body["cpus"] = o->cpus;
      if (cmd->count("--memory") && cmd->count("--memory-max"))
        return PrintError("give --memory or --memory-max, not both");
      if (cmd->count("--memory") || cmd->count("--memory-max")) body["memory"] = o->memory;
      if (cmd->count("--cpu-weight")) body["cpu_weight"] = o->cpu_weight;
      if (cmd->count("--cpu-cap")) body["cpu_cap"] = o->cpu_cap;
      if (cmd->count("--cpu-pin")) body["cpu_pin"] = o->cpu_pin == "none" ? "" : o->cpu_pin;
      if (cmd->count("--memory-min")) body["memory_min"] = o->memory_min;
      auto limits = DeviceLimits(g, *cmd, o->name, o->disk_iops, o->disk_bps, o->disk, o->net_bps, o->nic, &body);
      if (limits != 0) return limits;
      if (cmd->count("--autostart")) {
        if (o->autostart != "true" && o->autostart != "false") return PrintError("--autostart takes true or false");
        body["autostart"] = o->autostart == "true";
      }
      if (cmd->count("--ha")) {
        if (o->ha != "on" && o->ha != "off") return PrintError("--ha takes on or off");
        body["ha"] = o->ha == "on";
      }
      if (cmd->count("--ha-priority")) body["ha_priority"] = o->ha_priority;
      if (cmd->count("--kernel")) body["kernel"] = AbsolutePath(o->kernel);
      if (cmd->count("--initrd")) body["initrd"] = AbsolutePath(o->initrd);
      if (cmd->count("--append")) body["append"] = o->append;
      if (cmd->count("--cdrom")) body["cdrom"] = o->cdrom == "none" ? "" : AbsolutePath(o->cdrom);
      if (!o->add_disks.empty()) body["add_disks"] = o->add_disks;
      if (cmd->count("--bus")) {
        if (o->add_disks.empty()) return PrintError("--bus goes with --add-disk");
        body["disk_bus"] = o->bus;
      }
      if (cmd->count("--remove-disk")) body["remove_disk"] = o->remove_disk;
      if (o->keep_volume) body["keep_volume"] = true;
      if (cmd->count("--mac") && o->add_nics.size() != 1) return PrintError("--mac goes with one --add-nic");
      for (const auto& net : o->add_nics) {
        json nic = {{"network", net}};
        if (cmd->count("--mac")) nic["mac"] = o->mac;
        body["add_nics"].push_back(nic);
      }
      if (cmd->count("--remove-nic")) body["remove_nic"] = o->remove_nic;
      o->machine.AddTo(body);
      auto ci = o->ci.Body();
      if (!ci.ok()) return PrintError(ci.status().message());
      if (o->no_cloud_init && !ci->empty()) return PrintError("--no-cloud-init goes without --ci- options");
      if (o->no_cloud_init) body["cloud_init"] = nullptr;
      if (!ci->empty()) body["cloud_init"] = *ci;
      auto r = g.client().Call("PATCH", VmPath(o->name), body);
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "updated " << o->name << "\n";
      if (body.contains("cloud_init") && r->value("state", "") != "stopped") {
        std::cout << "cloud-init changes reach the guest at its next start\n";
      }
      return 0;
    });
  }

  {
    auto name = std::make_shared<std::string>();
    auto argv = std::make_shared<std::vector<std::string>>();
    auto timeout = std::make_shared<int>(60);
    auto as_json = std::make_shared<bool>(false);
    auto cmd =
        vm->add_subcommand("exec", "run a command in the guest through the guest agent: vm exec NAME -- CMD [ARGS...]");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_option("command", *argv, "command and arguments (after --)")->required();
    cmd->add_option("--timeout", *timeout, "seconds to wait for the command")->capture_default_str();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, name, argv, timeout, as_json] {
      auto client = g.client();
      client.WithTimeout(RequestTimeout() + std::chrono::seconds(*timeout));
      auto r = client.Call("POST", VmPath(*name) + "/exec", {{"command", *argv}, {"timeout", *timeout}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      std::cout << r->value("stdout", "");
      std::cerr << r->value("stderr", "");
      std::cout.flush();
      int code = r->value("exit_code", 1);
      return code < 0 ? 1 : code;
    });
  }

  {
    auto name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("agent", "say whether the guest agent answers");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, name, as_json] {
      auto r = g.client().Call("GET", VmPath(*name) + "/agent");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json)
        PrintJson(*r);
      else
        std::cout << (r->value("agent", false) ? "agent answers" : "agent does not answer: " + r->value("detail", ""))
                  << "\n";
      return r->value("agent", false) ? 0 : 1;
    });
  }

  {
    auto name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = vm->add_subcommand("ip", "show the guest's addresses (from its agent, else from DHCP leases)");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, name, as_json] {
      auto r = g.client().Call("GET", VmPath(*name) + "/addresses");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      json addresses = FlatAddresses(*r);
      for (const auto& a : addresses) {
        std::cout << a.value("interface", "") << "\t" << a.value("address", "") << "\n";
      }
      if (addresses.empty()) {
        std::cerr << "no address known for " << *name
                  << (r->value("source", "") == "dhcp"
                          ? " (the guest agent does not answer: " + r->value("agent", "") + "; no DHCP lease either)"
                          : "")
                  << "\n";
        return 1;
      }
      return 0;
    });
  }

  AddVmImport(vm, g);
  AddConsoleCommands(vm, g);
}

}  // namespace pampa::cli
