// /api/v1/pools and their volumes.
#include "api/api.h"
#include "base/units.h"

namespace pampa {
namespace {

using json = nlohmann::json;

json PoolJson(const PoolInfo& p) {
  return {{"name", p.name}, {"type", p.type}, {"path", p.path}, {"capacity", p.capacity}, {"available", p.available}};
}

json VolumeJson(const VolumeInfo& v) {
  return {{"pool", v.pool}, {"name", v.name},         {"format", v.format},
          {"path", v.path}, {"size", v.virtual_size}, {"allocated", v.allocated}};
}

Result<uint64_t> SizeField(const json& body) {
  PAMPA_ASSIGN_OR_RETURN(auto text, RequiredString(body, "size"));
  return ParseSize(text);
}

}  // namespace

void RegisterStorageRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/pools", [&](const HttpRequest&) {
    auto pools = ctx.storage.ListPools();
    if (!pools.ok()) return ErrorResponse(pools.status());
    json out = json::array();
    for (auto& p : *pools) out.push_back(PoolJson(p));
    return HttpResponse{200, out};
  });

  r.Add("POST", "/api/v1/pools", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name", "path", "type"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto name = RequiredString(*body, "name");
    if (!name.ok()) return ErrorResponse(name.status());
    auto path = RequiredString(*body, "path");
    if (!path.ok()) return ErrorResponse(path.status());
    std::string type = "dir";
    if (body->contains("type")) {
      auto t = RequiredString(*body, "type");
      if (!t.ok()) return ErrorResponse(t.status());
      type = *t;
    }
    Status st = ctx.storage.CreatePool(*name, *path, type);
    if (!st.ok()) return ErrorResponse(st);
    auto p = ctx.storage.GetPool(*name);
    return p.ok() ? HttpResponse{201, PoolJson(*p)} : ErrorResponse(p.status());
  });

  r.Add("DELETE", "/api/v1/pools/{pool}", [&](const HttpRequest& req) {
    return Reply(ctx.storage.DeletePool(req.params.at("pool")), {{"deleted", req.params.at("pool")}});
  });

  r.Add("GET", "/api/v1/pools/{pool}/volumes", [&](const HttpRequest& req) {
    auto vols = ctx.storage.ListVolumes(req.params.at("pool"));
    if (!vols.ok()) return ErrorResponse(vols.status());
    json out = json::array();
    for (auto& v : *vols) {
      json j = VolumeJson(v);
      j["vm"] = ctx.vms.VolumeUser(v.pool, v.name);
      out.push_back(j);
    }
    return HttpResponse{200, out};
  });

  r.Add("POST", "/api/v1/pools/{pool}/volumes", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name", "size", "format"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto name = RequiredString(*body, "name");
    if (!name.ok()) return ErrorResponse(name.status());
    auto size = SizeField(*body);
    if (!size.ok()) return ErrorResponse(size.status());
    std::string format = "qcow2";
    if (body->contains("format")) {
      auto f = RequiredString(*body, "format");
      if (!f.ok()) return ErrorResponse(f.status());
      format = *f;
    }
    auto v = ctx.storage.CreateVolume(req.params.at("pool"), *name, *size, format);
    return v.ok() ? HttpResponse{201, VolumeJson(*v)} : ErrorResponse(v.status());
  });

  r.Add("POST", "/api/v1/pools/{pool}/volumes/{volume}/resize", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"size"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto size = SizeField(*body);
    if (!size.ok()) return ErrorResponse(size.status());
    const auto& pool = req.params.at("pool");
    const auto& vol = req.params.at("volume");
    std::string user = ctx.vms.VolumeUser(pool, vol);
    if (!user.empty()) {
      auto vm = ctx.vms.Show(user);
      if (vm.ok() && (*vm)["state"] != "stopped" && (*vm)["state"] != "crashed") {
        return ErrorResponse(
            Status::Conflict("volume '" + vol + "' is in use by running vm '" + user + "'; stop it first"));
      }
    }
    Status st = ctx.storage.ResizeVolume(pool, vol, *size);
    if (!st.ok()) return ErrorResponse(st);
    auto v = ctx.storage.GetVolume(pool, vol);
    return v.ok() ? HttpResponse{200, VolumeJson(*v)} : ErrorResponse(v.status());
  });

  r.Add("DELETE", "/api/v1/pools/{pool}/volumes/{volume}", [&](const HttpRequest& req) {
    const auto& pool = req.params.at("pool");
    const auto& vol = req.params.at("volume");
    std::string user = ctx.vms.VolumeUser(pool, vol);
    if (!user.empty()) {
      return ErrorResponse(Status::Conflict("volume '" + vol + "' belongs to vm '" + user +
                                            "'; delete the VM (pampa vm delete " + user + ") to delete its disks"));
    }
    return Reply(ctx.storage.DeleteVolume(pool, vol), {{"deleted", vol}});
  });

  r.Add("POST", "/api/v1/pools/{pool}/import", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name", "source"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto name = RequiredString(*body, "name");
    if (!name.ok()) return ErrorResponse(name.status());
    auto source = RequiredString(*body, "source");
    if (!source.ok()) return ErrorResponse(source.status());
    std::string pool = req.params.at("pool");
    // Fast checks now, so bad input fails before a task exists.
    if (auto p = ctx.storage.GetPool(pool); !p.ok()) return ErrorResponse(p.status());
    if (auto st = ValidateName("volume", *name); !st.ok()) return ErrorResponse(st);
    if (ctx.storage.GetVolume(pool, *name).ok()) {
      return ErrorResponse(Status::Conflict("volume '" + *name + "' already exists in pool '" + pool + "'"));
    }
    auto info = ctx.storage.CheckImportImage(*source);
    if (!info.ok()) return ErrorResponse(info.status());
    std::string src = *source, vol = *name;
    auto id = ctx.tasks.Start("import", pool + "/" + vol, [&ctx, pool, vol, src](TaskContext& t) -> Result<json> {
      auto v = ctx.storage.ImportVolume(
          pool, vol, src, [&](double f) { t.Progress(f, "converting"); }, t.cancel_flag());
      if (!v.ok()) return v.status();
      return VolumeJson(*v);
    });
    return HttpResponse{202, {{"task", id}}};
  });
}

}  // namespace pampa
