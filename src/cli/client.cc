#include "cli/client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <unistd.h>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <boost/asio.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <thread>
#include <type_traits>

#include "cli/https.h"
#include "cli/output.h"
#include "tls/tls_context.h"

namespace pampa::cli {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

// A pampad that serves HTTPS closes a plain connection without an answer: what
// to add to an error on a plain TCP stream that ended so.
template <class Stream>
std::string HttpsHint(beast::error_code ec, const std::string& where) {
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    if (ec == http::error::end_of_stream)
      return " (if the host has a pool certificate, use --url https://" + where + ")";
  }
  return "";
}

// One request and its answer on a connected stream, within the stream's
// deadline. The io_context runs only for this exchange.
template <class Stream>
Result<ApiResponse> Exchange(asio::io_context& ioc, Stream& stream, http::request<http::string_body>& req,
                             std::chrono::seconds timeout, const std::string& where) {
  beast::error_code ec;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  beast::get_lowest_layer(stream).expires_after(timeout);
  http::async_write(stream, req, [&](beast::error_code wec, size_t) {
    ec = wec;
    if (!ec) http::async_read(stream, buf, parser, [&](beast::error_code rec, size_t) { ec = rec; });
  });
  ioc.restart();
  ioc.run();
  if (ec == beast::error::timeout) {
    return Status::Unavailable("pampad at " + where + " did not answer in " + std::to_string(timeout.count()) +
                               " s: is it running? see its log (or raise PAMPA_TIMEOUT)");
  }
  if (ec) {
    return Status::Unavailable("talking to pampad at " + where + " failed: " + ec.message() +
                               HttpsHint<Stream>(ec, where));
  }
  auto res = parser.release();
  ApiResponse out;
  out.status = res.result_int();
  out.raw = res.body();
  if (res[http::field::content_type].starts_with("application/json")) {
    out.body = nlohmann::json::parse(out.raw, nullptr, false);
  }
  return out;
}

ErrorCode CodeFor(int status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalid;
    case 401:
    case 403:
      return ErrorCode::kUnauthorized;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kConflict;
    case 499:
      return ErrorCode::kCancelled;
    case 503:
      return ErrorCode::kUnavailable;
    default:
      return ErrorCode::kInternal;
  }
}

}  // namespace

Status ParseUrl(const std::string& url, Endpoint* ep) {
  std::string rest = url;
  bool tls = false;
  if (rest.rfind("https://", 0) == 0) {
    tls = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return Status::Invalid("only http:// and https:// URLs are supported (got '" + url + "')");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty()) return Status::Invalid("--url needs a host, e.g. https://10.0.0.1:8006");
  std::string host = rest, port = "8006";
  if (rest.front() == '[') {  // [IPv6]:port
    auto close = rest.find(']');
    if (close == std::string::npos) return Status::Invalid("--url '" + url + "': the IPv6 address lacks its ']'");
    host = rest.substr(1, close - 1);
    std::string after = rest.substr(close + 1);
    if (!after.empty() && after[0] != ':') return Status::Invalid("--url '" + url + "': ':PORT' must follow ']'");
    if (!after.empty()) port = after.substr(1);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return Status::Invalid("--url '" + url + "' names no host, e.g. https://10.0.0.1:8006");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
    return Status::Invalid("--url '" + url + "' has no valid port after the host, e.g. https://10.0.0.1:8006");
  }
  ep->host = host;
  ep->port = port;
  ep->tls = tls;
  return Status::Ok();
}

Result<std::shared_ptr<ssl::context>> TlsContext(const Endpoint& ep) {
  if (!ep.no_verify && ep.ca_pem.empty() && !ep.ca_file.empty() && access(ep.ca_file.c_str(), R_OK) != 0) {
    return Status::Invalid("cannot read the CA file " + ep.ca_file +
                           " given with --ca (or PAMPA_CA): " + std::strerror(errno));
  }
  if (ep.no_verify || ep.ca_pem.empty()) {
    PAMPA_ASSIGN_OR_RETURN(auto c, tls::ClientContext(ep.no_verify ? "" : ep.ca_file));
    if (ep.no_verify) c->set_verify_mode(ssl::verify_none);
    return c;
  }
  // ClientContext's settings, with a store that holds only the given CA in
  // place of the system's.
  PAMPA_ASSIGN_OR_RETURN(auto c, tls::ClientContext(""));
  SSL_CTX_set_cert_store(c->native_handle(), X509_STORE_new());
  beast::error_code ec;
  c->add_certificate_authority(asio::buffer(ep.ca_pem), ec);
  if (ec) return Status::Invalid("the pool's CA certificate does not load: " + ec.message());
  return c;
}

