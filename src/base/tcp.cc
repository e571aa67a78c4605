#include "base/tcp.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace pampa {
namespace {

using AddrInfo = std::unique_ptr<addrinfo, decltype(&freeaddrinfo)>;

Result<AddrInfo> Resolve(const std::string& host, uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res) return Status::Unavailable("cannot resolve host '" + host + "': " + gai_strerror(rc));
  return AddrInfo(res, &freeaddrinfo);
}

}  // namespace

Result<Fd> ListenTcp(const std::string& host, uint16_t port, uint16_t* bound) {
  PAMPA_ASSIGN_OR_RETURN(AddrInfo addrs, Resolve(host, port, true));
  std::string why;
  for (addrinfo* a = addrs.get(); a; a = a->ai_next) {
    Fd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (fd.get() < 0) {
      why = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || listen(fd.get(), 4) != 0) {
      why = std::strerror(errno);
      continue;
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    *bound = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    return fd;
  }
  return Status::Unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " + why);
}

Result<Fd> AcceptTcp(int listener, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (!WaitReady(listener, POLLIN, deadline)) {
      return Status::Unavailable("nobody connected within " + std::to_string(timeout.count()) + " ms");
    }
    Fd fd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.get() >= 0) return fd;
    if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
      return Status::Unavailable(std::string("accept: ") + std::strerror(errno));
    }
  }
}

Result<Fd> ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PAMPA_ASSIGN_OR_RETURN(AddrInfo addrs, Resolve(host, port, false));
  std::string why = "no address";
  for (addrinfo* a = addrs.get(); a; a = a->ai_next) {
    Fd fd(socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (fd.get() < 0) {
      why = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        err = ETIMEDOUT;
        if (WaitReady(fd.get(), POLLOUT, deadline)) {
          socklen_t len = sizeof err;
          getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err != 0) {
      why = std::strerror(err);
      continue;
    }
    // Whoever gets the stream blocks on it: it leaves here in blocking mode.
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return fd;
  }
  return Status::Unavailable("cannot connect to " + host + ":" + std::to_string(port) + ": " + why);
}

std::chrono::microseconds TcpRoundTrip(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::chrono::microseconds(0);
  return std::chrono::microseconds(info.tcpi_rtt);
}

}  // namespace pampa
