// /api/v1/vms/{name}/snapshots.
#include "api/api.h"

namespace pampa {

void RegisterSnapshotRoutes(Router& r, ApiContext& ctx) {
  auto task_reply = [](const Result<std::string>& task, const std::string& vm) {
    if (!task.ok()) return ErrorResponse(task.status());
    return HttpResponse{202, {{"task", task.value()}, {"vm", vm}}};
  };
  r.Add("GET", "/api/v1/vms/{name}/snapshots",
        [&](const HttpRequest& req) { return Reply(ctx.vms.ListSnapshots(req.params.at("name"))); });
  r.Add("POST", "/api/v1/vms/{name}/snapshots", [&, task_reply](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name", "memory", "description"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto snap = RequiredString(*body, "name");
    if (!snap.ok()) return ErrorResponse(snap.status());
    auto memory = OptionalBool(*body, "memory");
    if (!memory.ok()) return ErrorResponse(memory.status());
    auto description = OptionalString(*body, "description");
    if (!description.ok()) return ErrorResponse(description.status());
    return task_reply(ctx.vms.CreateSnapshot(req.params.at("name"), *snap, *memory, *description),
                      req.params.at("name"));
  });
  r.Add("POST", "/api/v1/vms/{name}/snapshots/{snapshot}/revert", [&, task_reply](const HttpRequest& req) {
    return task_reply(ctx.vms.RevertSnapshot(req.params.at("name"), req.params.at("snapshot")), req.params.at("name"));
  });
  r.Add("DELETE", "/api/v1/vms/{name}/snapshots/{snapshot}", [&, task_reply](const HttpRequest& req) {
    return task_reply(ctx.vms.DeleteSnapshot(req.params.at("name"), req.params.at("snapshot")), req.params.at("name"));
  });
}

}  // namespace pampa