Status ConnectTcp(asio::io_context& ioc, beast::tcp_stream& stream, const Endpoint& ep) {
  beast::error_code ec;
  asio::ip::tcp::resolver resolver(ioc);
  auto results = resolver.resolve(ep.host, ep.port, ec);
  if (ec) return Status::Unavailable("cannot resolve " + ep.host + ": " + ec.message());
  stream.expires_after(kConnectTimeout);
  stream.async_connect(results, [&](beast::error_code cec, const auto&) { ec = cec; });
  ioc.restart();
  ioc.run();
  if (ec) {
    std::string why =
        ec == beast::error::timeout ? "no answer in " + std::to_string(kConnectTimeout.count()) + " s" : ec.message();
    return Status::Unavailable("cannot reach pampad at " + ep.where() + ": " + why +
                               " (is pampad running? check --url)");
  }
  return Status::Ok();
}

namespace {

// The certificate errors that mean "signed by a CA we do not trust" (rather
// than expired, or malformed): the usual sign of a missing or wrong --ca.
bool UntrustedIssuer(int x509_error) {
  switch (x509_error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return true;
    default:
      return false;
  }
}

}  // namespace

Status TlsHandshake(asio::io_context& ioc, TlsStream& stream, const Endpoint& ep) {
  const std::string where = ep.where();
  beast::error_code ec;
  asio::ip::make_address(ep.host, ec);
  // SNI carries host names only (RFC 6066); an IP is checked against the certificate's IP SANs.
  if (ec && SSL_set_tlsext_host_name(stream.native_handle(), ep.host.c_str()) != 1) {
    return Status::Invalid("'" + ep.host + "' cannot be sent as a TLS server name");
  }
  // Which check failed, to say what to do about it; OpenSSL's own error only
  // says "certificate verify failed".
  struct Verdict {
    int chain_error = X509_V_OK;
    bool wrong_name = false;
  };
  auto verdict = std::make_shared<Verdict>();
  if (!ep.no_verify) {
    stream.set_verify_callback(
        [verdict, names = ssl::host_name_verification(ep.host)](bool preverified, ssl::verify_context& vc) {
          if (!preverified) {
            if (verdict->chain_error == X509_V_OK) verdict->chain_error = X509_STORE_CTX_get_error(vc.native_handle());
            return false;
          }
          if (!names(preverified, vc)) {
            verdict->wrong_name = true;
            return false;
          }
          return true;
        });
  }
  ec = {};
  beast::get_lowest_layer(stream).expires_after(kConnectTimeout);
  stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
  if (!ec) return Status::Ok();
  const std::string at = "pampad at " + where;
  if (ec == beast::error::timeout) {
    return Status::Unavailable(at + " did not finish the TLS handshake in " + std::to_string(kConnectTimeout.count()) +
                               " s (is pampad at that address?)");
  }
  if (verdict->wrong_name) {
    return Status::Unavailable(at + " presented a certificate that is not issued to '" + ep.host +
                               "': give --url the name or the address the host joined the pool with (see: pampa "
                               "host list)");
  }
  if (verdict->chain_error != X509_V_OK) {
    std::string why = X509_verify_cert_error_string(verdict->chain_error);
    if (!UntrustedIssuer(verdict->chain_error)) {
      return Status::Unavailable(at + " presented a certificate that does not verify: " + why);
    }
    if (!ep.ca_pem.empty()) {
      return Status::Unavailable(at + " presented a certificate not signed by the pool CA it sent a moment before (" +
                                 why + "): something between this host and it may pose as the pool; try again");
    }
    std::string trusted = !ep.ca_file.empty() ? "the pool CA in " + ep.ca_file
                                              : std::string("a CA this system trusts (no --ca given, and ") +
                                                    kDefaultCaFile + " is not readable)";
    return Status::Unavailable(at + " presented a certificate not signed by " + trusted + " (" + why +
                               "): pass --ca DATA_DIR/tls/ca.pem of a pool host");
  }
  if (ec.category() == asio::error::get_ssl_category() &&
      (ERR_GET_REASON(ec.value()) == SSL_R_WRONG_VERSION_NUMBER ||
       ERR_GET_REASON(ec.value()) == SSL_R_PACKET_LENGTH_TOO_LONG)) {
    return Status::Unavailable(
        at + " does not speak TLS: a host without a pool certificate serves http:// (use --url http://" + where + ")");
  }
  return Status::Unavailable("the TLS handshake with " + at + " failed: " + ec.message());
}

