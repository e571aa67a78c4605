// Metrics and capacity: /api/v1/vms/{name}/stats, /api/v1/host/stats,
// /api/v1/host/capacity, /api/v1/host/ksm, and /metrics for Prometheus.
#include "api/api.h"
#include "base/units.h"

namespace pampa {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxSince = 366 * 86400;

// ?since=SECONDS or a duration (1h, 7d); an hour when absent.
Result<int64_t> Since(const HttpRequest& req) {
  auto it = req.query.find("since");
  if (it == req.query.end() || it->second.empty()) return int64_t{3600};
  const std::string& text = it->second;
  int64_t s = 0;
  if (std::all_of(text.begin(), text.end(), ::isdigit) && text.size() < 10) {
    s = std::stoll(text);
  } else {
    auto d = ParseDuration(text);
    if (!d.ok()) return d.status().Context("since");
    s = d->count();
  }
  if (s <= 0 || s > kMaxSince) return Status::Invalid("since must be from 1 s to a year (e.g. 1h, 1d, 7d)");
  return s;
}

}  // namespace

void RegisterResourceRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/vms/{name}/stats", [&](const HttpRequest& req) {
    auto since = Since(req);
    if (!since.ok()) return ErrorResponse(since.status());
    return Reply(ctx.metrics.VmStats(req.params.at("name"), *since));
  });
  r.Add("GET", "/api/v1/host/stats", [&](const HttpRequest& req) {
    auto since = Since(req);
    if (!since.ok()) return ErrorResponse(since.status());
    return HttpResponse{200, ctx.metrics.HostStats(*since)};
  });
  r.Add("GET", "/api/v1/host/capacity", [&](const HttpRequest& req) {
    int cpus = 1;
    uint64_t memory = 256ull << 20;
    if (auto it = req.query.find("cpus"); it != req.query.end()) {
      const std::string& t = it->second;
      if (t.empty() || t.size() > 3 || !std::all_of(t.begin(), t.end(), ::isdigit) || std::stoi(t) < 1) {
        return ErrorResponse(Status::Invalid("cpus must be a whole number from 1"));
      }
      cpus = std::stoi(t);
    }
    if (auto it = req.query.find("memory"); it != req.query.end()) {
      auto size = ParseSize(it->second);
      if (!size.ok() || *size < (16ull << 20)) {
        return ErrorResponse(Status::Invalid("memory must be a size of at least 16M, such as 256M or 2G"));
      }
      memory = *size;
    }
    return HttpResponse{200, ctx.metrics.Capacity(cpus, memory)};
  });
  r.Add("GET", "/api/v1/host/ksm", [&](const HttpRequest&) { return HttpResponse{200, Metrics::Ksm()}; });
  r.Add("PUT", "/api/v1/host/ksm", [&](const HttpRequest& req) {
    auto body = req.Json();
    if (!body.ok()) return ErrorResponse(body.status());
    if (!body->contains("on") || !(*body)["on"].is_boolean() || body->size() != 1) {
      return ErrorResponse(Status::Invalid("the body must be {\"on\": true} or {\"on\": false}"));
    }
    return Reply(Metrics::SetKsm((*body)["on"].get<bool>()));
  });
  r.Add("GET", "/metrics", [&](const HttpRequest&) {
    return HttpResponse{200, {}, ctx.metrics.Prometheus(), "text/plain; version=0.0.4; charset=utf-8"};
  });
}

}  // namespace pampa
