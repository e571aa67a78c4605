// /api/v1/hosts: the pool of hosts; and, in a pool, the forwarding of a
// request about a VM to the host that runs it.
#include "api/api.h"
#include "base/clock.h"

namespace pampa {
namespace {

using json = nlohmann::json;

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

HttpResponse FromPeer(PeerReply reply) {
  HttpResponse resp;
  resp.status = reply.status;
  resp.raw = std::move(reply.body);
  resp.content_type = reply.content_type.empty() ? "application/json" : reply.content_type;
  return resp;
}

// The host that should answer req ("" or this host: answer here), or an error
// answer (placement refused).
Result<std::string> TargetHost(ApiContext& ctx, const std::string& pattern, const HttpRequest& req, json* new_body) {
  Cluster& cluster = ctx.cluster;
  if (StartsWith(pattern, "/api/v1/vms/{name}")) return cluster.OwnerOf(req.params.at("name"));
  if (pattern == "/api/v1/vms" && req.method == "POST") {
    auto body = req.Json();
    if (!body.ok()) return std::string();  // the handler says what is wrong
    auto create = ParseCreateRequest(*body);
    if (!create.ok()) return std::string();
    std::string host = create->host;
    if (host.empty()) {
      PAMPA_ASSIGN_OR_RETURN(host, cluster.Place(create->memory_mib, create->cpus));
    } else {
      PAMPA_RETURN_IF_ERROR(cluster.CheckPlacement(host, create->memory_mib, create->cpus));
    }
    (*body)["host"] = host;
    *new_body = *body;
    return host;
  }
  if (StartsWith(pattern, "/api/v1/tasks/{id}")) {
    // Its host acts on it (cancel) and knows how a running one stands: the
    // store's copy may be a moment behind (a client that just subscribed to
    // this host's events must not miss the end).
    auto task = ctx.tasks.Get(req.params.at("id"));
    if (!task.ok() || (req.method == "GET" && task->state != "running")) return std::string();
    return task->host;
  }
  if (StartsWith(pattern, "/api/v1/hosts/{host}/")) return req.params.at("host");
  return std::string();
}

std::optional<HttpResponse> Forward(ApiContext& ctx, const std::string& pattern, const HttpRequest& req) {
  Cluster& cluster = ctx.cluster;
  if (!cluster.pooled()) return std::nullopt;
  json new_body;
  auto host = TargetHost(ctx, pattern, req, &new_body);
  if (!host.ok()) return ErrorResponse(host.status());
  if (host->empty() || *host == cluster.config().host) return std::nullopt;
  PeerRequest peer{req.method, req.target, new_body.is_null() ? req.body : new_body.dump(), ""};
  auto reply = cluster.Call(*host, peer);
  if (reply.ok()) return FromPeer(std::move(*reply));
  if (pattern == "/api/v1/vms/{name}" && req.method == "GET") {
    // The owner does not answer: what the store last recorded.
    auto remote = cluster.RemoteVms();
    if (remote.ok()) {
      for (auto& vm : *remote) {
        if (vm.value("name", "") == req.params.at("name")) return HttpResponse{200, vm};
      }
    }
  }
  return ErrorResponse(reply.status());
}

}  // namespace

void RegisterClusterRoutes(Router& r, ApiContext& ctx) {
  r.SetForwarder([&ctx](const std::string& pattern, const HttpRequest& req) { return Forward(ctx, pattern, req); });

  // Joining a pool with certificates (cluster/join.h). The CA and the join
  // itself need no API token: a new host has none; its join token is its
  // credential, and the CA is public.
  r.Add("GET", "/api/v1/pool/ca", [&](const HttpRequest&) {
    auto ca = ctx.joins.Ca();
    if (!ca.ok()) return ErrorResponse(ca.status());
    return HttpResponse{200, {{"ca", ca->first}, {"ca_sha256", ca->second}}};
  });
  r.Add("POST", "/api/v1/hosts/join-tokens", [&](const HttpRequest& req) {
    // A join token buys the pool CA's key: the API token alone must not.
    if (!req.from_pool_host) {
      return HttpResponse{403,
                          {{"error",
                            "join tokens are made on a host of the pool (pampa host join-token over its unix "
                            "socket) or by another host with the pool's certificate"},
                           {"code", "forbidden"}}};
    }
    auto body = BodyWithFields(req, {"ttl_s"});
    if (!body.ok()) return ErrorResponse(body.status());
    int64_t ttl = 3600;
    if (body->contains("ttl_s")) {
      if (!(*body)["ttl_s"].is_number_integer()) {
        return ErrorResponse(Status::Invalid("field 'ttl_s' must be a whole number of seconds"));
      }
      ttl = (*body)["ttl_s"];
    }
    auto t = ctx.joins.MakeToken(std::chrono::seconds(ttl));
    if (!t.ok()) return ErrorResponse(t.status());
    return HttpResponse{201,
                        {{"token", t->token},
                         {"ca_sha256", t->ca_sha256},
                         {"expires_ms", t->expires_ms},
                         {"url", ctx.cluster.config().url}}};
  });
  r.Add("POST", "/api/v1/hosts/join", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"token", "name", "address"});
    if (!body.ok()) return ErrorResponse(body.status());
    for (const char* f : {"token", "name", "address"}) {
      if (!body->contains(f) || !(*body)[f].is_string()) {
        return ErrorResponse(Status::Invalid(std::string("field '") + f + "' (a string) is required"));
      }
    }
    auto g = ctx.joins.Redeem((*body)["token"], (*body)["name"], (*body)["address"]);
    if (!g.ok()) {
      if (g.status().code() == ErrorCode::kUnauthorized) {
        return HttpResponse{403, {{"error", g.status().message()}, {"code", "forbidden"}}};
      }
      return ErrorResponse(g.status());
    }
    return HttpResponse{200,
                        {{"ca", g->ca}, {"ca_key", g->ca_key}, {"cert", g->cert}, {"key", g->key}, {"etcd", g->etcd}}};
  });

  // High availability: the manager, each HA VM's state, the last decisions.
  r.Add("GET", "/api/v1/ha", [&](const HttpRequest&) {
    auto status = ctx.ha.Report();
    if (!status.ok()) return ErrorResponse(status.status());
    return HttpResponse{200, *status};
  });
  r.Add("GET", "/api/v1/hosts", [&](const HttpRequest&) {
    auto hosts = ctx.cluster.Hosts();
    if (!hosts.ok()) return ErrorResponse(hosts.status());
    json out = json::array();
    for (auto& h : *hosts) {
      json j = ToJson(h);
      j["pooled"] = ctx.cluster.pooled();  // false: a host alone, without --cluster
      out.push_back(std::move(j));
    }
    return HttpResponse{200, out};
  });

  r.Add("GET", "/api/v1/hosts/{host}", [&](const HttpRequest& req) {
    auto h = ctx.cluster.Host(req.params.at("host"));
    if (!h.ok()) return ErrorResponse(h.status());
    return HttpResponse{200, ToJson(*h)};
  });
  r.Add("DELETE", "/api/v1/hosts/{host}", [&](const HttpRequest& req) {
    return Reply(ctx.cluster.Remove(req.params.at("host")), {{"removed", req.params.at("host")}});
  });

  // Forwarded to the host named (see TargetHost), which answers for itself.
  r.Add("POST", "/api/v1/hosts/{host}/maintenance", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"on"});
    if (!body.ok()) return ErrorResponse(body.status());
    if (!body->contains("on") || !(*body)["on"].is_boolean()) {
      return ErrorResponse(Status::Invalid("field 'on' (true or false) is required"));
    }
    if (req.params.at("host") != ctx.cluster.config().host) {
      return ErrorResponse(ctx.cluster.Host(req.params.at("host")).status());
    }
    bool on = (*body)["on"];
    auto task = ctx.migrations.Maintenance(on);
    if (!task.ok()) return ErrorResponse(task.status());
    json out = {{"host", ctx.cluster.config().host}, {"maintenance", on}};
    if (!task->empty()) out["task"] = *task;
    return HttpResponse{on ? 202 : 200, out};
  });

  // Forwarded to the VM's host, which sends it.
  r.Add("POST", "/api/v1/vms/{name}/migrate", [&](const HttpRequest& req) {
    auto body = req.Json();
    if (!body.ok()) return ErrorResponse(body.status());
    auto m = ParseMigrateRequest(*body);
    if (!m.ok()) return ErrorResponse(m.status());
    auto task = ctx.migrations.Migrate(req.params.at("name"), *m);
    if (!task.ok()) return ErrorResponse(task.status());
    return HttpResponse{202, {{"task", *task}, {"vm", req.params.at("name")}, {"to", m->to}}};
  });

  // Between hosts of the pool: the target's side of a migration.
  r.Add("POST", "/api/v1/migrations/incoming", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"spec", "from", "paused", "disks", "cold"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto from = RequiredString(*body, "from");
    if (!from.ok()) return ErrorResponse(from.status());
    auto paused = OptionalBool(*body, "paused", false);
    if (!paused.ok()) return ErrorResponse(paused.status());
    auto spec = VmSpecFromJson(body->value("spec", json()));
    if (!spec.ok()) return ErrorResponse(Status::Invalid(spec.status().message()));
    auto copies = LocalDisksFromJson(body->value("disks", json::array()), spec->disks.size());
    if (!copies.ok()) return ErrorResponse(copies.status());
    for (LocalDisk& c : *copies) c.slot = DiskSlot(*spec, c.index);
    auto cold = OptionalBool(*body, "cold", false);
    if (!cold.ok()) return ErrorResponse(cold.status());
    if (*cold) return Reply(ctx.migrations.PrepareCold(*spec, *copies), {{"ok", true}});
    return Reply(ctx.migrations.PrepareIncoming(*spec, *from, *paused, *copies));
  });
  // A stopped VM's volume, moving in whole from its host.
  r.AddUpload("/api/v1/migrations/incoming/{name}/volumes/{pool}/{volume}",
              UploadHandler{[&](const HttpRequest& req, uint64_t length) {
                              return ctx.migrations.IncomingVolumeFile(
                                  req.params.at("name"), req.params.at("pool"), req.params.at("volume"),
                                  req.query.count("format") ? req.query.at("format") : "", length);
                            },
                            [&](const HttpRequest& req, const std::string& file) {
                              return Reply(ctx.migrations.PlaceIncomingVolume(
                                               req.params.at("name"), req.params.at("pool"), req.params.at("volume"),
                                               req.query.count("format") ? req.query.at("format") : "", file),
                                           {{"ok", true}});
                            }});
  r.Add("POST", "/api/v1/migrations/incoming/{name}/stream",
        [&](const HttpRequest& req) { return Reply(ctx.migrations.TakeStream(req.params.at("name"))); });
  r.Add("POST", "/api/v1/migrations/incoming/{name}/accept", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"run", "cold", "check"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto run = OptionalBool(*body, "run", true);
    auto cold = OptionalBool(*body, "cold", false);
    auto check = OptionalBool(*body, "check", false);
    if (!run.ok()) return ErrorResponse(run.status());
    if (!cold.ok()) return ErrorResponse(cold.status());
    if (!check.ok()) return ErrorResponse(check.status());
    double resumed_ms = -1;
    Status st = ctx.migrations.AcceptIncoming(req.params.at("name"), *run, *cold, *check, &resumed_ms);
    json out = {{"ok", true}};
    if (resumed_ms >= 0) out["resumed_ms"] = resumed_ms;
    return Reply(st, out);
  });
  r.Add("DELETE", "/api/v1/migrations/incoming/{name}",
        [&](const HttpRequest& req) { return Reply(ctx.migrations.AbortIncoming(req.params.at("name"))); });
}

}  // namespace pampa
