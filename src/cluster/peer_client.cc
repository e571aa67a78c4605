#include "cluster/peer_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

#include "tls/tls_context.h"

namespace pampa {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

}  // namespace

Status ParsePeerUrl(const std::string& url, std::string* host, std::string* port, bool* tls) {
  auto bad = [&] {
    return Status::Invalid("host address '" + url +
                           "' must look like https://HOST:PORT or http://HOST:PORT (e.g. https://10.0.0.5:8006)");
  };
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return bad();
  }
  if (tls != nullptr) *tls = url[4] == 's';
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) return bad();
  *host = rest.substr(0, colon);
  *port = rest.substr(colon + 1);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (port->find_first_not_of("0123456789") != std::string::npos) return bad();
  return Status::Ok();
}

namespace {

// Runs one asynchronous step to its end (the stream's expiry bounds it).
template <class Start>
beast::error_code Await(asio::io_context& ioc, Start start) {
  beast::error_code ec;
  start([&ec](beast::error_code e, auto&&...) { ec = e; });
  ioc.restart();
  ioc.run();
  return ec;
}

// The peer closed the connection before answering anything: on a kept
// connection, it had closed it while idle and never read the request.
bool ClosedUnanswered(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}

// Sends req on a connected stream and reads the answer; *keep: the peer
// keeps the connection open for another request; *closed: the peer closed
// the connection without a byte of answer (see ClosedUnanswered).
template <class Stream, class Body>
Result<PeerReply> Talk(asio::io_context& ioc, Stream& stream, http::request<Body>& hreq, const std::string& url,
                       bool* keep, bool* closed) {
  auto fail = [&](const std::string& what, const beast::error_code& ec) {
    return Status::Unavailable("host at " + url + " " + what + ": " + ec.message());
  };
  if (auto ec = Await(ioc, [&](auto done) { http::async_write(stream, hreq, done); })) {
    *closed = ClosedUnanswered(ec);
    return fail("did not take the request", ec);
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  if (auto ec = Await(ioc, [&](auto done) { http::async_read(stream, buffer, parser, done); })) {
    *closed = ClosedUnanswered(ec) && !parser.got_some() && buffer.size() == 0;
    return fail("did not answer in time", ec);
  }
  auto res = parser.release();
  *keep = res.keep_alive() && buffer.size() == 0;
  PeerReply reply;
  reply.status = static_cast<int>(res.result_int());
  reply.body = std::move(res.body());
  reply.content_type = std::string(res[http::field::content_type]);
  return reply;
}

// A connection to another host, kept open between calls (a migration's
// handover makes two calls to the target within milliseconds; each would
// otherwise connect and shake hands again), with the io_context it runs on.
struct Connection {
  std::unique_ptr<asio::io_context> ioc = std::make_unique<asio::io_context>();
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

// Idle connections by the peer's name and address.
class KeptConnections {
 public:
  static constexpr size_t kMaxPerPeer = 4;
  // One the peer has not closed meanwhile (it would be readable: the end of
  // the stream), or null.
  std::unique_ptr<Connection> Take(const std::string& key) {
    while (true) {
      std::unique_ptr<Connection> c;
      {
        std::lock_guard lock(mu_);
        auto it = idle_.find(key);
        if (it == idle_.end()) return nullptr;
        c = std::move(it->second);
        idle_.erase(it);
      }
      pollfd p{c->lowest().socket().native_handle(), POLLIN, 0};
      if (poll(&p, 1, 0) == 0) return c;
    }
  }
  void Put(const std::string& key, std::unique_ptr<Connection> c) {
    std::lock_guard lock(mu_);
    if (idle_.count(key) < kMaxPerPeer) idle_.emplace(key, std::move(c));
  }

 private:
  std::mutex mu_;
  std::multimap<std::string, std::unique_ptr<Connection>> idle_;
};

KeptConnections& Kept() {
  static auto* kept = new KeptConnections();  // never destroyed: no order problem at exit
  return *kept;
}

// A new connection to the peer: TCP, then TLS when its address is https.
Result<std::unique_ptr<Connection>> Connect(const PeerAddress& to, const std::string& host, const std::string& port,
                                            bool secure, std::chrono::milliseconds timeout) {
  const std::string& url = to.url;
  auto fail = [&](const std::string& what, const beast::error_code& ec) {
    return Status::Unavailable("host at " + url + " " + what + ": " + ec.message());
  };
  auto c = std::make_unique<Connection>();
  asio::io_context& ioc = *c->ioc;
  beast::error_code ec;
  asio::ip::tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(host, port, ec);
  if (ec) return fail("cannot be resolved", ec);
  beast::tcp_stream& stream = c->plain.emplace(ioc);
  stream.expires_after(timeout);
  for (const auto& entry : endpoints) {
    // Made here, close-on-exec from the start, so no child can inherit it.
    stream.socket().close(ec);
    const auto protocol = entry.endpoint().protocol();
    int fd = socket(protocol.family(), SOCK_STREAM | SOCK_CLOEXEC, protocol.protocol());
    if (fd < 0) {
      ec = beast::error_code(errno, boost::system::system_category());
      break;
    }
    stream.socket().assign(protocol, fd, ec);
    if (ec) break;
    ec = Await(ioc, [&](auto done) { stream.async_connect(entry.endpoint(), done); });
    if (!ec) break;
  }
  if (ec) return fail("does not answer", ec);
  // A request must not wait behind the TLS handshake for a delayed ACK
  // (measured: 44 ms a call without this).
  stream.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if (!secure) return c;
  auto& tls = c->tls.emplace(std::move(stream), to.tls->client());
  c->plain.reset();
  PAMPA_RETURN_IF_ERROR(to.tls->PrepareClient(tls.native_handle(), to.name));
  if (auto e = Await(ioc, [&](auto done) { tls.async_handshake(asio::ssl::stream_base::client, done); })) {
    return fail("is not host " + to.name + " of this pool (TLS)", e);
  }
  return c;
}

// Sends req (any body) with the token to the peer and reads the answer, all
// within timeout; on a kept connection when there is one.
template <class Body>
Result<PeerReply> Exchange(const PeerAddress& to, const std::string& token, http::request<Body>& hreq,
                           const std::string& forwarded_from, std::chrono::milliseconds timeout) {
  const std::string& url = to.url;
  std::string host, port;
  bool secure = false;
  PAMPA_RETURN_IF_ERROR(ParsePeerUrl(url, &host, &port, &secure));
  if (secure && to.tls == nullptr) {
    return Status::Unavailable("host " + to.name + " at " + url +
                               " speaks TLS but this host has no pool certificate (DATA_DIR/tls/host.pem)");
  }
  if (!secure && to.tls != nullptr) {
    // The token must not cross the network in the clear.
    return Status::Unavailable("host " + to.name + " is advertised at " + url +
                               ": hosts with the pool's certificates talk https only (restart it with "
                               "--advertise https://...)");
  }
  hreq.set(http::field::host, host);
  if (!token.empty()) hreq.set(http::field::authorization, "Bearer " + token);
  if (!forwarded_from.empty()) hreq.set("Pampa-Forwarded", forwarded_from);
  hreq.prepare_payload();

  const std::string key = to.name + " " + url;  // the name its certificate proved, and where
  std::unique_ptr<Connection> c = Kept().Take(key);
  bool reused = c != nullptr;
  if (!c) {
    PAMPA_ASSIGN_OR_RETURN(c, Connect(to, host, port, secure, timeout));
  }
  c->lowest().expires_after(timeout);  // one budget for the whole call
  bool keep = false, closed = false;
  auto talk = [&] {
    return c->tls ? Talk(*c->ioc, *c->tls, hreq, url, &keep, &closed)
                  : Talk(*c->ioc, *c->plain, hreq, url, &keep, &closed);
  };
  auto reply = talk();
  // A kept connection the peer had closed meanwhile (its idle timeout, a
  // link cut and healed): it never read the request; once more on a new one
  // (a request with a string body: it can be sent again as it is).
  if (std::is_same_v<Body, http::string_body> && !reply.ok() && reused && closed) {
    PAMPA_ASSIGN_OR_RETURN(c, Connect(to, host, port, secure, timeout));
    c->lowest().expires_after(timeout);
    reply = talk();
  }
  if (reply.ok() && keep) {
    c->lowest().expires_never();
    Kept().Put(key, std::move(c));
    return reply;
  }
  if (reply.ok() && c->tls) to.tls->KeepSession(c->tls->native_handle(), to.name);
  beast::error_code ignored;
  c->lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  return reply;
}

}  // namespace

Result<PeerReply> CallPeer(const PeerAddress& to, const std::string& token, const PeerRequest& req,
                           std::chrono::milliseconds timeout) {
  http::verb verb = http::string_to_verb(req.method);
  if (verb == http::verb::unknown) return Status::Invalid("unknown HTTP method " + req.method);
  http::request<http::string_body> hreq{verb, req.target, 11};
  if (!req.body.empty()) {
    hreq.set(http::field::content_type, "application/json");
    hreq.body() = req.body;
  }
  return Exchange(to, token, hreq, req.forwarded_from, timeout);
}

Result<PeerReply> PutFileToPeer(const PeerAddress& to, const std::string& token, const std::string& target,
                                const std::string& file, std::chrono::milliseconds timeout) {
  http::request<http::file_body> hreq{http::verb::put, target, 11};
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("cannot read " + file + ": " + strerror(errno));
  beast::file body;
  body.native_handle(fd);  // owned by body from here
  beast::error_code ec;
  hreq.body().reset(std::move(body), ec);
  if (ec) return Status::Unavailable("cannot read " + file + ": " + ec.message());
  hreq.set(http::field::content_type, "application/octet-stream");
  return Exchange(to, token, hreq, "", timeout);
}

}  // namespace pampa
