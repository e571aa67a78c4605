// docs/api/openapi.yaml and the routes pampad serves must agree, both ways.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

#include "api/api.h"
#include "api/http_server.h"

#ifndef PAMPA_SOURCE_DIR
#error "PAMPA_SOURCE_DIR must be defined"
#endif

namespace pampa {
namespace {

// "GET /api/v1/vms" for every operation in the spec (a small reader of the
// indentation-based layout the file uses; no YAML library needed).
std::set<std::string> SpecOperations() {
  std::ifstream in(std::string(PAMPA_SOURCE_DIR) + "/docs/api/openapi.yaml");
  EXPECT_TRUE(in.good());
  std::set<std::string> ops;
  std::string line, path;
  std::regex path_re("^  (/[^:]+):\\s*$"), op_re("^    (get|post|put|patch|delete):");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, path_re)) {
      path = m[1];
    } else if (!path.empty() && std::regex_search(line, m, op_re)) {
      std::string method = m[1];
      for (auto& c : method) c = static_cast<char>(std::toupper(c));
      ops.insert(method + " " + path);
    } else if (!line.empty() && line[0] != ' ') {
      path.clear();
    }
  }
  return ops;
}

TEST(OpenApi, SpecMatchesServedRoutes) {
  auto store = NewMemoryStore();
  EventBus events;
  Tasks tasks(*store, events);
  Storage storage(*store, {});
  Networks networks(*store, "/tmp");
  AccelProbe accel("/nonexistent", "", "/tmp");
  VmManager vms({"/tmp", "/tmp", "test"}, *store, storage, networks, tasks, events, accel);
  Repos repos(*store);
  BackupJobs jobs(vms, *store, storage, networks, tasks, events);
  BackupScheduler schedules(*store, vms, jobs, repos, tasks, events);
  LiveRestores live(vms, *store, storage, networks, tasks, events, "/nonexistent");
  RestoreDrills drills(*store, vms, live, repos, tasks, events);
  FileRestores files({"/nonexistent", "", ""}, accel);
  Cluster cluster(*store, events, {"test", "", "test"}, "");
  Migrations migrations(vms, storage, cluster, tasks);
  WebSocketTickets tickets;
  PoolJoins joins(*store, nullptr, "test", "");
  VmImports imports(vms, storage, networks, tasks, events);
  FenceAgent fence_agent("/nonexistent", "/nonexistent", "/nonexistent");
  HaManager ha(*store, cluster, vms, events, fence_agent, HaConfig{});
  Metrics metrics({"/tmp", "test"}, vms, events);
  ApiContext ctx{vms,   jobs,    live,       files,   repos, schedules, drills,  imports, storage, networks, tasks,
                 accel, cluster, migrations, tickets, joins, ha,        metrics, "test",  "test",  "/tmp"};
  Router router;
  RegisterAllRoutes(router, ctx);

  std::set<std::string> served;
  for (auto& [method, pattern] : router.Routes()) served.insert(method + " " + pattern);
  for (auto& ws : kWebSocketPaths) served.insert("GET " + ws);

  auto spec = SpecOperations();
  EXPECT_GT(spec.size(), 20u);
  for (auto& op : served) EXPECT_TRUE(spec.count(op)) << op << " is served but missing from openapi.yaml";
  for (auto& op : spec) EXPECT_TRUE(served.count(op)) << op << " is in openapi.yaml but not served";
}

}  // namespace
}  // namespace pampa
