// What the API routes work on, and the registration of each resource's routes.
#pragma once

#include <set>
#include <string>

#include "api/router.h"
#include "api/tickets.h"
#include "backup/repos.h"
#include "cluster/cluster.h"
#include "cluster/ha.h"
#include "cluster/join.h"
#include "cluster/migration.h"
#include "jobs/backup_job.h"
#include "jobs/backup_schedules.h"
#include "jobs/file_restore.h"
#include "jobs/live_restore.h"
#include "jobs/restore_drills.h"
#include "jobs/vm_import.h"
#include "net/networks.h"
#include "qemu/accel.h"
#include "resources/metrics.h"
#include "storage/pools.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {

struct ApiContext {
  VmManager& vms;
  BackupJobs& jobs;
  LiveRestores& live;
  FileRestores& files;
  Repos& repos;
  BackupScheduler& schedules;
  RestoreDrills& drills;
  VmImports& imports;
  Storage& storage;
  Networks& networks;
  Tasks& tasks;
  AccelProbe& accel;
  Cluster& cluster;
  Migrations& migrations;
  WebSocketTickets& tickets;
  PoolJoins& joins;
  HaManager& ha;
  Metrics& metrics;
  std::string version;
  std::string hostname;
  std::string data_dir;
};

void RegisterVmRoutes(Router& r, ApiContext& ctx);
// Also PUT /api/v1/pools/{pool}/upload/{volume}: an image streamed from the
// browser into DATA/images/.uploads, then converted into a volume in a task.
void RegisterStorageRoutes(Router& r, ApiContext& ctx);
// Removes what uploads a killed pampad left (call at start, before serving).
void RemoveStaleUploads(const std::string& data_dir);
void RegisterNetRoutes(Router& r, ApiContext& ctx);
void RegisterTaskRoutes(Router& r, ApiContext& ctx);
void RegisterHostRoutes(Router& r, ApiContext& ctx);
void RegisterSnapshotRoutes(Router& r, ApiContext& ctx);
void RegisterBackupRoutes(Router& r, ApiContext& ctx);
// The pool: /api/v1/hosts, and the forwarding of requests to the host that
// runs the VM they name.
void RegisterClusterRoutes(Router& r, ApiContext& ctx);
// Tickets for the WebSocket endpoints, and keys typed into a VM's console.
void RegisterConsoleRoutes(Router& r, ApiContext& ctx);
// Metrics (a VM's and the host's history, /metrics for Prometheus), capacity and KSM.
void RegisterResourceRoutes(Router& r, ApiContext& ctx);

inline void RegisterAllRoutes(Router& r, ApiContext& ctx) {
  RegisterVmRoutes(r, ctx);
  RegisterStorageRoutes(r, ctx);
  RegisterNetRoutes(r, ctx);
  RegisterTaskRoutes(r, ctx);
  RegisterHostRoutes(r, ctx);
  RegisterSnapshotRoutes(r, ctx);
  RegisterBackupRoutes(r, ctx);
  RegisterClusterRoutes(r, ctx);
  RegisterConsoleRoutes(r, ctx);
  RegisterResourceRoutes(r, ctx);
}

// The request body as an object with only the allowed fields.
Result<nlohmann::json> BodyWithFields(const HttpRequest& req, const std::set<std::string>& allowed);
// A string field that must be present.
Result<std::string> RequiredString(const nlohmann::json& body, const std::string& key);
// A string field that may be absent ("" then); present, it must be a string.
Result<std::string> OptionalString(const nlohmann::json& body, const std::string& key);
// A boolean field that may be absent (def then); present, it must be true or false.
Result<bool> OptionalBool(const nlohmann::json& body, const std::string& key, bool def = false);

}  // namespace pampa
