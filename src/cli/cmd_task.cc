// pampa task ...: long operations.
#include <ctime>
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {
void AddTaskCommands(CLI::App& app, Globals& g) {
  using json = nlohmann::json;
  auto task = app.add_subcommand("task", "long operations (imports, shutdowns; backups later)");
  task->require_subcommand(1);
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = task->add_subcommand("list", "list tasks");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      return GetAndShow(g, "/api/v1/tasks", *as_json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (auto& t : r) {
          rows.push_back({t.value("id", ""), t.value("type", ""), t.value("target", ""), t.value("state", ""),
                          std::to_string(static_cast<int>(t.value("progress", 0.0) * 100)) + "%",
                          FormatTime(t.value("started", int64_t{0}))});
        }
        PrintTable({"ID", "TYPE", "TARGET", "STATE", "PROGRESS", "STARTED"}, rows);
      });
    });
  }
  {
    auto id = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = task->add_subcommand("show", "show a task and its log");
    cmd->add_option("id", *id, "task id")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, id, as_json] {
      return GetAndShow(g, "/api/v1/tasks/" + *id, *as_json, [&](const json& r) {
        std::cout << "id:       " << r.value("id", "") << "\n"
                  << "type:     " << r.value("type", "") << " " << r.value("target", "") << "\n"
                  << "state:    " << r.value("state", "") << "\n"
                  << "progress: " << static_cast<int>(r.value("progress", 0.0) * 100) << "%"
                  << (r.value("message", "").empty() ? "" : " (" + r.value("message", "") + ")") << "\n"
                  << "started:  " << FormatTime(r.value("started", int64_t{0})) << "\n"
                  << "finished: " << FormatTime(r.value("finished", int64_t{0})) << "\n";
        if (!r.value("error", "").empty()) std::cout << "error:    " << r.value("error", "") << "\n";
        for (auto& line : r["log"]) std::cout << "  " << line.get<std::string>() << "\n";
      });
    });
  }
  {
    auto id = std::make_shared<std::string>();
    auto cmd = task->add_subcommand("cancel", "ask a running task to stop");
    cmd->add_option("id", *id, "task id")->required();
    Bind(cmd, g, [&g, id] {
      auto r = g.client().Call("POST", "/api/v1/tasks/" + *id + "/cancel", nlohmann::json::object());
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "cancelling " << *id << "\n";
      return 0;
    });
  }
}

}  // namespace pampa::cli
