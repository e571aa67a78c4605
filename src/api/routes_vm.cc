// /api/v1/vms: the VM lifecycle.
#include <algorithm>

#include "api/api.h"
#include "base/fs.h"

namespace pampa {

using json = nlohmann::json;

Result<json> BodyWithFields(const HttpRequest& req, const std::set<std::string>& allowed) {
  PAMPA_ASSIGN_OR_RETURN(auto body, req.Json());
  if (!body.is_object()) return Status::Invalid("the request body must be a JSON object");
  for (auto& [k, v] : body.items()) {
    if (!allowed.count(k)) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return Status::Invalid("unknown field '" + k + "'" + (list.empty() ? "" : " (known fields: " + list + ")"));
    }
  }
  return body;
}

Result<std::string> RequiredString(const json& body, const std::string& key) {
  if (!body.contains(key)) return Status::Invalid("field '" + key + "' is required");
  if (!body[key].is_string()) return Status::Invalid("field '" + key + "' must be a string");
  return body[key].get<std::string>();
}

Result<std::string> OptionalString(const json& body, const std::string& key) {
  if (!body.contains(key)) return std::string();
  return RequiredString(body, key);
}

Result<bool> OptionalBool(const json& body, const std::string& key, bool def) {
  if (!body.contains(key)) return def;
  if (!body[key].is_boolean()) return Status::Invalid("field '" + key + "' must be true or false");
  return body[key].get<bool>();
}

namespace {

// Reads an optional positive integer field bounded by max.
Result<int> OptionalSeconds(const json& body, const std::string& key, int def, int max) {
  if (!body.contains(key)) return def;
  if (!body[key].is_number_integer() || body[key].get<int64_t>() < 0 || body[key].get<int64_t>() > max) {
    return Status::Invalid("field '" + key + "' must be a number of seconds from 0 to " + std::to_string(max));
  }
  return body[key].get<int>();
}

HttpResponse Simple(ApiContext& ctx, const HttpRequest& req, Status (VmManager::*op)(const std::string&)) {
  auto body = BodyWithFields(req, {});
  if (!body.ok()) return ErrorResponse(body.status());
  const std::string& name = req.params.at("name");
  Status st = (ctx.vms.*op)(name);
  if (!st.ok()) return ErrorResponse(st);
  return Reply(ctx.vms.Show(name));
}

}  // namespace

void RegisterVmRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/vms", [&](const HttpRequest&) {
    if (!ctx.cluster.pooled()) return HttpResponse{200, {}, ctx.vms.ListText(), "application/json"};
    // Every VM of the pool by name: this host's as they are, the others' as
    // their hosts last recorded them (a VM arriving here is in both: ours wins).
    auto remote = ctx.cluster.RemoteVmTexts();
    if (!remote.ok()) return ErrorResponse(remote.status());
    auto local = ctx.vms.ListTexts();
    Cluster::NamedTexts all;
    all.reserve(local.size() + remote->size());
    size_t i = 0, j = 0;
    while (i < local.size() || j < remote->size()) {
      if (j == remote->size() || (i < local.size() && local[i].first <= (*remote)[j].first)) {
        if (j < remote->size() && local[i].first == (*remote)[j].first) ++j;
        all.push_back(std::move(local[i++]));
      } else {
        all.push_back(std::move((*remote)[j++]));
      }
    }
    return HttpResponse{200, {}, JsonArrayText(all), "application/json"};
  });

  r.Add("POST", "/api/v1/vms", [&](const HttpRequest& req) {
    auto body = req.Json();
    if (!body.ok()) return ErrorResponse(body.status());
    auto create = ParseCreateRequest(*body);
    if (!create.ok()) return ErrorResponse(create.status());
    auto task = ctx.vms.Create(*create);
    if (!task.ok()) return ErrorResponse(task.status());
    VmSpec planned;
    planned.name = create->name;
    planned.memory_mib = create->memory_mib;
    return HttpResponse{
        202,
        {{"task", *task}, {"vm", create->name}, {"host", ctx.hostname}, {"warnings", ctx.vms.SpecWarnings(planned)}}};
  });

  r.Add("GET", "/api/v1/vms/{name}", [&](const HttpRequest& req) {
    auto text = ctx.vms.ShowText(req.params.at("name"));
    if (!text.ok()) return ErrorResponse(text.status());
    constexpr std::string_view kMin = "\"memory_min_mib\":";
    size_t min = text->find(kMin);
    if (min != std::string::npos && text->compare(min + kMin.size(), 1, "0") != 0) {  // dynamic: what it has now
      auto vm = json::parse(*text, nullptr, false);
      if (auto assigned = ctx.metrics.Assigned(vm.value("uuid", ""))) {
        vm["balloon_mib"] = *assigned >> 20;
        return HttpResponse{200, vm};
      }
    }
    return HttpResponse{200, {}, std::move(*text), "application/json"};
  });

  r.Add("PATCH", "/api/v1/vms/{name}", [&](const HttpRequest& req) {
    auto body = req.Json();
    if (!body.ok()) return ErrorResponse(body.status());
    auto edit = ParseEditRequest(*body);
    if (!edit.ok()) return ErrorResponse(edit.status());
    Status st = ctx.vms.Edit(req.params.at("name"), *edit);
    if (!st.ok()) return ErrorResponse(st);
    return Reply(ctx.vms.Show(req.params.at("name")));
  });

  r.Add("DELETE", "/api/v1/vms/{name}", [&](const HttpRequest& req) {
    return Reply(ctx.vms.Delete(req.params.at("name")), {{"deleted", req.params.at("name")}});
  });

  r.Add("POST", "/api/v1/vms/{name}/start", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"force"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto force = OptionalBool(*body, "force", false);
    if (!force.ok()) return ErrorResponse(force.status());
    const std::string& name = req.params.at("name");
    if (Status st = ctx.vms.Start(name, *force); !st.ok()) return ErrorResponse(st);
    return Reply(ctx.vms.Show(name));
  });
  r.Add("POST", "/api/v1/vms/{name}/stop", [&](const HttpRequest& req) { return Simple(ctx, req, &VmManager::Stop); });
  r.Add("POST", "/api/v1/vms/{name}/reboot",
        [&](const HttpRequest& req) { return Simple(ctx, req, &VmManager::Reboot); });
  r.Add("POST", "/api/v1/vms/{name}/pause",
        [&](const HttpRequest& req) { return Simple(ctx, req, &VmManager::Pause); });
  r.Add("POST", "/api/v1/vms/{name}/resume",
        [&](const HttpRequest& req) { return Simple(ctx, req, &VmManager::Resume); });

  r.Add("POST", "/api/v1/vms/{name}/shutdown", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"timeout"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto timeout = OptionalSeconds(*body, "timeout", 120, 86400);
    if (!timeout.ok()) return ErrorResponse(timeout.status());
    auto task = ctx.vms.Shutdown(req.params.at("name"), std::chrono::seconds(*timeout));
    if (!task.ok()) return ErrorResponse(task.status());
    return HttpResponse{202, {{"task", *task}, {"vm", req.params.at("name")}}};
  });

  r.Add("POST", "/api/v1/vms/{name}/exec", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"command", "timeout"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto& cmd = (*body)["command"];
    if (!cmd.is_array() || cmd.empty()) {
      return ErrorResponse(Status::Invalid("field 'command' must be a non-empty array of strings (argv)"));
    }
    std::vector<std::string> argv;
    for (auto& a : cmd) {
      if (!a.is_string()) return ErrorResponse(Status::Invalid("every element of 'command' must be a string"));
      argv.push_back(a);
    }
    auto timeout = OptionalSeconds(*body, "timeout", 60, 3600);
    if (!timeout.ok()) return ErrorResponse(timeout.status());
    auto res = ctx.vms.Exec(req.params.at("name"), argv, std::chrono::seconds(*timeout));
    if (!res.ok()) return ErrorResponse(res.status());
    json out = {
        {"exit_code", res->exit_code}, {"stdout", res->out}, {"stderr", res->err}, {"truncated", res->out_truncated}};
    return HttpResponse{200, out};
  });

  r.Add("POST", "/api/v1/vms/{name}/disks/{index}/resize", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"size"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto size = RequiredString(*body, "size");
    if (!size.ok()) return ErrorResponse(size.status());
    const std::string& text = req.params.at("index");
    if (text.empty() || text.size() > 2 || !std::all_of(text.begin(), text.end(), ::isdigit)) {
      return ErrorResponse(Status::Invalid("disk '" + text + "' is not a disk number (0 is the first disk)"));
    }
    const std::string& name = req.params.at("name");
    size_t index = std::stoul(text);
    auto grown = ctx.vms.ResizeDisk(name, index, *size);
    if (!grown.ok()) return ErrorResponse(grown.status());
    return HttpResponse{200, {{"vm", name}, {"disk", index}, {"size", *grown}}};
  });

  r.Add("POST", "/api/v1/vms/{name}/clone", [&](const HttpRequest& req) {
    auto body = req.Json();
    if (!body.ok()) return ErrorResponse(body.status());
    auto clone = ParseCloneRequest(req.params.at("name"), *body);
    if (!clone.ok()) return ErrorResponse(clone.status());
    auto task = ctx.vms.Clone(*clone);
    if (!task.ok()) return ErrorResponse(task.status());
    return HttpResponse{202, {{"task", *task}, {"vm", clone->name}, {"host", ctx.hostname}}};
  });
  r.Add("POST", "/api/v1/vms/{name}/template",
        [&](const HttpRequest& req) { return Simple(ctx, req, &VmManager::MakeTemplate); });
  r.Add("POST", "/api/v1/vms/{name}/rename", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto to = RequiredString(*body, "name");
    if (!to.ok()) return ErrorResponse(to.status());
    if (Status st = ctx.vms.Rename(req.params.at("name"), *to); !st.ok()) return ErrorResponse(st);
    return Reply(ctx.vms.Show(*to));
  });

  // The guest's addresses: from its agent, else from the leases Pampa's NAT
  // networks gave its NICs.
  r.Add("GET", "/api/v1/vms/{name}/addresses", [&](const HttpRequest& req) {
    const std::string& name = req.params.at("name");
    auto agent = ctx.vms.GuestAddresses(name);
    if (agent.ok()) return HttpResponse{200, {{"vm", name}, {"source", "agent"}, {"interfaces", *agent}}};
    auto vm = ctx.vms.Show(name);
    if (!vm.ok()) return ErrorResponse(vm.status());
    VmState state;
    if (!ParseVmState(vm->value("state", ""), &state) || !QemuAlive(state)) return ErrorResponse(agent.status());
    json interfaces = json::array();
    for (const auto& nic : vm->value("nics", json::array())) {
      std::string ip = ctx.networks.LeasedAddress(nic.value("network", ""), nic.value("mac", ""));
      interfaces.push_back({{"network", nic.value("network", "")},
                            {"mac", nic.value("mac", "")},
                            {"addresses", ip.empty() ? json::array() : json::array({ip})}});
    }
    return HttpResponse{
        200, {{"vm", name}, {"source", "dhcp"}, {"agent", agent.status().message()}, {"interfaces", interfaces}}};
  });

  r.Add("GET", "/api/v1/vms/{name}/agent", [&](const HttpRequest& req) {
    Status st = ctx.vms.AgentPing(req.params.at("name"));
    if (st.code() == ErrorCode::kNotFound || st.code() == ErrorCode::kInvalid) return ErrorResponse(st);
    return HttpResponse{200, {{"agent", st.ok()}, {"detail", st.ok() ? "the guest agent answers" : st.message()}}};
  });

  r.Add("GET", "/api/v1/vms/{name}/console/log", [&](const HttpRequest& req) {
    auto c = ctx.vms.Console(req.params.at("name"));
    if (!c.ok()) return ErrorResponse(c.status());
    HttpResponse resp;
    resp.raw = TailFile(c->serial_log, 4 << 20);
    return resp;
  });

  // A VM from another hypervisor's export (XenServer XVA, OVA) on this host: a task.
  r.Add("POST", "/api/v1/vms/import", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"name", "xva", "ova", "pool", "network", "disk_bus", "from_host", "disks",
                                     "identity", "known_hosts", "second_pass"});
    if (!body.ok()) return ErrorResponse(body.status());
    ImportRequest ir;
    auto name = RequiredString(*body, "name");
    auto xva = OptionalString(*body, "xva");
    auto ova = OptionalString(*body, "ova");
    auto pool = OptionalString(*body, "pool");
    auto network = OptionalString(*body, "network");
    auto bus = OptionalString(*body, "disk_bus");
    auto from_host = OptionalString(*body, "from_host");
    auto identity = OptionalString(*body, "identity");
    auto known_hosts = OptionalString(*body, "known_hosts");
    for (const Status& st : {name.status(), xva.status(), ova.status(), pool.status(), network.status(), bus.status(),
                             from_host.status(), identity.status(), known_hosts.status()}) {
      if (!st.ok()) return ErrorResponse(st);
    }
    if (int(!xva->empty()) + int(!ova->empty()) + int(!from_host->empty()) != 1) {
      return ErrorResponse(
          Status::Invalid("give exactly one of 'xva' (a XenServer export), 'ova' (an OVF package), the path of the "
                          "file on the host, or 'from_host' (ssh://user@host of a physical server)"));
    }
    ir.from_host = *from_host;
    ir.identity = *identity;
    ir.known_hosts = *known_hosts;
    if (body->contains("disks")) {
      const auto& disks = (*body)["disks"];
      if (!disks.is_array() || disks.empty() || disks.size() > kMaxDisks) {
        return ErrorResponse(Status::Invalid("field 'disks' must list 1 to 16 device paths such as \"/dev/sda\""));
      }
      for (const auto& d : disks) {
        if (!d.is_string()) return ErrorResponse(Status::Invalid("each entry of 'disks' must be a device path"));
        ir.host_disks.push_back(d.get<std::string>());
      }
    }
    if (body->contains("second_pass")) {
      if (!(*body)["second_pass"].is_boolean()) {
        return ErrorResponse(Status::Invalid("field 'second_pass' must be true or false"));
      }
      ir.second_pass = (*body)["second_pass"].get<bool>();
    }
    ir.name = *name;
    ir.xva = *xva;
    ir.ova = *ova;
    if (body->contains("pool")) {
      if (pool->empty()) return ErrorResponse(Status::Invalid("field 'pool' must name a pool (or be left out)"));
      ir.pool = *pool;
    }
    if (body->contains("network")) {
      if (network->empty())
        return ErrorResponse(Status::Invalid("field 'network' must name a network (or be left out)"));
      ir.network = *network;
    }
    if (body->contains("disk_bus") && !ParseDiskBus(*bus, &ir.bus)) {
      return ErrorResponse(Status::Invalid("disk bus '" + *bus + "' is unknown (use virtio, scsi or sata)"));
    }
    auto task = ctx.imports.Import(ir);
    if (!task.ok()) return ErrorResponse(task.status());
    return HttpResponse{202, {{"task", *task}, {"vm", ir.name}, {"host", ctx.hostname}}};
  });
}

}  // namespace pampa