namespace {

http::request<http::string_body> MakeRequest(const Endpoint& ep, const std::string& method, const std::string& path,
                                             const std::string& body) {
  http::request<http::string_body> req{http::string_to_verb(method), path, 11};
  req.set(http::field::host, ep.tcp() ? ep.host : "localhost");
  req.set(http::field::user_agent, "pampa-cli");
  if (!ep.token.empty()) req.set(http::field::authorization, "Bearer " + ep.token);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  return req;
}

// Connects to pampad (TCP, TLS over TCP, or the unix socket) and runs exchange(stream, where)
// on the connection; a failed connection is an error that says what to check.
template <class Exchange>
auto Connected(const Endpoint& ep, asio::io_context& ioc, Exchange exchange)
    -> decltype(exchange(std::declval<beast::tcp_stream&>(), std::string())) {
  if (ep.tcp()) {
    if (ep.tls) {
      PAMPA_ASSIGN_OR_RETURN(auto ctx, TlsContext(ep));
      TlsStream stream(ioc, *ctx);
      PAMPA_RETURN_IF_ERROR(ConnectTcp(ioc, beast::get_lowest_layer(stream), ep));
      PAMPA_RETURN_IF_ERROR(TlsHandshake(ioc, stream, ep));
      return exchange(stream, ep.where());
    }
    beast::tcp_stream stream(ioc);
    PAMPA_RETURN_IF_ERROR(ConnectTcp(ioc, stream, ep));
    return exchange(stream, ep.where());
  }
  beast::error_code ec;
  beast::basic_stream<asio::local::stream_protocol> stream(ioc);
  stream.expires_after(kConnectTimeout);
  stream.async_connect(asio::local::stream_protocol::endpoint(ep.unix_socket),
                       [&](beast::error_code cec) { ec = cec; });
  ioc.run();
  if (ec) {
    std::string hint = ec == asio::error::access_denied
                           ? " (the API socket is root only: run as root, or use --url and --token)"
                           : " (is pampad running? start it with: make run)";
    return Status::Unavailable("cannot connect to pampad at " + ep.unix_socket + ": " + ec.message() + hint);
  }
  return exchange(stream, ep.unix_socket);
}

// Runs one asynchronous step on ioc to its end; the stream's deadline bounds it.
template <class Start>
beast::error_code Step(asio::io_context& ioc, Start start) {
  beast::error_code ec;
  start([&ec](beast::error_code e, size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  return ec;
}

// A request whose answer body is streamed to sink piece by piece; each piece
// must arrive within timeout of the last.
template <class Stream>
Status StreamExchange(asio::io_context& ioc, Stream& stream, http::request<http::string_body>& req,
                      std::chrono::seconds timeout, const std::string& where,
                      const std::function<Status(std::string_view)>& sink,
                      std::map<std::string, std::string>* headers) {
  auto broken = [&](beast::error_code ec) {
    if (ec == beast::error::timeout) {
      return Status::Unavailable("pampad at " + where + " sent nothing for " + std::to_string(timeout.count()) +
                                 " s (raise PAMPA_TIMEOUT)");
    }
    return Status::Unavailable("the answer from pampad at " + where + " broke off: " + ec.message() +
                               HttpsHint<Stream>(ec, where));
  };
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (auto ec = Step(ioc, [&](auto done) { http::async_write(stream, req, done); })) return broken(ec);
  beast::get_lowest_layer(stream).expires_after(timeout);
  if (auto ec = Step(ioc, [&](auto done) { http::async_read_header(stream, buf, parser, done); })) return broken(ec);
  int status = parser.get().result_int();
  if (headers != nullptr) {
    for (auto& field : parser.get()) (*headers)[std::string(field.name_string())] = std::string(field.value());
  }
  std::string error_body;
  std::vector<char> piece(1 << 16);
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    beast::get_lowest_layer(stream).expires_after(timeout);
    auto ec = Step(ioc, [&](auto done) { http::async_read(stream, buf, parser, done); });
    if (ec && ec != http::error::need_buffer) return broken(ec);
    size_t n = piece.size() - parser.get().body().size;
    if (status >= 400) {
      error_body.append(piece.data(), n);
    } else if (n > 0) {
      PAMPA_RETURN_IF_ERROR(sink(std::string_view(piece.data(), n)));
    }
  }
  if (status >= 400) {
    auto j = nlohmann::json::parse(error_body, nullptr, false);
    return Status(CodeFor(status), j.is_object() ? j.value("error", error_body) : error_body);
  }
  auto trailer = parser.get()["Pampa-Error"];
  if (!trailer.empty()) return Status::Unavailable(std::string(trailer));
  return Status::Ok();
}

}  // namespace

Result<ApiResponse> ApiClient::Send(const std::string& method, const std::string& path, const std::string& body) {
  auto req = MakeRequest(ep_, method, path, body);
  asio::io_context ioc;
  auto timeout = timeout_.count() > 0 ? timeout_ : RequestTimeout();
  return Connected(ep_, ioc,
                   [&](auto& stream, const std::string& where) { return Exchange(ioc, stream, req, timeout, where); });
}

Status ApiClient::Download(const std::string& method, const std::string& path, const nlohmann::json& body,
                           const std::function<Status(std::string_view)>& sink,
                           std::map<std::string, std::string>* headers) {
  auto req = MakeRequest(ep_, method, path, body.is_null() ? "" : body.dump());
  asio::io_context ioc;
  auto timeout = timeout_.count() > 0 ? timeout_ : RequestTimeout();
  return Connected(ep_, ioc, [&](auto& stream, const std::string& where) {
    return StreamExchange(ioc, stream, req, timeout, where, sink, headers);
  });
}

std::chrono::seconds RequestTimeout() {
  const char* s = std::getenv("PAMPA_TIMEOUT");
  if (s == nullptr || *s == '\0') return kDefaultRequestTimeout;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v <= 0 || v > 86400) return kDefaultRequestTimeout;
  return std::chrono::seconds(v);
}

