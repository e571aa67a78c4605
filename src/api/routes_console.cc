// POST /api/v1/tickets (a WebSocket's single-use pass) and
// POST /api/v1/vms/{name}/sendkey (text or a chord typed into the guest).
#include "api/api.h"

namespace pampa {

namespace {

Result<TicketKind> ParseTicketKind(const std::string& kind) {
  if (kind == "events") return TicketKind::kEvents;
  if (kind == "console") return TicketKind::kSerial;
  if (kind == "vnc") return TicketKind::kVnc;
  return Status::Invalid("unknown ticket kind '" + kind + "': use events, console or vnc");
}

}  // namespace

void RegisterConsoleRoutes(Router& r, ApiContext& ctx) {
  r.Add("POST", "/api/v1/tickets", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"kind", "vm"});
    if (!body.ok()) return ErrorResponse(body.status());
    auto kind_name = RequiredString(*body, "kind");
    if (!kind_name.ok()) return ErrorResponse(kind_name.status());
    auto kind = ParseTicketKind(*kind_name);
    if (!kind.ok()) return ErrorResponse(kind.status());
    auto vm = OptionalString(*body, "vm");
    if (!vm.ok()) return ErrorResponse(vm.status());
    if (*kind == TicketKind::kEvents && !vm->empty()) {
      return ErrorResponse(Status::Invalid("an events ticket names no vm"));
    }
    if (*kind != TicketKind::kEvents) {
      if (vm->empty()) return ErrorResponse(Status::Invalid("a console ticket needs \"vm\": the VM's name"));
      auto console = ctx.vms.Console(*vm);
      if (!console.ok()) {
        // In a pool, the console of another host's VM is opened on that host.
        auto owner = ctx.cluster.OwnerOf(*vm);
        if (ctx.cluster.pooled() && owner.ok() && !owner->empty() && *owner != ctx.hostname) {
          auto host = ctx.cluster.Host(*owner);
          std::string where = host.ok() && !host->url.empty() ? " (" + host->url + ")" : "";
          return ErrorResponse(Status::Conflict("vm '" + *vm + "' runs on host '" + *owner +
                                                "': open its console from that host's web console" + where));
        }
        return ErrorResponse(console.status());
      }
      if (!console->running) return ErrorResponse(Status::Conflict("vm '" + *vm + "' is not running: start it first"));
    }
    std::string ticket = ctx.tickets.Issue(*kind, *vm);
    return HttpResponse{200, {{"ticket", ticket}, {"expires_in", kTicketLifetime.count()}}};
  });

  r.Add("POST", "/api/v1/vms/{name}/sendkey", [&](const HttpRequest& req) {
    auto body = BodyWithFields(req, {"text", "keys"});
    if (!body.ok()) return ErrorResponse(body.status());
    bool has_text = body->contains("text"), has_keys = body->contains("keys");
    if (has_text == has_keys) {
      return ErrorResponse(Status::Invalid(
          "send either \"text\" (typed as keystrokes) or \"keys\" (one chord, e.g. \"ctrl-alt-delete\")"));
    }
    Result<std::vector<KeyChord>> chords = std::vector<KeyChord>{};
    if (has_text) {
      auto text = RequiredString(*body, "text");
      if (!text.ok()) return ErrorResponse(text.status());
      chords = TextToKeyChords(*text);
    } else {
      auto keys = RequiredString(*body, "keys");
      if (!keys.ok()) return ErrorResponse(keys.status());
      auto chord = ParseKeyChord(*keys);
      if (!chord.ok()) return ErrorResponse(chord.status());
      chords = std::vector<KeyChord>{*chord};
    }
    if (!chords.ok()) return ErrorResponse(chords.status());
    const std::string& name = req.params.at("name");
    return Reply(ctx.vms.SendKeys(name, *chords), {{"vm", name}, {"sent", chords->size()}});
  });
}

}  // namespace pampa
