// pampa net ...: virtual networks.
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {

void AddNetCommands(CLI::App& app, Globals& g) {
  using json = nlohmann::json;
  auto net = app.add_subcommand("net", "virtual networks (NAT with DHCP, or bridged)");
  net->require_subcommand(1);
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = net->add_subcommand("list", "list networks");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      return GetAndShow(g, "/api/v1/networks", *as_json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (auto& n : r) {
          rows.push_back({n.value("name", ""), n.value("mode", ""), n.value("bridge", ""),
                          n.value("subnet", "").empty() ? "-" : n.value("subnet", ""),
                          n.value("active", false) ? "yes" : "no"});
        }
        PrintTable({"NAME", "MODE", "BRIDGE", "SUBNET", "ACTIVE"}, rows);
      });
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto subnet = std::make_shared<std::string>();
    auto bridge = std::make_shared<std::string>();
    auto cmd = net->add_subcommand("create", "create a NAT network (--subnet) or a bridged one (--bridge)");
    cmd->add_option("name", *name, "network name")->required();
    cmd->add_option("--subnet", *subnet, "NAT: the guests' subnet, e.g. 10.90.0.0/24");
    cmd->add_option("--bridge", *bridge, "bridged: an existing host bridge, e.g. br0");
    Bind(cmd, g, [&g, name, subnet, bridge] {
      json body = {{"name", *name}, {"mode", bridge->empty() ? "nat" : "bridge"}};
      if (!subnet->empty()) body["subnet"] = *subnet;
      if (!bridge->empty()) body["bridge"] = *bridge;
      auto r = g.client().Call("POST", "/api/v1/networks", body);
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "created network " << *name << " (" << r->value("mode", "") << " on " << r->value("bridge", "")
                << ")\n";
      return 0;
    });
  }
  AddDeleteCommand(net, g, "delete", "delete a network no VM uses", "network name", "/api/v1/networks/",
                   [](const std::string& name) { return "deleted network " + name; });
}

}  // namespace pampa::cli
