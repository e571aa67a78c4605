// pampa host ...: is this host ready to run VMs?
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {

namespace {

std::string Heartbeat(const nlohmann::json& h) {
  int64_t age = h.value("heartbeat_age_ms", int64_t{-1});
  if (age < 0) return "-";
  return std::to_string(age / 1000) + " s ago";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "-" : out;
}

int PrintHost(const nlohmann::json& h) {
  std::cout << "name:       " << h.value("name", "") << "\n"
            << "state:      " << h.value("state", "") << "\n"
            << "address:    " << (h.value("url", "").empty() ? "-" : h.value("url", "")) << "\n"
            << "version:    " << h.value("version", "") << "\n"
            << "cpus:       " << h.value("cpus", 0) << " (" << h.value("cpus_committed", 0)
            << " given to running VMs)\n"
            << "memory:     " << HumanSize(h.value("memory_bytes", uint64_t{0})) << " ("
            << HumanSize(h.value("memory_committed", uint64_t{0})) << " given to running VMs)\n"
            << "vms:        " << h.value("vms", 0) << " (" << h.value("running", 0) << " running)\n"
            << "pools:      " << JoinNames(h.value("pools", std::vector<std::string>{})) << "\n"
            << "networks:   " << JoinNames(h.value("networks", std::vector<std::string>{})) << "\n"
            << "heartbeat:  " << Heartbeat(h) << "\n";
  return 0;
}

}  // namespace

void AddHostCommands(CLI::App& app, Globals& g) {
  auto host = app.add_subcommand("host", "this host and the pool of hosts");
  host->require_subcommand(1);
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("list", "the hosts of the pool, their state and what runs on them");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      auto r = g.client().Call("GET", "/api/v1/hosts");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      std::vector<std::vector<std::string>> rows;
      for (auto& h : *r) {
        rows.push_back({h.value("name", ""), h.value("state", ""), std::to_string(h.value("cpus", 0)),
                        HumanSize(h.value("memory_bytes", uint64_t{0})),
                        HumanSize(h.value("memory_committed", uint64_t{0})),
                        std::to_string(h.value("running", 0)) + "/" + std::to_string(h.value("vms", 0)), Heartbeat(h),
                        h.value("url", "").empty() ? "-" : h.value("url", "")});
      }
      PrintTable({"NAME", "STATE", "CPUS", "MEMORY", "COMMITTED", "RUNNING/VMS", "HEARTBEAT", "ADDRESS"}, rows);
      return 0;
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("show", "one host of the pool");
    cmd->add_option("name", *name, "host name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, name, as_json] {
      auto r = g.client().Call("GET", "/api/v1/hosts/" + *name);
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return 0;
      }
      return PrintHost(*r);
    });
  }
  AddDeleteCommand(host, g, "remove", "forget a host that left the pool for good (stopped, without VMs)", "the host",
                   "/api/v1/hosts/", [](const std::string& name) { return "host " + name + " removed from the pool"; });
  {
    auto name = std::make_shared<std::string>();
    auto mode = std::make_shared<std::string>();
    auto async = std::make_shared<bool>(false);
    auto cmd =
        host->add_subcommand("maintenance", "on: move every running VM away and take no new ones; off: take VMs again");
    cmd->add_option("name", *name, "host name")->required();
    cmd->add_option("mode", *mode, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
    cmd->add_flag("--async", *async, "print the task id and return at once");
    Bind(cmd, g, [&g, name, mode, async] {
      auto r = g.client().Call("POST", "/api/v1/hosts/" + *name + "/maintenance", {{"on", *mode == "on"}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*mode == "off") {
        std::cout << "host " << *name << " takes VMs again\n";
        return 0;
      }
      return FinishTask(g, (*r)["task"], *async, "host " + *name + " is in maintenance: its VMs moved away");
    });
  }
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("check", "check QEMU, KVM (with a probe boot), networking and cgroups");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      auto r = g.client().Call("GET", "/api/v1/host/check");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json) {
        PrintJson(*r);
        return r->value("ok", false) ? 0 : 1;
      }
      for (auto& c : (*r)["checks"]) {
        std::string st = c.value("status", "");
        std::string mark = st == "ok" ? "ok  " : st == "warn" ? "WARN" : "FAIL";
        std::cout << "[" << mark << "] " << c.value("name", "") << ": " << c.value("detail", "") << "\n";
        if (!c.value("advice", "").empty()) std::cout << "       -> " << c.value("advice", "") << "\n";
      }
      return r->value("ok", false) ? 0 : 1;
    });
  }
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = host->add_subcommand("info", "hostname, version, accelerator");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      auto r = g.client().Call("GET", "/api/v1/host");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json)
        PrintJson(*r);
      else
        std::cout << "host:    " << r->value("hostname", "") << "\n"
                  << "version: " << r->value("version", "") << "\n"
                  << "accel:   " << r->value("accel", "") << " (" << r->value("accel_reason", "") << ")\n"
                  << "vms:     " << r->value("vms", 0) << "\n";
      return 0;
    });
  }
}

}  // namespace pampa::cli
