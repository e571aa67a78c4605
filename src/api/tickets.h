// Short-lived, single-use tickets for the WebSocket endpoints. A browser
// cannot set an Authorization header on a WebSocket, and the API token must
// never appear in a URL (URLs end up in logs and histories); so the web
// console asks for a ticket over the authenticated REST API and puts that in
// the WebSocket's URL. A ticket opens one endpoint (the events, or one VM's
// serial or VNC console) once, within kTicketLifetime. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "base/mutex.h"
#include "base/thread_annotations.h"

namespace pampa {

enum class TicketKind { kEvents, kSerial, kVnc };

inline constexpr std::chrono::seconds kTicketLifetime{30};

class WebSocketTickets {
 public:
  // A new ticket for `kind` (and `vm` for the consoles).
  std::string Issue(TicketKind kind, const std::string& vm);
  // True once for a ticket that was issued for this kind and VM and has not
  // expired; the ticket is used up either way.
  bool Redeem(const std::string& ticket, TicketKind kind, const std::string& vm);

 private:
  struct Grant {
    TicketKind kind;
    std::string vm;
    std::chrono::steady_clock::time_point expires;
  };
  void DropExpired(std::chrono::steady_clock::time_point now) REQUIRES(mu_);

  Mutex mu_;
  std::map<std::string, Grant> grants_ GUARDED_BY(mu_);
};

}  // namespace pampa
