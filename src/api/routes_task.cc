// /api/v1/tasks.
#include "api/api.h"

namespace pampa {

void RegisterTaskRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/tasks", [&](const HttpRequest&) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& t : ctx.tasks.List()) {
      auto j = ToJson(t);
      j.erase("log");  // the list stays small; `task show` has the log
      out.push_back(j);
    }
    return HttpResponse{200, out};
  });
  r.Add("GET", "/api/v1/tasks/{id}", [&](const HttpRequest& req) {
    auto t = ctx.tasks.Get(req.params.at("id"));
    return t.ok() ? HttpResponse{200, ToJson(*t)} : ErrorResponse(t.status());
  });
  r.Add("POST", "/api/v1/tasks/{id}/cancel", [&](const HttpRequest& req) {
    return Reply(ctx.tasks.Cancel(req.params.at("id")), {{"cancelling", req.params.at("id")}});
  });
}

}  // namespace pampa
