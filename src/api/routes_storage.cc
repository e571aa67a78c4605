// /api/v1/pools and their volumes, and images uploaded into them.
#include <unistd.h>

#include <filesystem>
#include <random>

#include "api/api.h"
#include "base/fs.h"
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
  return ParseDiskSize(text);
}

// Converts the image at src into volume pool/vol in a task; `done` runs when
// the task ends, either way (an upload removes its file there).
std::string StartImport(ApiContext& ctx, const std::string& pool, const std::string& vol, const std::string& src,
                        std::function<void()> done = {}) {
  return ctx.tasks.Start("import", pool + "/" + vol, [&ctx, pool, vol, src, done](TaskContext& t) -> Result<json> {
    auto v = ctx.storage.ImportVolume(
        pool, vol, src, [&](double f) { t.Progress(f, "converting"); }, t.cancel_flag());
    if (done) done();
    if (!v.ok()) return v.status();
    return VolumeJson(*v);
  });
}

// Checks the pool and the name of a new volume before anything is made;
// returns the pool.
Result<PoolInfo> CheckNewVolume(ApiContext& ctx, const std::string& pool, const std::string& vol) {
  PAMPA_ASSIGN_OR_RETURN(auto p, ctx.storage.GetPool(pool));
  PAMPA_RETURN_IF_ERROR(ValidateName("volume", vol));
  if (ctx.storage.GetVolume(pool, vol).ok()) {
    return Status::Conflict("volume '" + vol + "' already exists in pool '" + pool + "'");
  }
  return p;
}

// Where uploads wait for their conversion: inside DATA/images, where pampad
// may read images from.
std::string UploadDir(const std::string& data_dir) { return data_dir + "/images/.uploads"; }

// The file name an upload of `format` gets: its extension makes the import
// refuse a file whose content is another format.
Result<std::string> UploadExtension(const std::string& format) {
  if (format.empty()) return std::string();
  for (auto [name, ext] : {std::pair<const char*, const char*>{"qcow2", ".qcow2"},
                           {"raw", ".raw"},
                           {"vmdk", ".vmdk"},
                           {"vpc", ".vhd"},
                           {"vhdx", ".vhdx"}}) {
    if (format == name) return std::string(ext);
  }
  return Status::Invalid("unknown format '" + format + "': use qcow2, raw, vmdk, vpc or vhdx, or leave it out");
}

UploadHandler ImageUpload(ApiContext& ctx) {
  UploadHandler h;
  h.begin = [&ctx](const HttpRequest& req, uint64_t length) -> Result<std::string> {
    const auto& pool = req.params.at("pool");
    const auto& vol = req.params.at("volume");
    PAMPA_ASSIGN_OR_RETURN(auto p, CheckNewVolume(ctx, pool, vol));
    auto format = req.query.count("format") ? req.query.at("format") : "";
    PAMPA_ASSIGN_OR_RETURN(auto ext, UploadExtension(format));
    if (length == 0) return Status::Invalid("the uploaded file is empty");
    const std::string dir = UploadDir(ctx.data_dir);
    PAMPA_RETURN_IF_ERROR(MakeDirs(dir, 0700));
    for (const auto& [where, free] : {std::pair{dir, SpaceOf(dir).available}, {p.path, p.available}}) {
      if (length > free) {
        return Status::Conflict("not enough space for a " + FormatSize(length) + " image in " + where + " (" +
                                FormatSize(free) + " free): free some, or upload into another pool");
      }
    }
    std::random_device rd;
    return dir + "/" + vol + "-" + std::to_string(rd()) + ext;
  };
  h.finish = [&ctx](const HttpRequest& req, const std::string& file) -> HttpResponse {
    const auto& pool = req.params.at("pool");
    const auto& vol = req.params.at("volume");
    auto info = ctx.storage.CheckImportImage(file);
    Status st = info.ok() ? CheckNewVolume(ctx, pool, vol).status() : info.status();
    if (!st.ok()) {
      unlink(file.c_str());
      return ErrorResponse(st);
    }
    auto id = StartImport(ctx, pool, vol, file, [file] { unlink(file.c_str()); });
    return HttpResponse{202, {{"task", id}}};
  };
  return h;
}

}  // namespace

void RemoveStaleUploads(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::remove_all(UploadDir(data_dir), ec);
}

void RegisterStorageRoutes(Router& r, ApiContext& ctx) {
  r.AddUpload("/api/v1/pools/{pool}/upload/{volume}", ImageUpload(ctx));
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
    auto size = RequiredString(*body, "size");
    if (!size.ok()) return ErrorResponse(size.status());
    const auto& pool = req.params.at("pool");
    const auto& vol = req.params.at("volume");
    // A VM's disk grows through its VM: live when it runs.
    if (auto disk = ctx.vms.VolumeDisk(pool, vol)) {
      auto grown = ctx.vms.ResizeDisk(disk->first, disk->second, *size);
      if (!grown.ok()) return ErrorResponse(grown.status());
    } else if (auto grown = ctx.storage.ResizeVolume(pool, vol, *size); !grown.ok()) {
      return ErrorResponse(grown.status());
    }
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
    if (auto p = CheckNewVolume(ctx, pool, *name); !p.ok()) return ErrorResponse(p.status());
    auto info = ctx.storage.CheckImportImage(*source);
    if (!info.ok()) return ErrorResponse(info.status());
    return HttpResponse{202, {{"task", StartImport(ctx, pool, *name, *source)}}};
  });
}

}  // namespace pampa
