// Registration of the CLI's command groups; one file per group.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "cli/client.h"

namespace pampa::cli {

struct Globals {
  Endpoint ep;
  std::string url;
  int exit_code = 0;
  ApiClient client() const { return ApiClient(ep); }
};

// Runs fn and turns an error Status into a printed message and exit code 1.
using Action = std::function<int()>;
void Bind(CLI::App* cmd, Globals& g, Action action);

void AddVmCommands(CLI::App& app, Globals& g);
void AddConsoleCommands(CLI::App* vm, Globals& g);
void AddStorageCommands(CLI::App& app, Globals& g);
void AddNetCommands(CLI::App& app, Globals& g);
void AddTaskCommands(CLI::App& app, Globals& g);
void AddHostCommands(CLI::App& app, Globals& g);
void AddHaCommands(CLI::App& app, Globals& g);
void AddSnapshotCommands(CLI::App& app, Globals& g);
void AddBackupCommands(CLI::App& app, Globals& g);

// An absolute version of a path given on the command line.
std::string AbsolutePath(const std::string& path);
// Adds `verb NAME` to group: DELETEs path_prefix + NAME and prints said(NAME).
// what: the NAME argument's help ("network name").
void AddDeleteCommand(CLI::App* group, Globals& g, const std::string& verb, const std::string& help,
                      const std::string& what, const std::string& path_prefix,
                      std::function<std::string(const std::string&)> said);
// GETs path and prints the answer as JSON (--json) or through print (a table); 1 on error.
int GetAndShow(Globals& g, const std::string& path, bool as_json,
               const std::function<void(const nlohmann::json&)>& print);
// Prints a started task's outcome: waits with a progress bar unless async.
int FinishTask(Globals& g, const std::string& task_id, bool async, const std::string& done_message);

}  // namespace pampa::cli
