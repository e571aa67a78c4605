// /api/v1/repos and backups: backup, list, show, restore, verify.
#include <algorithm>

#include "api/api.h"
#include "backup/prune.h"
#include "backup/verify.h"
#include "base/units.h"

namespace pampa {
namespace {

using json = nlohmann::json;

json Summary(const Manifest& m, const std::string& repo) {
  return {{"id", m.id},
          {"repo", repo},
          {"vm", m.vm},
          {"created", m.created},
          {"incremental", m.incremental},
          {"parent", m.parent},
          {"consistency", m.consistency},
          {"size", m.size},
          {"bytes_read", m.bytes_read},
          {"bytes_uploaded", m.bytes_uploaded},
          {"seconds", m.seconds},
          {"disks", m.disks.size()}};
}

// The disk index of a file-restore request ("disk" in the query or body; 0 when absent).
Result<size_t> DiskIndex(const json& value) {
  if (value.is_null()) return size_t{0};
  if (value.is_number_unsigned() && value.get<uint64_t>() < 64) return value.get<size_t>();
  if (value.is_string()) {
    const std::string& t = value.get_ref<const std::string&>();
    if (!t.empty() && t.size() < 3 && std::all_of(t.begin(), t.end(), ::isdigit)) return std::stoul(t);
  }
  return Status::Invalid("disk must be a disk number (0 for the first disk), not " + value.dump());
}

// What a file-restore request reads: the repository opened, the backup, the disk.
Result<FileRestores::Source> FileSource(ApiContext& ctx, const HttpRequest& req, const json& disk) {
  PAMPA_ASSIGN_OR_RETURN(size_t index, DiskIndex(disk));
  PAMPA_ASSIGN_OR_RETURN(auto repo, ctx.repos.Open(req.params.at("repo")));
  return FileRestores::Source{req.params.at("repo"), repo, req.params.at("id"), index};
}

HttpResponse Task(const Result<std::string>& task) {
  if (!task.ok()) return ErrorResponse(task.status());
  return HttpResponse{202, {{"task", task.value()}}};
}

}  // namespace

void RegisterBackupRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/repos", [&](const HttpRequest&) {
    auto repos = ctx.repos.List();
    if (!repos.ok()) return ErrorResponse(repos.status());
    json out = json::array();
    for (auto& i : *repos) {
      out.push_back({{"name", i.name}, {"url", i.url}, {"encrypted", i.KeyKind() != "none"}, {"key", i.KeyKind()}});
    }
    return HttpResponse{200, out};
  });

  r.Add("POST", "/api/v1/repos", [&](const HttpRequest& req) {
    auto body = BodyWithFields(
        req, {"name", "url", "passphrase_file", "key_file", "no_encryption", "ssh_key", "known_hosts", "chunk_size"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto name = RequiredString(*body, "name");
    if (!name.ok()) return ErrorResponse(name.status());
    auto url = RequiredString(*body, "url");
    if (!url.ok()) return ErrorResponse(url.status());
    RepoInfo info{*name, *url};
    for (auto [key, dst] : {std::pair{"passphrase_file", &info.passphrase_file},
                            {"key_file", &info.key_file},
                            {"ssh_key", &info.ssh_key},
                            {"known_hosts", &info.known_hosts}}) {
      auto v = OptionalString(*body, key);
      if (!v.ok()) return ErrorResponse(v.status());
      *dst = *v;
    }
    auto no_enc = OptionalBool(*body, "no_encryption");
    if (!no_enc.ok()) return ErrorResponse(no_enc.status());
    auto chunk = OptionalString(*body, "chunk_size");
    if (!chunk.ok()) return ErrorResponse(chunk.status());
    uint64_t chunk_size = 0;
    if (!chunk->empty()) {
      auto parsed = ParseSize(*chunk);
      if (!parsed.ok()) return ErrorResponse(parsed.status().Context("chunk_size"));
      chunk_size = *parsed;
    }
    auto added = ctx.repos.Add(info, *no_enc, chunk_size);
    return added.ok() ? HttpResponse{201, *added} : ErrorResponse(added.status());
  });

  r.Add("DELETE", "/api/v1/repos/{repo}", [&](const HttpRequest& req) {
    Status st = ctx.repos.Remove(req.params.at("repo"));
    if (!st.ok()) return ErrorResponse(st);
    return HttpResponse{200, {{"removed", req.params.at("repo")}}};
  });
  r.Add("POST", "/api/v1/repos/{repo}/passphrase", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"passphrase_file"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto file = RequiredString(*body, "passphrase_file");
    if (!file.ok()) return ErrorResponse(file.status());
    Status st = ctx.repos.ChangePassphrase(req.params.at("repo"), *file);
    if (!st.ok()) return ErrorResponse(st);
    return HttpResponse{200, json{{"name", req.params.at("repo")}, {"passphrase_file", *file}}};
  });

  r.Add("POST", "/api/v1/vms/{name}/backup", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"repo"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto repo_name = RequiredString(*body, "repo");
    if (!repo_name.ok()) return ErrorResponse(repo_name.status());
    std::function<Status()> check;  // made by the task while it prepares the disks
    auto repo = ctx.repos.Open(*repo_name, &check);
    if (!repo.ok()) return ErrorResponse(repo.status());
    return Task(ctx.jobs.Backup(req.params.at("name"), *repo, *repo_name, std::move(check)));
  });

  r.Add("GET", "/api/v1/backups", [&](const HttpRequest& req) {
    std::vector<std::string> names;
    if (req.query.count("repo")) {
      names.push_back(req.query.at("repo"));
    } else {
      auto repos = ctx.repos.List();
      if (!repos.ok()) return ErrorResponse(repos.status());
      for (auto& i : *repos) names.push_back(i.name);
    }
    std::string vm = req.query.count("vm") ? req.query.at("vm") : "";
    json out = json::array();
    // One repository that cannot be read (its disk unmounted, its server
    // down) is named with the reason; the others are still listed.
    bool one = req.query.count("repo") > 0;
    for (auto& name : names) {
      auto repo = ctx.repos.Open(name);
      auto ids = repo.ok() ? (*repo)->ListBackups() : Result<std::vector<std::string>>(repo.status());
      if (!ids.ok()) {
        if (one) return ErrorResponse(ids.status());
        out.push_back({{"repo", name}, {"unreachable", ids.status().message()}});
        continue;
      }
      for (auto& id : *ids) {
        auto m = (*repo)->ReadManifest(id);
        if (!m.ok()) {
          out.push_back({{"id", id}, {"repo", name}, {"error", m.status().message()}});
          continue;
        }
        if (!vm.empty() && m->vm != vm) continue;
        out.push_back(Summary(*m, name));
      }
    }
    return HttpResponse{200, out};
  });

  r.Add("GET", "/api/v1/repos/{repo}/backups/{id}", [&](const HttpRequest& req) {
    auto repo = ctx.repos.Open(req.params.at("repo"));
    if (!repo.ok()) return ErrorResponse(repo.status());
    auto m = (*repo)->ReadManifest(req.params.at("id"));
    if (!m.ok()) return ErrorResponse(m.status());
    json s = Summary(*m, req.params.at("repo"));
    s["spec"] = m->spec;
    json disks = json::array();
    for (auto& d : m->disks) {
      disks.push_back(
          {{"volume", d.volume}, {"size", d.size}, {"chunks", d.chunks.size()}, {"data_chunks", d.DataChunks()}});
    }
    s["disks"] = disks;
    return HttpResponse{200, s};
  });

  // File-level restore: a directory listing, and files as a tar stream.
  r.Add("GET", "/api/v1/repos/{repo}/backups/{id}/files", [&](const HttpRequest& req) {
    for (auto& [key, value] : req.query) {
      if (key != "disk" && key != "path") {
        return ErrorResponse(Status::Invalid("unknown query parameter '" + key + "' (known: disk, path)"));
      }
    }
    auto src = FileSource(ctx, req, req.query.count("disk") ? json(req.query.at("disk")) : json());
    if (!src.ok()) return ErrorResponse(src.status());
    return Reply(ctx.files.List(*src, req.query.count("path") ? req.query.at("path") : "/"));
  });

  r.Add("POST", "/api/v1/repos/{repo}/backups/{id}/extract", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"paths", "disk"});
    if (!body.ok()) return ErrorResponse(body.status());
    const json& paths = (*body)["paths"];
    if (!paths.is_array() || paths.empty() ||
        !std::all_of(paths.begin(), paths.end(), [](const json& p) { return p.is_string(); })) {
      return ErrorResponse(Status::Invalid("paths must be a list of paths inside the backup, e.g. [\"/part1/etc\"]"));
    }
    auto src = FileSource(ctx, req, body->value("disk", json()));
    if (!src.ok()) return ErrorResponse(src.status());
    auto extraction = ctx.files.Extract(*src, paths.get<std::vector<std::string>>());
    if (!extraction.ok()) return ErrorResponse(extraction.status());
    HttpResponse resp;
    resp.content_type = "application/x-tar";
    resp.headers["Pampa-File-Bytes"] = std::to_string(extraction->file_bytes);
    resp.stream = [write = extraction->write](const BodyWriter& out) { return write(out); };
    return resp;
  });

  r.Add("POST", "/api/v1/repos/{repo}/backups/{id}/restore", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"as", "pool", "in_place", "discard_snapshots", "live", "bwlimit"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto as = OptionalString(*body, "as");
    auto pool = OptionalString(*body, "pool");
    auto in_place = OptionalBool(*body, "in_place");
    auto discard = OptionalBool(*body, "discard_snapshots");
    auto live = OptionalBool(*body, "live");
    auto bwlimit = OptionalString(*body, "bwlimit");
    for (const Status& st :
         {as.status(), pool.status(), in_place.status(), discard.status(), live.status(), bwlimit.status()}) {
      if (!st.ok()) return ErrorResponse(st);
    }
    if (!*in_place && as->empty()) {
      return ErrorResponse(Status::Invalid("give --as NEWVM, or --in-place to overwrite the stopped original"));
    }
    if (*live && *in_place) {
      return ErrorResponse(Status::Invalid("a live restore makes a new VM: give --as NEWVM instead of --in-place"));
    }
    if (!bwlimit->empty() && !*live) {
      return ErrorResponse(Status::Invalid("--bwlimit limits a live restore's background copy: add --live"));
    }
    uint64_t copy_bps = 0;
    if (!bwlimit->empty()) {
      auto bps = ParseSize(*bwlimit);
      if (!bps.ok() || *bps < (1 << 20)) {
        return ErrorResponse(Status::Invalid("bwlimit '" + *bwlimit + "' is not a rate of at least 1M (per second)"));
      }
      copy_bps = *bps;
    }
    auto repo = ctx.repos.Open(req.params.at("repo"));
    if (!repo.ok()) return ErrorResponse(repo.status());
    if (*live) {
      auto info = ctx.repos.Get(req.params.at("repo"));
      if (!info.ok()) return ErrorResponse(info.status());
      return Task(ctx.live.Start({*info, *repo, req.params.at("id"), *as, *pool, true, copy_bps}));
    }
    return Task(ctx.jobs.Restore(*repo, req.params.at("id"), *as, *pool, *in_place, *discard));
  });

  r.Add("GET", "/api/v1/schedules", [&](const HttpRequest&) {
    auto list = ctx.schedules.List();
    return list.ok() ? HttpResponse{200, json(*list)} : ErrorResponse(list.status());
  });
  r.Add("POST", "/api/v1/schedules", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"vms", "repo", "daily", "keep"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto repo = RequiredString(*body, "repo");
    if (!repo.ok()) return ErrorResponse(repo.status());
    auto daily = RequiredString(*body, "daily");
    if (!daily.ok()) return ErrorResponse(daily.status());
    std::vector<std::string> vms;
    if (!(*body)["vms"].is_array()) return ErrorResponse(Status::Invalid("field 'vms' must be an array of VM names"));
    for (auto& v : (*body)["vms"]) {
      if (!v.is_string()) return ErrorResponse(Status::Invalid("field 'vms' must be an array of VM names"));
      vms.push_back(v);
    }
    RetentionPolicy keep;
    json k = body->value("keep", json::object());
    if (!k.is_object()) return ErrorResponse(Status::Invalid("field 'keep' must be an object"));
    for (auto [key, dst] : {std::pair{"keep_last", &keep.keep_last},
                            {"keep_daily", &keep.keep_daily},
                            {"keep_weekly", &keep.keep_weekly},
                            {"keep_monthly", &keep.keep_monthly},
                            {"keep_yearly", &keep.keep_yearly}}) {
      if (!k.contains(key)) continue;
      if (!k[key].is_number_integer() || k[key].get<int64_t>() < 0) {
        return ErrorResponse(Status::Invalid(std::string("keep.") + key + " must be a count"));
      }
      *dst = k[key].get<int>();
    }
    auto s = ctx.schedules.Add(vms, *repo, *daily, keep);
    return s.ok() ? HttpResponse{201, *s} : ErrorResponse(s.status());
  });
  r.Add("DELETE", "/api/v1/schedules/{id}", [&](const HttpRequest& req) {
    return Reply(ctx.schedules.Delete(req.params.at("id")), {{"deleted", req.params.at("id")}});
  });
  r.Add("POST", "/api/v1/schedules/{id}/run",
        [&](const HttpRequest& req) { return Task(ctx.schedules.RunNow(req.params.at("id"))); });

  r.Add("GET", "/api/v1/drills", [&](const HttpRequest&) {
    auto list = ctx.drills.List();
    return list.ok() ? HttpResponse{200, json(*list)} : ErrorResponse(list.status());
  });
  r.Add("POST", "/api/v1/drills", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"vm", "repo", "day", "time", "check", "timeout"});
    if (!body.ok()) return ErrorResponse(body.status());
    DrillRequest d;
    for (auto [key, dst] : {std::pair{"vm", &d.vm}, {"repo", &d.repo}, {"day", &d.day}, {"time", &d.time}}) {
      auto v = RequiredString(*body, key);
      if (!v.ok()) return ErrorResponse(v.status());
      *dst = *v;
    }
    auto check = OptionalString(*body, "check");
    auto timeout = OptionalString(*body, "timeout");
    for (const Status& st : {check.status(), timeout.status()}) {
      if (!st.ok()) return ErrorResponse(st);
    }
    d.check = *check;
    if (!timeout->empty()) {
      auto t = ParseDuration(*timeout);
      if (!t.ok()) return ErrorResponse(t.status());
      d.timeout = *t;
    }
    auto added = ctx.drills.Add(d);
    return added.ok() ? HttpResponse{201, *added} : ErrorResponse(added.status());
  });
  r.Add("DELETE", "/api/v1/drills/{id}", [&](const HttpRequest& req) {
    return Reply(ctx.drills.Remove(req.params.at("id")), {{"deleted", req.params.at("id")}});
  });
  r.Add("POST", "/api/v1/drills/{id}/run",
        [&](const HttpRequest& req) { return Task(ctx.drills.RunNow(req.params.at("id"))); });

  r.Add("POST", "/api/v1/repos/{repo}/prune", [&](const HttpRequest& req) {
    auto body =
        BodyWithFields(req, {"keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "vm", "dry_run"});
    if (!body.ok()) return ErrorResponse(body.status());
    RetentionPolicy p;
    for (auto [key, dst] : {std::pair{"keep_last", &p.keep_last},
                            {"keep_daily", &p.keep_daily},
                            {"keep_weekly", &p.keep_weekly},
                            {"keep_monthly", &p.keep_monthly},
                            {"keep_yearly", &p.keep_yearly}}) {
      if (!body->contains(key)) continue;
      auto& v = (*body)[key];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100000) {
        return ErrorResponse(Status::Invalid(std::string("field '") + key + "' must be a count from 0 to 100000"));
      }
      *dst = v.get<int>();
    }
    if (p.empty()) {
      return ErrorResponse(
          Status::Invalid("give at least one --keep-last/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly"));
    }
    auto vm = OptionalString(*body, "vm");
    if (!vm.ok()) return ErrorResponse(vm.status());
    auto dry = OptionalBool(*body, "dry_run");
    if (!dry.ok()) return ErrorResponse(dry.status());
    auto repo = ctx.repos.Open(req.params.at("repo"));
    if (!repo.ok()) return ErrorResponse(repo.status());
    std::shared_ptr<Repository> rp = *repo;
    return Task(ctx.tasks.Start(
        "prune", req.params.at("repo"),
        [rp, p, vm = *vm, dry = *dry](TaskContext&) -> Result<json> { return Prune(*rp, p, vm, dry); }));
  });

  r.Add("POST", "/api/v1/repos/{repo}/verify", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"backup"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto id = OptionalString(*body, "backup");
    if (!id.ok()) return ErrorResponse(id.status());
    auto repo = ctx.repos.Open(req.params.at("repo"));
    if (!repo.ok()) return ErrorResponse(repo.status());
    std::shared_ptr<Repository> rp = *repo;
    return Task(ctx.tasks.Start("verify", req.params.at("repo"), [rp, id = *id](TaskContext& t) -> Result<json> {
      return VerifyRepository(
          *rp, id, 2, [&](double f) { t.Progress(f, "checking chunks"); }, t.cancel_flag());
    }));
  });
}

}  // namespace pampa
