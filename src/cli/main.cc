// pampa: the command line client of pampad.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {

void Bind(CLI::App* cmd, Globals& g, Action action) {
  cmd->callback([&g, action] {
    if (!g.url.empty()) {
      Status st = ParseUrl(g.url, &g.ep);
      if (!st.ok()) {
        g.exit_code = PrintError(st.message());
        return;
      }
    }
    g.exit_code = action();
  });
}

std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char* cwd = getcwd(nullptr, 0);
  std::string out = std::string(cwd ? cwd : ".") + "/" + path;
  free(cwd);
  return out;
}

int GetAndShow(Globals& g, const std::string& path, bool as_json,
               const std::function<void(const nlohmann::json&)>& print) {
  auto r = g.client().Call("GET", path);
  if (!r.ok()) return PrintError(r.status().message());
  if (as_json)
    PrintJson(*r);
  else
    print(*r);
  return 0;
}

void AddDeleteCommand(CLI::App* group, Globals& g, const std::string& verb, const std::string& help,
                      const std::string& what, const std::string& path_prefix,
                      std::function<std::string(const std::string&)> said) {
  auto name = std::make_shared<std::string>();
  auto cmd = group->add_subcommand(verb, help);
  cmd->add_option("name", *name, what)->required();
  Bind(cmd, g, [&g, name, path_prefix, said = std::move(said)] {
    auto r = g.client().Call("DELETE", path_prefix + *name);
    if (!r.ok()) return PrintError(r.status().message());
    std::cout << said(*name) << "\n";
    return 0;
  });
}

int FinishTask(Globals& g, const std::string& task_id, bool async, const std::string& done_message) {
  if (async) {
    std::cout << task_id << "\n";
    return 0;
  }
  auto t = g.client().WaitTask(task_id);
  if (!t.ok()) return PrintError(t.status().message());
  if (!done_message.empty()) std::cout << done_message << "\n";
  return 0;
}

// For a command group given no subcommand or an unknown one ("pampa repo
// frobnicate"): a message naming the group's subcommands; "" otherwise.
std::string SubcommandHint(CLI::App& app) {
  CLI::App* group = &app;
  std::string path = "pampa";
  while (true) {
    auto chosen = group->get_subcommands();
    if (chosen.empty()) break;
    group = chosen.front();
    path += " " + group->get_name();
  }
  auto subs = group->get_subcommands([](CLI::App*) { return true; });
  if (subs.empty()) return "";
  std::string names;
  for (auto* sub : subs) names += (names.empty() ? "" : ", ") + sub->get_name();
  auto extras = group->remaining();
  if (extras.empty()) extras = app.remaining(true);
  std::string what = extras.empty() ? "'" + path + "' needs a subcommand"
                                    : "'" + path + "' has no subcommand '" + extras.front() + "'";
  return what + ": use one of " + names + " (see: " + path + " --help)";
}

}  // namespace pampa::cli

int main(int argc, char** argv) {
  using namespace pampa::cli;
  CLI::App app{"pampa: manage VMs, storage and networks of a Pampa host"};
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  if (const char* s = std::getenv("PAMPA_SOCKET")) g.ep.unix_socket = s;
  if (const char* u = std::getenv("PAMPA_URL")) g.url = u;
  if (const char* t = std::getenv("PAMPA_TOKEN")) g.ep.token = t;
  if (const char* c = std::getenv("PAMPA_CA")) {
    g.ep.ca_file = c;
  } else if (access(kDefaultCaFile, R_OK) == 0) {
    g.ep.ca_file = kDefaultCaFile;
  }
  app.add_option("--socket", g.ep.unix_socket, "pampad's unix socket (default /run/pampa/pampa.sock)");
  app.add_option("--url", g.url, "pampad over TCP, e.g. https://host:8006 (needs --token)");
  app.add_option("--token", g.ep.token, "API token (the host's DATA_DIR/token)");
  app.add_option("--ca", g.ep.ca_file,
                 "the pool CA that https:// hosts must be signed by (DATA_DIR/tls/ca.pem of a pool host; env "
                 "PAMPA_CA; default /var/lib/pampa/tls/ca.pem when readable, else the system's CAs)");
  AddVmCommands(app, g);
  AddStorageCommands(app, g);
  AddNetCommands(app, g);
  AddTaskCommands(app, g);
  AddHostCommands(app, g);
  AddHaCommands(app, g);
  AddSnapshotCommands(app, g);
  AddBackupCommands(app, g);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (std::string hint = SubcommandHint(app); !hint.empty()) {
      std::cerr << hint << "\n";
      return e.get_exit_code();
    }
    return app.exit(e);
  }
  return g.exit_code;
}
