// pampa pool ... and pampa volume ...
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {
namespace {

using json = nlohmann::json;

}  // namespace

void AddStorageCommands(CLI::App& app, Globals& g) {
  auto pool = app.add_subcommand("pool", "storage pools");
  pool->require_subcommand(1);
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = pool->add_subcommand("list", "list pools");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      return GetAndShow(g, "/api/v1/pools", *as_json, [](const json& pools) {
        std::vector<std::vector<std::string>> rows;
        for (auto& p : pools) {
          rows.push_back({p.value("name", ""), p.value("type", ""), p.value("path", ""),
                          HumanSize(p.value("available", 0ull)), HumanSize(p.value("capacity", 0ull))});
        }
        PrintTable({"NAME", "TYPE", "PATH", "FREE", "SIZE"}, rows);
      });
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto path = std::make_shared<std::string>();
    auto type = std::make_shared<std::string>("dir");
    auto cmd = pool->add_subcommand("create", "create a directory pool");
    cmd->add_option("name", *name, "pool name")->required();
    cmd->add_option("--path", *path, "directory (created when missing)")->required();
    cmd->add_option("--type", *type,
                    "dir (this host's) or shared (a directory every host of the pool reaches at the same path, "
                    "e.g. NFS)")
        ->capture_default_str();
    Bind(cmd, g, [&g, name, path, type] {
      auto r =
          g.client().Call("POST", "/api/v1/pools", {{"name", *name}, {"path", AbsolutePath(*path)}, {"type", *type}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "created pool " << *name << " at " << r->value("path", "") << "\n";
      return 0;
    });
  }
  AddDeleteCommand(pool, g, "delete", "forget an empty pool (its directory stays)", "pool name", "/api/v1/pools/",
                   [](const std::string& name) { return "deleted pool " + name; });

  auto vol = app.add_subcommand("volume", "volumes (disks) in pools");
  vol->require_subcommand(1);
  {
    auto pool_name = std::make_shared<std::string>("default");
    auto as_json = std::make_shared<bool>(false);
    auto cmd = vol->add_subcommand("list", "list the volumes of a pool");
    cmd->add_option("pool", *pool_name, "pool name")->capture_default_str();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, pool_name, as_json] {
      return GetAndShow(g, "/api/v1/pools/" + *pool_name + "/volumes", *as_json, [](const json& vols) {
        std::vector<std::vector<std::string>> rows;
        for (auto& v : vols) {
          rows.push_back({v.value("name", ""), v.value("format", ""), HumanSize(v.value("size", 0ull)),
                          HumanSize(v.value("allocated", 0ull)), v.value("vm", "")});
        }
        PrintTable({"NAME", "FORMAT", "SIZE", "USED", "VM"}, rows);
      });
    });
  }
  {
    auto pool_name = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto size = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>("qcow2");
    auto cmd = vol->add_subcommand("create", "create a blank volume");
    cmd->add_option("pool", *pool_name, "pool name")->required();
    cmd->add_option("name", *name, "volume name")->required();
    cmd->add_option("--size", *size, "size, e.g. 10G")->required();
    cmd->add_option("--format", *format, "qcow2 or raw")->capture_default_str();
    Bind(cmd, g, [&g, pool_name, name, size, format] {
      auto r = g.client().Call("POST", "/api/v1/pools/" + *pool_name + "/volumes",
                               {{"name", *name}, {"size", *size}, {"format", *format}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "created volume " << *pool_name << "/" << *name << " (" << HumanSize(r->value("size", 0ull))
                << ")\n";
      return 0;
    });
  }
  {
    auto pool_name = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto size = std::make_shared<std::string>();
    auto cmd = vol->add_subcommand("resize", "grow a volume (a VM's disk grows live while the VM runs)");
    cmd->add_option("pool", *pool_name, "pool name")->required();
    cmd->add_option("name", *name, "volume name")->required();
    cmd->add_option("size", *size, "new size (20G) or growth (+5G)");
    cmd->add_option("--size", *size, "the same, as an option");
    Bind(cmd, g, [&g, pool_name, name, size] {
      if (size->empty()) return PrintError("give the new size (20G) or the growth (+5G)");
      auto r =
          g.client().Call("POST", "/api/v1/pools/" + *pool_name + "/volumes/" + *name + "/resize", {{"size", *size}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "resized " << *pool_name << "/" << *name << " to " << HumanSize(r->value("size", 0ull)) << "\n";
      return 0;
    });
  }
  {
    auto pool_name = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto cmd = vol->add_subcommand("delete", "delete a volume that no VM uses");
    cmd->add_option("pool", *pool_name, "pool name")->required();
    cmd->add_option("name", *name, "volume name")->required();
    Bind(cmd, g, [&g, pool_name, name] {
      auto r = g.client().Call("DELETE", "/api/v1/pools/" + *pool_name + "/volumes/" + *name);
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "deleted volume " << *pool_name << "/" << *name << "\n";
      return 0;
    });
  }
  {
    auto pool_name = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto file = std::make_shared<std::string>();
    auto async = std::make_shared<bool>(false);
    auto cmd = vol->add_subcommand("import", "import a disk image (raw, qcow2, vmdk, vhd, vhdx) as a qcow2 volume");
    cmd->add_option("pool", *pool_name, "pool name")->required();
    cmd->add_option("name", *name, "new volume name")->required();
    cmd->add_option("file", *file, "image file on the pampad host")->required();
    cmd->add_flag("--async", *async, "print the task id and return at once");
    Bind(cmd, g, [&g, pool_name, name, file, async] {
      auto r = g.client().Call("POST", "/api/v1/pools/" + *pool_name + "/import",
                               {{"name", *name}, {"source", AbsolutePath(*file)}});
      if (!r.ok()) return PrintError(r.status().message());
      return FinishTask(g, (*r)["task"], *async, "imported " + *pool_name + "/" + *name);
    });
  }
}

}  // namespace pampa::cli
