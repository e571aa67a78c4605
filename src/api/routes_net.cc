// /api/v1/networks.
#include "api/api.h"

namespace pampa {
namespace {

using json = nlohmann::json;

json NetJson(const NetworkInfo& n) {
  return {{"name", n.name},         {"mode", n.mode},       {"bridge", n.bridge},
          {"subnet", n.subnet},     {"gateway", n.gateway}, {"dhcp_start", n.dhcp_start},
          {"dhcp_end", n.dhcp_end}, {"active", n.active}};
}

}  // namespace

void RegisterNetRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/networks", [&](const HttpRequest&) {
    auto nets = ctx.networks.List();
    if (!nets.ok()) return ErrorResponse(nets.status());
    json out = json::array();
    for (auto& n : *nets) out.push_back(NetJson(n));
    return HttpResponse{200, out};
  });

  r.Add("POST", "/api/v1/networks", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name", "mode", "subnet", "bridge"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto name = RequiredString(*body, "name");
    if (!name.ok()) return ErrorResponse(name.status());
    std::string mode = "nat", subnet, bridge;
    for (auto [key, dst] : {std::pair{"mode", &mode}, {"subnet", &subnet}, {"bridge", &bridge}}) {
      if (!body->contains(key)) continue;
      auto v = RequiredString(*body, key);
      if (!v.ok()) return ErrorResponse(v.status());
      *dst = *v;
    }
    if (mode == "nat" && subnet.empty()) {
      return ErrorResponse(Status::Invalid("a NAT network needs a subnet, e.g. --subnet 10.90.0.0/24"));
    }
    auto n = ctx.networks.Create(*name, mode, subnet, bridge);
    return n.ok() ? HttpResponse{201, NetJson(*n)} : ErrorResponse(n.status());
  });

  r.Add("DELETE", "/api/v1/networks/{name}", [&](const HttpRequest& req) {
    const auto& name = req.params.at("name");
    std::string user = ctx.vms.NetworkUser(name);
    if (!user.empty()) {
      return ErrorResponse(
          Status::Conflict("network '" + name + "' is used by vm '" + user + "'; delete or change that VM first"));
    }
    return Reply(ctx.networks.Delete(name), {{"deleted", name}});
  });
}

}  // namespace pampa
