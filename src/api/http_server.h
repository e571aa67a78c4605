// The HTTP/WebSocket front door of pampad (Boost.Beast, kept in this one
// translation unit). Threads: `io_threads` run the sockets; every REST request
// is handed to a pool of worker threads that runs the router, so a slow
// request (a guest-agent exec) never stalls other connections.
//
// Security: the unix socket is created mode 0600 (root only) and needs no
// token; every TCP request to /api/ needs "Authorization: Bearer TOKEN".
// A WebSocket may instead carry ?ticket=T, a single-use ticket from
// POST /api/v1/tickets (browsers cannot set headers on WebSockets, and the
// token never goes into a URL). Paths outside /api/ are the web console's
// files (GET only, no token).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/router.h"
#include "api/tickets.h"
#include "base/events.h"

namespace pampa {

namespace tls {
class PoolTls;
}

struct HttpServerOptions {
  std::string unix_socket;  // empty: none
  std::string tcp_address;  // empty: none
  uint16_t tcp_port = 0;    // 0: pick a free port
  std::string token;
  std::string metrics_token;  // also opens GET /metrics (for Prometheus), and nothing else
  int io_threads = 2;
  int workers = 8;
  std::string ui_dir;  // the built web console; empty: none
  // The pool's certificates: the TCP listener speaks TLS, and calls between
  // hosts need a client certificate from the pool. null: plain HTTP.
  std::shared_ptr<tls::PoolTls> tls;
  std::string host;  // this host's name in the pool (sent with console streams)
};

// The WebSocket endpoints (GET with an Upgrade header); the REST routes are in the Router.
inline const std::vector<std::string> kWebSocketPaths = {"/api/v1/events", "/api/v1/vms/{name}/console",
                                                         "/api/v1/vms/{name}/vnc"};

// Where a VM's console is: the unix socket of its QEMU here, or the pampad of
// the host of the pool that runs the VM, which streams the console's bytes
// to this host (an HTTP upgrade to kConsoleStream, with the pool's token).
struct ConsoleTarget {
  std::string socket;                       // here
  std::string peer_host, peer_port, token;  // or there
  std::string peer_name;                    // its certificate's name, and for messages
  bool secure = false;                      // over TLS (the peer's address is https)
};
// Finds a VM's console: kind is "serial" or "vnc".
using ConsoleResolver = std::function<Result<ConsoleTarget>(const std::string& vm, const std::string& kind)>;
// The upgrade between hosts that turns a request for a console path into the
// console's raw bytes (no WebSocket framing: the host the browser talks to
// frames them).
inline constexpr const char* kConsoleStream = "pampa-console";

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const Router& router, EventBus& events, ConsoleResolver consoles,
             WebSocketTickets& tickets);
  ~HttpServer();
  // Binds both listeners and starts serving; fails when an address is taken.
  Status Start();
  uint16_t tcp_port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pampa
