// Plain TCP sockets for streams pampad hands to another process (a migration's
// stream goes to QEMU): every descriptor is close-on-exec, every wait has a
// timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/fs.h"
#include "base/status.h"

namespace pampa {

// Listens on host (a name or an address) at port, or at a free port when
// port is 0; *bound is the port it listens on.
Result<Fd> ListenTcp(const std::string& host, uint16_t port, uint16_t* bound);
// The next connection to listener, waiting at most timeout.
Result<Fd> AcceptTcp(int listener, std::chrono::milliseconds timeout);
// Connects to host:port (each address it resolves to in turn) within timeout.
Result<Fd> ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);
// The round trip the kernel measured on a connected socket (its handshake at
// least); zero when it has none.
std::chrono::microseconds TcpRoundTrip(int fd);

}  // namespace pampa
