// pampa snapshot ...: disk (and RAM) snapshots of a VM.
#include <ctime>
#include <functional>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {
namespace {

using json = nlohmann::json;

// Prints the snapshots as a tree, children under their parent, "<- current" marked.
void PrintTree(const json& list) {
  std::map<std::string, std::vector<json>> children;
  for (auto& s : list["snapshots"]) children[s.value("parent", "")].push_back(s);
  std::string current = list.value("current", "");
  std::function<void(const std::string&, const std::string&)> walk = [&](const std::string& parent,
                                                                         const std::string& indent) {
    auto& kids = children[parent];
    for (size_t i = 0; i < kids.size(); ++i) {
      const auto& s = kids[i];
      bool last = i + 1 == kids.size();
      std::string name = s.value("name", "");
      std::cout << indent << (last ? "`-- " : "|-- ") << name << "  " << FormatTime(s.value("created", int64_t{0}))
                << (s.value("memory", false) ? "  [with RAM]" : "") << (name == current ? "  <- current" : "")
                << (s.value("description", "").empty() ? "" : "  " + s.value("description", "")) << "\n";
      walk(name, indent + (last ? "    " : "|   "));
    }
  };
  if (list["snapshots"].empty()) {
    std::cout << "no snapshots\n";
    return;
  }
  walk("", "");
}

}  // namespace

void AddSnapshotCommands(CLI::App& app, Globals& g) {
  auto snap = app.add_subcommand("snapshot", "VM snapshots (disks, optionally RAM)");
  snap->require_subcommand(1);
  {
    struct Opts {
      std::string vm, name, description;
      bool memory = false, async = false;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = snap->add_subcommand("create", "take a snapshot of all disks (crash-consistent while running)");
    cmd->add_option("vm", o->vm, "VM name")->required();
    cmd->add_option("name", o->name, "snapshot name")->required();
    cmd->add_flag("--memory", o->memory, "save the RAM too: a revert resumes the running VM at this instant");
    cmd->add_option("--description", o->description, "a note");
    cmd->add_flag("--async", o->async, "print the task id and return at once");
    Bind(cmd, g, [&g, o] {
      json body = {{"name", o->name}, {"memory", o->memory}};
      if (!o->description.empty()) body["description"] = o->description;
      auto r = g.client().Call("POST", "/api/v1/vms/" + o->vm + "/snapshots", body);
      if (!r.ok()) return PrintError(r.status().message());
      return FinishTask(g, (*r)["task"], o->async, "snapshot " + o->name + " of " + o->vm + " taken");
    });
  }
  {
    auto vm = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = snap->add_subcommand("list", "show a VM's snapshots as a tree");
    cmd->add_option("vm", *vm, "VM name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, vm, as_json] {
      auto r = g.client().Call("GET", "/api/v1/vms/" + *vm + "/snapshots");
      if (!r.ok()) return PrintError(r.status().message());
      if (*as_json)
        PrintJson(*r);
      else
        PrintTree(*r);
      return 0;
    });
  }
  for (auto [verb, help] : {std::pair{"revert", "go back to a snapshot (a RAM snapshot resumes the VM running)"},
                            {"delete", "delete a snapshot (merges while the VM runs)"}}) {
    auto vm = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto async = std::make_shared<bool>(false);
    std::string v = verb;
    auto cmd = snap->add_subcommand(verb, help);
    cmd->add_option("vm", *vm, "VM name")->required();
    cmd->add_option("name", *name, "snapshot name")->required();
    cmd->add_flag("--async", *async, "print the task id and return at once");
    Bind(cmd, g, [&g, vm, name, async, v] {
      std::string path = "/api/v1/vms/" + *vm + "/snapshots/" + *name;
      auto r =
          v == "revert" ? g.client().Call("POST", path + "/revert", json::object()) : g.client().Call("DELETE", path);
      if (!r.ok()) return PrintError(r.status().message());
      return FinishTask(g, (*r)["task"], *async, (v == "revert" ? "reverted " : "deleted snapshot ") + *name);
    });
  }
}

}  // namespace pampa::cli