Result<nlohmann::json> ApiClient::Call(const std::string& method, const std::string& path, const nlohmann::json& body) {
  PAMPA_ASSIGN_OR_RETURN(auto res, Send(method, path, body.is_null() ? "" : body.dump()));
  if (res.status >= 400) {
    std::string msg = res.body.is_object() ? res.body.value("error", res.raw) : res.raw;
    return Status(CodeFor(res.status), msg);
  }
  if (res.body.is_discarded()) return Status::Internal("pampad sent a malformed answer");
  return res.body;
}

Result<std::string> ApiClient::GetText(const std::string& path) {
  PAMPA_ASSIGN_OR_RETURN(auto res, Send("GET", path, ""));
  if (res.status >= 400) {
    return Status(CodeFor(res.status), res.body.is_object() ? res.body.value("error", res.raw) : res.raw);
  }
  return res.raw;
}

namespace {

void ShowProgress(ProgressBar& bar, const nlohmann::json& t) {
  std::string message = t.value("message", "");
  bar.Update(t.value("progress", 0.0),
             t.value("type", "") + " " + t.value("target", "") + (message.empty() ? "" : ": " + message));
}

// Runs ioc until the operation that sets *done has completed (the
// websocket's own timers may still be pending then).
void RunUntil(asio::io_context& ioc, const bool& done) {
  ioc.restart();
  while (!done && ioc.run_one() > 0) {
  }
}

// How long the event stream may stay silent: the client pings pampad after
// half of it, so only a pampad that stopped answering (hung, or its host
// gone) ends the stream, and WaitTask falls back to polling with timeouts.
constexpr std::chrono::seconds kEventsIdleTimeout{20};

// Reads pampad's event stream until task `id` leaves "running" (true), showing
// its progress; false when the stream breaks or times out. `subscribed` runs
// once the stream is open, to catch a task that ended before. ws is connected.
template <class NextLayer>
bool FollowEvents(asio::io_context& ioc, websocket::stream<NextLayer>& ws, const std::string& host,
                  const std::string& token, const std::string& id, ProgressBar& bar,
                  const std::function<bool()>& subscribed) {
  beast::get_lowest_layer(ws).expires_never();  // the websocket's own timeouts from here on
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = kConnectTimeout;
  timeouts.idle_timeout = kEventsIdleTimeout;
  timeouts.keep_alive_pings = true;
  ws.set_option(timeouts);
  ws.set_option(websocket::stream_base::decorator([&token](websocket::request_type& req) {
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  }));
  beast::error_code ec;
  bool done = false;
  ws.async_handshake(host, "/api/v1/events", [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  RunUntil(ioc, done);
  if (ec || !done) return false;
  if (subscribed()) return true;
  beast::flat_buffer buf;
  while (true) {
    done = false;
    ws.async_read(buf, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    RunUntil(ioc, done);
    if (ec || !done) return false;
    auto ev = nlohmann::json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
    buf.consume(buf.size());
    if (!ev.is_object() || ev.value("type", "") != "task" || !ev["task"].is_object()) continue;
    const auto& t = ev["task"];
    if (t.value("id", "") != id) continue;
    if (t.value("state", "") != "running") return true;
    ShowProgress(bar, t);
  }
}

// Connects the websocket's lowest layer within kConnectTimeout.
template <class NextLayer, class Endpoints>
bool ConnectWithin(asio::io_context& ioc, websocket::stream<NextLayer>& ws, const Endpoints& endpoints) {
  beast::error_code ec;
  bool done = false;
  auto& lowest = beast::get_lowest_layer(ws);
  lowest.expires_after(kConnectTimeout);
  lowest.async_connect(endpoints, [&](beast::error_code e, auto&&...) {
    ec = e;
    done = true;
  });
  RunUntil(ioc, done);
  return done && !ec;
}

}  // namespace

Result<nlohmann::json> ApiClient::WaitTask(const std::string& id, bool quiet) {
  ProgressBar bar(quiet);
  auto finished = [&](const nlohmann::json& t) -> Result<nlohmann::json> {
    bar.Finish();
    std::string state = t.value("state", "");
    if (state == "succeeded") return t;
    return Status::Invalid("task " + id + " " + state + ": " + t.value("error", ""));
  };
  // A task just started on another host of a pool may be missing from the
  // store this host reads for a moment (its first record was retried there,
  // or its host is slow): asked again for up to 3 s before it counts as gone.
  auto get = [&] {
    auto t = Call("GET", "/api/v1/tasks/" + id);
    for (int i = 0; i < 30 && !t.ok() && t.status().code() == ErrorCode::kNotFound; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      t = Call("GET", "/api/v1/tasks/" + id);
    }
    return t;
  };
  // Follow the event stream: the end of the task is seen at once, with no polling delay.
  Result<nlohmann::json> last = Status::Internal("no answer");
  auto subscribed = [&] {
    last = get();
    return !last.ok() || last->value("state", "") != "running";
  };
  asio::io_context ioc;
  beast::error_code ec;
  bool ended = false;
  if (ep_.tcp() && ep_.tls) {
    // A context or handshake that fails here fails the polling below with its message.
    if (auto ctx = TlsContext(ep_); ctx.ok()) {
      asio::ip::tcp::resolver resolver(ioc);
      websocket::stream<TlsStream> ws(ioc, **ctx);
      auto results = resolver.resolve(ep_.host, ep_.port, ec);
      if (!ec && ConnectWithin(ioc, ws, results) && TlsHandshake(ioc, ws.next_layer(), ep_).ok()) {
        ended = FollowEvents(ioc, ws, ep_.host, ep_.token, id, bar, subscribed);
      }
    }
  } else if (ep_.tcp()) {
    asio::ip::tcp::resolver resolver(ioc);
    websocket::stream<beast::tcp_stream> ws(ioc);
    auto results = resolver.resolve(ep_.host, ep_.port, ec);
    if (!ec && ConnectWithin(ioc, ws, results)) ended = FollowEvents(ioc, ws, ep_.host, ep_.token, id, bar, subscribed);
  } else {
    websocket::stream<beast::basic_stream<asio::local::stream_protocol>> ws(ioc);
    if (ConnectWithin(ioc, ws, asio::local::stream_protocol::endpoint(ep_.unix_socket))) {
      ended = FollowEvents(ioc, ws, "localhost", ep_.token, id, bar, subscribed);
    }
  }
  if (ended) {
    if (last.ok() && last->value("state", "") == "running") last = get();
    if (!last.ok()) return last.status();
    return finished(*last);
  }
  // No event stream (or it broke): poll.
  auto delay = std::chrono::milliseconds(10);
  while (true) {
    PAMPA_ASSIGN_OR_RETURN(auto t, get());
    if (t.value("state", "") != "running") return finished(t);
    ShowProgress(bar, t);
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(200));
  }
}

}  // namespace pampa::cli
