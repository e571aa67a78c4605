#include "api/tickets.h"

#include <random>

namespace pampa {

std::string WebSocketTickets::Issue(TicketKind kind, const std::string& vm) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;  // /dev/urandom
  std::string ticket;
  for (int i = 0; i < 48; ++i) ticket.push_back(kHex[rd() & 15]);
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(&mu_);
  DropExpired(now);
  grants_[ticket] = Grant{kind, vm, now + kTicketLifetime};
  return ticket;
}

bool WebSocketTickets::Redeem(const std::string& ticket, TicketKind kind, const std::string& vm) {
  auto now = std::chrono::steady_clock::now();
  MutexLock lock(&mu_);
  auto it = grants_.find(ticket);
  if (it == grants_.end()) return false;
  Grant grant = it->second;
  grants_.erase(it);
  return grant.kind == kind && grant.vm == vm && now < grant.expires;
}

void WebSocketTickets::DropExpired(std::chrono::steady_clock::time_point now) {
  for (auto it = grants_.begin(); it != grants_.end();) {
    it = it->second.expires <= now ? grants_.erase(it) : std::next(it);
  }
}

}  // namespace pampa
