// pampa host ...: is this host ready to run VMs?
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {

void AddHostCommands(CLI::App& app, Globals& g) {
  auto host = app.add_subcommand("host", "this host");
  host->require_subcommand(1);
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
