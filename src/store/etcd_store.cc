// Store on etcd v3, through etcd's JSON gateway (grpc-gateway: POST /v3/kv/*,
// /v3/watch), over Boost.Beast (kept in this one translation unit).
//
// Keys live under a namespace prefix ("/pampa/" by default), so one etcd may
// hold other data. Revisions are etcd's minus one: a fresh etcd is at revision
// 1, a fresh Store at 0, and every write takes the next, as in the other stores.
//
// Reads: the feed also keeps a mirror of the namespace (listed once at a
// revision, then fed), which answers Get and List locally while the stream is
// live and holds this store's own writes; otherwise they ask etcd.
//
// Watches: one stream per store (the feed) follows every change in etcd from
// the oldest revision the store keeps; it fills a bounded change log and tells
// the store's watches (store_internal.h's StartWatch, the same thread, order
// and shutdown rules as the other stores) how far etcd has come. The feed
// watches the whole keyspace, not only the namespace, so that it learns every
// revision (writes by others take revisions too) and a watch can wait until
// the log has caught up with a revision the store reported.
//
// TLS (a pool with certificates, StoreOptions::tls): every connection is
// HTTPS with this host's client certificate, and etcd's certificate must come
// from the pool CA and name the endpoint's address. Each request is its own
// connection, so the last TLS session per endpoint is resumed (EtcdTls).
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <type_traits>

#include "base/base64.h"
#include "base/log.h"
#include "base/mutex.h"
#include "store/store_internal.h"

namespace pampa {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using namespace std::chrono_literals;

// etcd's bytes fields, decoded; etcd's gateway always sends valid base64.
std::string Bytes(const json& j, const char* key) {
  if (!j.is_object()) return std::string();
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::string();
  auto bytes = FromBase64(it->get_ref<const std::string&>());
  return bytes.ok() ? *bytes : std::string();
}

// The first key after every key that starts with prefix (etcd's range_end).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// j[key] when j is an object that has it; else a null that reads as nothing.
const json& Member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// etcd's int64s are JSON strings; absent means 0.
int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::strtoll(it->get_ref<const std::string&>().c_str(), nullptr, 10);
  return it->is_number() ? it->get<int64_t>() : 0;
}

struct Endpoint {
  std::string host, port;
};

// A TCP connection to ep within timeout.
beast::error_code ConnectTcp(asio::io_context& ioc, const Endpoint& ep, std::chrono::milliseconds timeout,
                             beast::tcp_stream& stream) {
  beast::error_code ec;
  asio::ip::tcp::resolver resolver(ioc);
  auto results = resolver.resolve(ep.host, ep.port, ec);
  if (ec) return ec;
  stream.expires_after(timeout);
  stream.async_connect(results, [&](beast::error_code e, const auto&) { ec = e; });
  ioc.restart();
  ioc.run();
  return ec;
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

std::string At(const Endpoint& ep) { return "etcd at " + ep.host + ":" + ep.port; }

bool IsTlsError(const beast::error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() || ec == asio::ssl::error::stream_truncated;
}

// What a TLS failure talking to ep means, for the user. handshake: it came
// before anything was sent (TLS 1.3 servers check the client's certificate
// after the client's handshake is done, so a refusal may come on the first read).
Status TlsFailure(const beast::error_code& ec, const Endpoint& ep, SSL* ssl, bool handshake) {
  int reason = ec.category() == asio::error::get_ssl_category() ? ERR_GET_REASON(ec.value()) : 0;
  bool nothing_heard = BIO_number_read(SSL_get_rbio(ssl)) == 0;
  // A plain HTTP server answers the client hello with a 400 and closes with
  // the hello's rest unread: a reset, when it comes before the answer is read.
  if (handshake &&
      (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
       ec == asio::error::connection_reset ||
       ((reason == SSL_R_UNEXPECTED_EOF_WHILE_READING || ec == asio::ssl::error::stream_truncated) && nothing_heard))) {
    return Status::Unavailable(At(ep) +
                               " does not speak TLS (start it with --cert-file/--key-file/--client-cert-auth "
                               "--trusted-ca-file and https:// client URLs, or open the store without TLS)");
  }
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    long verify = SSL_get_verify_result(ssl);
    return Status::Unauthorized("this host refuses the certificate of " + At(ep) + ": " +
                                X509_verify_cert_error_string(verify) +
                                " (etcd's --cert-file must be issued by the pool CA for this address)");
  }
  if (reason > SSL_AD_REASON_OFFSET) {
    switch (reason - SSL_AD_REASON_OFFSET) {
      case SSL_AD_BAD_CERTIFICATE:
      case SSL_AD_UNSUPPORTED_CERTIFICATE:
      case SSL_AD_CERTIFICATE_REVOKED:
      case SSL_AD_CERTIFICATE_EXPIRED:
      case SSL_AD_CERTIFICATE_UNKNOWN:
      case SSL_AD_UNKNOWN_CA:
      case SSL_AD_ACCESS_DENIED:
      case SSL_AD_CERTIFICATE_REQUIRED:
        return Status::Unauthorized(At(ep) + " refuses this host's client certificate (" + ec.message() +
                                    "): it must be issued by the CA etcd trusts (--trusted-ca-file)");
    }
    return Status::Unavailable(At(ep) + " ended TLS: " + ec.message());
  }
  return Status::Unavailable("TLS with " + At(ep) + ": " + ec.message());
}

// TLS to etcd: one client context per store, and the last session of each
// endpoint, resumed by the next connection (a full handshake signs and checks
// certificates on both ends; a resumed one does not). One call on loopback,
// p50 on two busy cores: plain 0.9 ms, TLS 4.2-5.1 ms, resumed 2.2-2.8 ms.
class EtcdTls {
 public:
  static Result<std::unique_ptr<EtcdTls>> Load(const StoreOptions::Tls& files) {
    if (files.ca.empty() || files.cert.empty() || files.key.empty()) {
      return Status::Invalid("TLS to etcd needs the CA, the certificate and the key files (all three, or none)");
    }
    auto t = std::unique_ptr<EtcdTls>(new EtcdTls());
    SSL_CTX_set_min_proto_version(t->ctx_.native_handle(), TLS1_2_VERSION);
    beast::error_code ec;
    std::string file = files.ca;
    t->ctx_.load_verify_file(files.ca, ec);
    if (!ec) t->ctx_.use_certificate_chain_file(file = files.cert, ec);
    if (!ec) t->ctx_.use_private_key_file(file = files.key, asio::ssl::context::pem, ec);
    if (ec) return Status::Invalid("TLS to etcd: cannot load " + file + ": " + ec.message());
    t->ctx_.set_verify_mode(asio::ssl::verify_peer);
    return t;
  }
  ~EtcdTls() {
    for (auto& [endpoint, session] : sessions_) SSL_SESSION_free(session);
  }

  // A TLS stream over tcp to ep, handshaken within timeout.
  // *timed_out: etcd said nothing within it.
  Result<TlsStream> Handshake(asio::io_context& ioc, beast::tcp_stream tcp, const Endpoint& ep,
                              std::chrono::milliseconds timeout, bool* timed_out) {
    // TLS writes its handshake's last flight and then the request: with
    // Nagle's algorithm the request waits for etcd's delayed ACK (40 ms a call).
    beast::error_code nodelay_ec;  // only a delay lost if it fails
    tcp.socket().set_option(asio::ip::tcp::no_delay(true), nodelay_ec);
    TlsStream stream(std::move(tcp), ctx_);
    SSL* ssl = stream.native_handle();
    // etcd's certificate must name the address dialed (IP SANs, or DNS names).
    beast::error_code ec;
    auto ip = asio::ip::make_address(ep.host, ec);
    bool named = !ec ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip.to_string().c_str()) == 1
                     : SSL_set_tlsext_host_name(ssl, ep.host.c_str()) == 1 && SSL_set1_host(ssl, ep.host.c_str()) == 1;
    if (!named) return Status::Internal("cannot check the certificate of etcd at " + ep.host + ":" + ep.port);
    {
      MutexLock lock(&mu_);
      auto it = sessions_.find(Key(ep));
      if (it != sessions_.end()) SSL_set_session(ssl, it->second);
    }
    ec = {};
    beast::get_lowest_layer(stream).expires_after(timeout);
    stream.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    ioc.restart();
    ioc.run();
    if (ec == beast::error::timeout) {
      *timed_out = true;
      return Status::Unavailable(At(ep) + " did not finish the TLS handshake within " +
                                 std::to_string(timeout.count()) + " ms");
    }
    if (ec) return TlsFailure(ec, ep, ssl, true);
    return stream;
  }

  // After a whole exchange on stream: keeps its session (TLS 1.3 sends the
  // tickets after the handshake) for the next connection to ep.
  void KeepSession(TlsStream& stream, const Endpoint& ep) {
    SSL* ssl = stream.native_handle();
    // The connection ends without close_notify (it would cost a round trip):
    // marked shut down, OpenSSL does not count the session as broken.
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_SESSION* session = SSL_get1_session(ssl);
    if (session == nullptr) return;
    if (!SSL_SESSION_is_resumable(session)) {
      SSL_SESSION_free(session);
      return;
    }
    MutexLock lock(&mu_);
    auto [it, added] = sessions_.emplace(Key(ep), session);
    if (!added) {
      SSL_SESSION_free(it->second);
      it->second = session;
    }
  }

 private:
  EtcdTls() = default;
  static std::string Key(const Endpoint& ep) { return ep.host + ":" + ep.port; }

  asio::ssl::context ctx_{asio::ssl::context::tls_client};
  Mutex mu_;
  std::map<std::string, SSL_SESSION*> sessions_ GUARDED_BY(mu_);  // owned
};

// What the feed reads from blocking: the plain stream's socket, or the TLS stream.
beast::tcp_stream::socket_type& BlockingReader(beast::tcp_stream& stream) { return stream.socket(); }
TlsStream& BlockingReader(TlsStream& stream) { return stream; }

// A connected stream and the endpoint it reached.
template <class Stream>
struct Connection {
  Stream stream;
  const Endpoint* endpoint;
};

// A connected HTTP/1.1 stream (tcp_stream, or TlsStream with tls) to one of
// the endpoints: the first that answers, trying them in turn from first.
// silent is told of each that said nothing within timeout.
template <class Stream>
Result<Connection<Stream>> Connect(asio::io_context& ioc, const std::vector<Endpoint>& endpoints, size_t first,
                                   std::chrono::milliseconds timeout, EtcdTls* tls,
                                   const std::function<void(const Endpoint&)>& silent) {
  std::string errors, tls_errors;
  Status tls_failure;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const Endpoint& ep = endpoints[(first + i) % endpoints.size()];
    beast::tcp_stream stream(ioc);
    beast::error_code ec = ConnectTcp(ioc, ep, timeout, stream);
    if (ec) {
      if (ec == beast::error::timeout) silent(ep);
      errors += (errors.empty() ? "" : "; ") + ep.host + ":" + ep.port + ": " + ec.message();
      continue;
    }
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      return Connection<Stream>{std::move(stream), &ep};
    } else {
      bool timed_out = false;
      auto tls_stream = tls->Handshake(ioc, std::move(stream), ep, timeout, &timed_out);
      if (tls_stream.ok()) return Connection<Stream>{std::move(*tls_stream), &ep};
      if (timed_out) silent(ep);
      tls_errors += (tls_errors.empty() ? "" : "; ") + tls_stream.status().message();
      if (tls_failure.ok() || tls_stream.status().code() == ErrorCode::kUnauthorized) {
        tls_failure = tls_stream.status();
      }
    }
  }
  if (!tls_failure.ok()) {
    // Reached, but TLS failed: that is what the user must fix.
    return Status(tls_failure.code(), tls_errors + (errors.empty() ? "" : "; does not answer: " + errors));
  }
  return Status::Unavailable("etcd does not answer (" + errors + ")");
}

http::request<http::string_body> PostRequest(const std::string& host, const std::string& path, const json& body) {
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::host, host);
  req.set(http::field::content_type, "application/json");
  req.body() = body.dump();
  req.prepare_payload();
  return req;
}

class EtcdStore final : public Store {
 public:
  EtcdStore(std::vector<Endpoint> endpoints, std::string ns, std::chrono::milliseconds timeout,
            const StoreOptions& options, std::unique_ptr<EtcdTls> tls)
      : endpoints_(std::move(endpoints)),
        ns_(std::move(ns)),
        timeout_(timeout),
        history_(std::max<int64_t>(1, options.history_revisions)),
        tls_(std::move(tls)) {}

  ~EtcdStore() override {
    if (signal_) signal_->Close();
    {
      MutexLock lock(&mu_);
      closing_ = true;
      // Ends the feed's blocking read; the feed clears feed_fd_ (under mu_) before its socket closes.
      if (feed_fd_ >= 0) ::shutdown(feed_fd_, SHUT_RDWR);
    }
    log_cv_.notify_all();
    if (feed_.joinable()) feed_.join();
  }

  // Reads the current revision and starts the feed from the oldest one kept;
  // returns once the feed has caught up.
  Status Start() {
    PAMPA_ASSIGN_OR_RETURN(int64_t now, Revision());
    // Watches wait for the log to fill (WatchPrefix catches up first).
    signal_ = std::make_shared<RevisionSignal>(now);
    int64_t from = std::max<int64_t>(1, now - history_ + 1);
    {
      MutexLock lock(&mu_);
      seen_ = from - 1;
      oldest_ = from;
    }
    feed_ = std::thread([this, from] { Feed(from); });
    return CatchUp(now);
  }

  Result<std::optional<std::string>> Get(const std::string& key) override {
    PAMPA_ASSIGN_OR_RETURN(auto v, GetVersioned(key));
    if (!v) return std::optional<std::string>();
    return std::optional<std::string>(v->value);
  }
  Status Put(const std::string& key, const std::string& value) override {
    return Commit(Txn().Put(key, value)).status();
  }
  Status Create(const std::string& key, const std::string& value) override {
    return Commit(Txn().IfAbsent(key).Put(key, value)).status();
  }
  Status Delete(const std::string& key) override { return Commit(Txn().Delete(key)).status(); }
  Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) override {
    PAMPA_ASSIGN_OR_RETURN(auto l, ListVersioned(prefix));
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& [k, v] : l.items) out.emplace_back(k, std::move(v.value));
    return out;
  }
  Result<int64_t> Revision() override {
    PAMPA_ASSIGN_OR_RETURN(auto r, Call("/v3/kv/range", {{"key", ToBase64(ns_)}, {"count_only", true}}));
    return Int(r["header"], "revision") - 1;
  }
  Result<std::optional<Versioned>> GetVersioned(const std::string& key) override {
    {
      MutexLock lock(&mu_);
      if (MirrorCurrent()) {
        auto it = mirror_.find(key);
        return it == mirror_.end() ? std::optional<Versioned>() : std::optional<Versioned>(it->second);
      }
    }
    PAMPA_ASSIGN_OR_RETURN(auto r, Call("/v3/kv/range", {{"key", ToBase64(ns_ + key)}}));
    auto kvs = r.value("kvs", json::array());
    if (kvs.empty()) return std::optional<Versioned>();
    return std::optional<Versioned>(ToVersioned(kvs[0]));
  }
  Result<VersionedList> ListVersioned(const std::string& prefix) override {
    {
      MutexLock lock(&mu_);
      if (MirrorCurrent()) {
        VersionedList out{.revision = mirror_rev_};
        for (auto it = mirror_.lower_bound(prefix); it != mirror_.end() && it->first.starts_with(prefix); ++it) {
          out.items.emplace_back(*it);
        }
        return out;
      }
    }
    return ListFromEtcd(prefix);
  }

  // ListVersioned asking etcd.
  Result<VersionedList> ListFromEtcd(const std::string& prefix) {
    PAMPA_ASSIGN_OR_RETURN(auto r, Call("/v3/kv/range", {{"key", ToBase64(ns_ + prefix)},
                                                         {"range_end", ToBase64(PrefixEnd(ns_ + prefix))}}));
    VersionedList out{.revision = Int(r["header"], "revision") - 1};
    for (auto& kv : r.value("kvs", json::array())) {
      out.items.emplace_back(Bytes(kv, "key").substr(ns_.size()), ToVersioned(kv));
    }
    return out;
  }

  Result<int64_t> Commit(const Txn& txn) override {
    PAMPA_RETURN_IF_ERROR(ValidateTxn(txn));
    json compares = json::array(), success = json::array(), failure = json::array();
    for (const Compare& c : txn.compares) {
      std::string key = ToBase64(ns_ + c.key);
      switch (c.kind) {
        case Compare::Kind::kAbsent:
          compares.push_back({{"key", key}, {"target", "VERSION"}, {"result", "EQUAL"}, {"version", "0"}});
          break;
        case Compare::Kind::kExists:
          compares.push_back({{"key", key}, {"target", "VERSION"}, {"result", "GREATER"}, {"version", "0"}});
          break;
        case Compare::Kind::kModRevision:
          if (c.mod_revision == 0) {
            compares.push_back({{"key", key}, {"target", "VERSION"}, {"result", "EQUAL"}, {"version", "0"}});
          } else {
            compares.push_back({{"key", key},
                                {"target", "MOD"},
                                {"result", "EQUAL"},
                                {"mod_revision", std::to_string(c.mod_revision + 1)}});
          }
          break;
        case Compare::Kind::kValue:
          compares.push_back({{"key", key}, {"target", "VALUE"}, {"result", "EQUAL"}, {"value", ToBase64(c.value)}});
          break;
      }
      // When a compare fails, the keys as they were say which one and why.
      failure.push_back({{"request_range", {{"key", key}}}});
    }
    for (const Op& op : txn.ops) {
      switch (op.kind) {
        case Op::Kind::kPut:
          success.push_back({{"request_put", {{"key", ToBase64(ns_ + op.key)}, {"value", ToBase64(op.value)}}}});
          break;
        case Op::Kind::kDelete:
          success.push_back({{"request_delete_range", {{"key", ToBase64(ns_ + op.key)}}}});
          break;
        case Op::Kind::kDeletePrefix:
          success.push_back({{"request_delete_range",
                              {{"key", ToBase64(ns_ + op.key)}, {"range_end", ToBase64(PrefixEnd(ns_ + op.key))}}}});
          break;
      }
    }
    PAMPA_ASSIGN_OR_RETURN(auto r,
                           Call("/v3/kv/txn", {{"compare", compares}, {"success", success}, {"failure", failure}}));
    if (r.value("succeeded", false) || txn.compares.empty()) {
      // A write returns once this store's watches can see it, as in the other
      // stores (the feed is a loopback round trip behind); a feed that is
      // reconnecting delays a write by kWriteCatchUp at most.
      int64_t revision = Int(r["header"], "revision") - 1;
      {
        MutexLock lock(&mu_);
        wrote_ = std::max(wrote_, revision);  // reads skip the mirror until it holds this
      }
      (void)CatchUp(revision, kWriteCatchUp);
      return revision;
    }
    const json& responses = Member(r, "responses");
    for (size_t i = 0; responses.is_array() && i < txn.compares.size() && i < responses.size(); ++i) {
      const json& range = Member(responses[i], "response_range");
      json kvs = range.is_object() ? range.value("kvs", json::array()) : json::array();
      std::optional<Versioned> current;
      if (!kvs.empty()) current = ToVersioned(kvs[0]);
      PAMPA_RETURN_IF_ERROR(CheckCompare(txn.compares[i], current));
    }
    return Status::Conflict("state store transaction: a compare failed");
  }

  Result<int64_t> GrantLease(std::chrono::seconds ttl) override {
    ttl = std::max(ttl, kMinLeaseTtl);
    PAMPA_ASSIGN_OR_RETURN(auto r, Call("/v3/lease/grant", {{"TTL", std::to_string(ttl.count())}}));
    int64_t id = Int(r, "ID");
    if (id == 0) return Status::Unavailable("etcd granted no lease: " + r.value("error", r.dump()));
    return id;
  }
  Status KeepAlive(int64_t lease) override {
    // One request on etcd's keep-alive stream: the gateway answers it and ends.
    PAMPA_ASSIGN_OR_RETURN(auto r, Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}));
    if (Int(r.value("result", json::object()), "TTL") <= 0) {
      return Status::NotFound("lease " + std::to_string(lease) + " has ended");
    }
    return Status::Ok();
  }
  Status RevokeLease(int64_t lease) override {
    auto r = Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}});
    if (!r.ok() && r.status().message().find("lease not found") != std::string::npos) return Status::Ok();
    return r.status();
  }
  Status PutWithLease(const std::string& key, const std::string& value, int64_t lease) override {
    auto r = Call("/v3/kv/put",
                  {{"key", ToBase64(ns_ + key)}, {"value", ToBase64(value)}, {"lease", std::to_string(lease)}});
    if (!r.ok()) {
      if (r.status().message().find("lease not found") != std::string::npos) {
        return Status::NotFound("lease " + std::to_string(lease) + " has ended");
      }
      return r.status();
    }
    int64_t revision = Int((*r)["header"], "revision") - 1;
    {
      MutexLock lock(&mu_);
      wrote_ = std::max(wrote_, revision);
    }
    (void)CatchUp(revision, kWriteCatchUp);
    return Status::Ok();
  }

  Result<std::unique_ptr<Watch>> WatchPrefix(const std::string& prefix, int64_t from_revision,
                                             std::function<void(const WatchEvent&)> on_event) override {
    PAMPA_RETURN_IF_ERROR(ValidateWatch(from_revision, on_event));
    PAMPA_ASSIGN_OR_RETURN(int64_t now, Revision());
    PAMPA_RETURN_IF_ERROR(CatchUp(now));
    int64_t from = from_revision == 0 ? now + 1 : from_revision;
    {
      MutexLock lock(&mu_);
      if (from < oldest_) return CompactedError(from, oldest_);
    }
    return StartWatch(
        signal_, prefix, from, [this](const std::string& p, int64_t f, int64_t t) { return ReadChanges(p, f, t); },
        std::move(on_event));
  }

  Status Compact(int64_t revision) override {
    auto r = Call("/v3/kv/compaction", {{"revision", std::to_string(revision + 1)}});
    if (!r.ok()) {
      const std::string& m = r.status().message();
      if (m.find("future revision") != std::string::npos) {
        return Status::Invalid("cannot compact to revision " + std::to_string(revision) + ": it is in the future");
      }
      if (m.find("has been compacted") == std::string::npos) return r.status();
    }
    MutexLock lock(&mu_);
    Trim(revision);
    return Status::Ok();
  }

 private:
  Versioned ToVersioned(const json& kv) const {
    return Versioned{Bytes(kv, "value"), Int(kv, "mod_revision") - 1, Int(kv, "create_revision") - 1};
  }

  // One request, within the store's timeout.
  Result<json> Call(const std::string& path, const json& body) {
    return tls_ ? Call<TlsStream>(path, body) : Call<beast::tcp_stream>(path, body);
  }
  // A connection kept alive between calls, with the io_context its stream
  // runs on: a call on it skips the TCP connect and the TLS handshake
  // (measured: a resumed TLS handshake made a call 2.2-2.8 ms instead of 0.9).
  template <class Stream>
  struct Kept {
    std::unique_ptr<asio::io_context> ioc = std::make_unique<asio::io_context>();
    std::optional<Connection<Stream>> conn;
  };
  static constexpr size_t kMaxKept = 8;

  template <class Stream>
  std::vector<Kept<Stream>>& KeptPool() REQUIRES(mu_) {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      return kept_tls_;
    } else {
      return kept_plain_;
    }
  }

  // An idle kept connection etcd has not closed meanwhile (it would be
  // readable: the end of the stream), or none.
  template <class Stream>
  std::optional<Kept<Stream>> TakeKept() {
    while (true) {
      std::optional<Kept<Stream>> k;
      {
        MutexLock lock(&mu_);
        auto& pool = KeptPool<Stream>();
        if (pool.empty()) return std::nullopt;
        k.emplace(std::move(pool.back()));
        pool.pop_back();
      }
      pollfd p{beast::get_lowest_layer(k->conn->stream).socket().native_handle(), POLLIN, 0};
      if (poll(&p, 1, 0) == 0) return k;
    }
  }

  template <class Stream>
  void KeepForNextCall(Kept<Stream> k) {
    MutexLock lock(&mu_);
    auto& pool = KeptPool<Stream>();
    if (pool.size() < kMaxKept && !closing_) pool.push_back(std::move(k));
  }

  // A connection to the endpoints, from the preferred one.
  template <class Stream>
  Result<Connection<Stream>> Connect(asio::io_context& ioc) {
    return pampa::Connect<Stream>(ioc, endpoints_, preferred_, timeout_, tls_.get(),
                                  [this](const Endpoint& ep) { Distrust(&ep); });
  }
  size_t Index(const Endpoint* endpoint) const { return static_cast<size_t>(endpoint - endpoints_.data()); }
  // New connections no longer start at endpoint, if they did, but at the
  // next one: it said nothing within the timeout (an etcd that lost power
  // does not connect; one frozen connects and stays silent). Tried first, it
  // cost each new connection the timeout.
  void Distrust(const Endpoint* endpoint) {
    size_t i = Index(endpoint);
    preferred_.compare_exchange_strong(i, (i + 1) % endpoints_.size());
  }

  // Drops the idle connections kept to endpoint (closed after the lock).
  template <class Stream>
  void ForgetKept(const Endpoint* endpoint) {
    std::vector<Kept<Stream>> all, dropped;
    MutexLock lock(&mu_);
    auto& pool = KeptPool<Stream>();
    all.swap(pool);
    for (auto& k : all) (k.conn->endpoint == endpoint ? dropped : pool).push_back(std::move(k));
    lock.Unlock();
  }

  // One request: on a kept connection if there is one, else on a new one.
  // A kept connection etcd closed while it was idle (the close crossing the
  // request: the write fails, or the read ends before any byte of an answer)
  // costs one more try on a new connection; etcd did not act on a request
  // it never answered on a connection it had closed.
  template <class Stream>
  Result<json> Call(const std::string& path, const json& body) {
    if (std::optional<Kept<Stream>> kept = TakeKept<Stream>()) {
      bool closed = false;
      auto r = Exchange(std::move(*kept), path, body, &closed);
      if (!closed) return r;
    }
    Kept<Stream> made;
    PAMPA_ASSIGN_OR_RETURN(auto conn, Connect<Stream>(*made.ioc));
    made.conn.emplace(std::move(conn));
    return Exchange(std::move(made), path, body, nullptr);
  }

  // The request on k and its answer; k is kept for the next call when etcd
  // keeps it alive. *closed (for a kept connection) says the connection was
  // found closed before anything was answered.
  template <class Stream>
  Result<json> Exchange(Kept<Stream> k, const std::string& path, const json& body, bool* closed) {
    constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
    asio::io_context& ioc = *k.ioc;
    auto& conn = *k.conn;
    Stream& stream = conn.stream;
    auto req = PostRequest(endpoints_.front().host, path, body);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    beast::error_code ec;
    bool wrote = false;
    size_t answered = 0;  // bytes of the answer parsed
    beast::get_lowest_layer(stream).expires_after(timeout_);
    http::async_write(stream, req, [&](beast::error_code e, size_t) {
      ec = e;
      wrote = !e;
      // A TLS peer that failed the write (etcd refusing a client certificate
      // once TLS 1.3's handshake is over) may have said why: read it.
      if (!ec || kTls) {
        http::async_read(stream, buf, res, [&](beast::error_code re, size_t n) {
          answered = n;
          if (!ec || IsTlsError(re)) ec = re;
        });
      }
    });
    ioc.restart();
    ioc.run();
    if (closed && ec && ec != beast::error::timeout && answered == 0 && buf.size() == 0 &&
        (!wrote || ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated)) {
      *closed = true;
      return Status::Unavailable("etcd closed a kept connection");
    }
    if (ec == beast::error::timeout) {
      // That etcd went quiet: no call waits on its idle connections again,
      // nor connects to it first.
      ForgetKept<Stream>(conn.endpoint);
      Distrust(conn.endpoint);
      return Status::Unavailable("etcd did not answer " + path + " within " + std::to_string(timeout_.count()) +
                                 " ms (the write may have happened)");
    }
    if constexpr (kTls) {
      if (IsTlsError(ec)) return TlsFailure(ec, *conn.endpoint, stream.native_handle(), false);
      // A connection that ends keeps its session for the next handshake (a
      // kept one must not: that marks it shut down).
      if (!ec && !res.keep_alive()) tls_->KeepSession(stream, *conn.endpoint);
    } else {
      if (ec == http::error::end_of_stream || ec == asio::error::connection_reset) {
        // What etcd serving https does with a plain request.
        return Status::Unavailable(At(*conn.endpoint) + " closed the connection without an answer to " + path +
                                   " (if it serves https, open the store with TLS: the pool's certificates)");
      }
    }
    if (ec) return Status::Unavailable("etcd " + path + ": " + ec.message());
    const Endpoint* answered_by = conn.endpoint;
    if (res.keep_alive()) KeepForNextCall(std::move(k));
    auto j = json::parse(res.body(), nullptr, false);
    if (!j.is_object())
      return Status::Unavailable("etcd " + path + " answered what is not JSON (HTTP " +
                                 std::to_string(res.result_int()) + ")");
    if (j.contains("error")) return Status::Unavailable("etcd " + path + ": " + j.value("error", ""));
    // An answer, not an error (a member cut off from the others answers "no
    // leader" at once): new connections start there.
    preferred_ = Index(answered_by);
    // Every answer says how far etcd has got (streamed ones, such as a
    // lease's keep-alive, under "result"): reads must not go back before it.
    const json* header = &Member(j, "header");
    if (!header->is_object()) header = &Member(Member(j, "result"), "header");
    if (header->is_object()) ReadAt(Int(*header, "revision") - 1);
    return j;
  }

  static constexpr std::chrono::milliseconds kWriteCatchUp{1000};
  // Longer than a feed goes without news on a busy host (milliseconds),
  // shorter than the store's timeout: a read waiting on a quiet feed outlives
  // its reopening when another member answers at once (ending the stream
  // also moves new connections off the quiet member).
  static constexpr std::chrono::seconds kFeedStall{2};

  // Waits until the feed has applied revision (a write this store reported).
  Status CatchUp(int64_t revision) { return CatchUp(revision, timeout_); }
  // A stream that stays quiet meanwhile is reopened (EndQuietFeed).
  Status CatchUp(int64_t revision, std::chrono::milliseconds wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    MutexLock lock(&mu_);
    auto caught_up = [&]() REQUIRES(mu_) { return seen_ >= revision || closing_; };
    while (!caught_up()) {
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        return Status::Unavailable("etcd's watch stream is " + std::to_string(revision - seen_) +
                                   " revision(s) behind its reads");
      }
      EndQuietFeed(now);
      // While the feed reconnects there is nothing to end: it notifies when its stream opens.
      auto until = lag_ && feed_fd_ >= 0 ? std::min(deadline, lag_->since + kFeedStall) : deadline;
      lock.WaitFor(log_cv_, std::max<std::chrono::nanoseconds>(until - now, 1ms), caught_up);
    }
    return Status::Ok();
  }

  // Whether reads may be answered from the mirror: it is kept by a live
  // stream and holds every write this store made and everything a read
  // answered by etcd itself has shown (reads never go back in time: a mirror
  // listed just before a write another host made must not hide it from a
  // reader that has seen it).
  bool MirrorCurrent() const REQUIRES(mu_) {
    return mirror_rev_ >= 0 && mirror_rev_ >= seen_ && mirror_rev_ >= wrote_ && mirror_rev_ >= read_;
  }
  // Notes a revision etcd answered at: the mirror is not read again until
  // the feed has shown it.
  void ReadAt(int64_t revision) {
    MutexLock lock(&mu_);
    read_ = std::max(read_, revision);
    auto now = std::chrono::steady_clock::now();
    if (!lag_) Behind(now);
    EndQuietFeed(now);
  }
  // The feed is behind a revision etcd answered at from now, or not behind.
  void Behind(std::chrono::steady_clock::time_point now) REQUIRES(mu_) {
    lag_ = read_ > seen_ ? std::optional<Lag>(Lag{read_, now}) : std::nullopt;
  }
  // Ends a feed that has stayed behind a revision etcd answered at, showing
  // nothing new, for kFeedStall: its connection went quiet (an etcd that died without closing
  // it). The feed reopens on an etcd that answers.
  void EndQuietFeed(std::chrono::steady_clock::time_point now) REQUIRES(mu_) {
    if (!lag_ || now - lag_->since < kFeedStall || feed_fd_ < 0) return;
    log::Warn("state store: etcd's watch stream has shown nothing up to revision {} for {} ms; reopening it",
              lag_->revision, std::chrono::duration_cast<std::chrono::milliseconds>(now - lag_->since).count());
    ::shutdown(feed_fd_, SHUT_RDWR);  // the feed's read ends; it reconnects
    Distrust(feed_endpoint_);
    lag_.reset();
  }

  // Forgets changes older than revision.
  void Trim(int64_t revision) REQUIRES(mu_) {
    oldest_ = std::max(oldest_, revision);
    while (!log_.empty() && log_.front().revision < oldest_) log_.pop_front();
  }

  Result<std::vector<WatchEvent>> ReadChanges(const std::string& prefix, int64_t from, int64_t to) {
    MutexLock lock(&mu_);
    if (from < oldest_) return CompactedError(from, oldest_);
    std::vector<WatchEvent> out;
    auto it =
        std::lower_bound(log_.begin(), log_.end(), from, [](const WatchEvent& e, int64_t r) { return e.revision < r; });
    for (; it != log_.end() && it->revision <= to; ++it) {
      if (it->key.starts_with(prefix)) out.push_back(*it);
    }
    return out;
  }

  // Applies one watch response of the feed; false when the stream must be reopened at *next.
  bool Apply(const json& result, int64_t* next) {
    if (result.value("canceled", false)) {
      int64_t compact = Int(result, "compact_revision");
      MutexLock lock(&mu_);
      if (compact > 0) {
        // Changes before it are gone from etcd: so from this log.
        Trim(compact - 1);
        *next = compact;
      }
      return false;
    }
    std::vector<WatchEvent> events;
    std::map<std::string, int64_t> created;  // key -> create revision, for the mirror
    int64_t last = 0;
    for (auto& e : result.value("events", json::array())) {
      const json& kv = e["kv"];
      int64_t rev = Int(kv, "mod_revision");
      last = std::max(last, rev);
      std::string key = Bytes(kv, "key");
      if (!key.starts_with(ns_)) continue;
      WatchEvent w;
      w.type = e.value("type", "PUT") == "DELETE" ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut;
      w.key = key.substr(ns_.size());
      if (w.type == WatchEvent::Type::kPut) w.value = Bytes(kv, "value");
      w.revision = rev - 1;
      created[w.key] = Int(kv, "create_revision") - 1;
      events.push_back(std::move(w));
    }
    if (last == 0) return true;
    std::stable_sort(events.begin(), events.end(), [](const WatchEvent& a, const WatchEvent& b) {
      return a.revision != b.revision ? a.revision < b.revision : a.key < b.key;
    });
    {
      MutexLock lock(&mu_);
      for (auto& w : events) {
        if (mirror_rev_ >= 0 && w.revision > mirror_rev_) {
          if (w.type == WatchEvent::Type::kPut) {
            mirror_[w.key] = Versioned{w.value, w.revision, created[w.key]};
          } else {
            mirror_.erase(w.key);
          }
        }
        if (w.revision > seen_) log_.push_back(std::move(w));
      }
      if (mirror_rev_ >= 0) mirror_rev_ = std::max(mirror_rev_, last - 1);
      seen_ = std::max(seen_, last - 1);
      Behind(std::chrono::steady_clock::now());  // news: a feed still behind is not quiet
      Trim(seen_ - history_ + 1);
    }
    *next = last + 1;
    log_cv_.notify_all();
    signal_->Advance(last - 1);
    return true;
  }

  // Keeps etcd's own history to about what this store keeps: compacts it to
  // the log's oldest revision every tenth of the history (any host of a pool
  // may; compacting to a revision already compacted is a no-op).
  void CompactEtcd() {
    int64_t oldest;
    {
      MutexLock lock(&mu_);
      if (oldest_ - etcd_compacted_ < std::max<int64_t>(1, history_ / 10)) return;
      etcd_compacted_ = oldest = oldest_;
    }
    auto r = Call("/v3/kv/compaction", {{"revision", std::to_string(oldest + 1)}});
    if (!r.ok() && r.status().message().find("has been compacted") == std::string::npos) {
      log::Warn("state store: compacting etcd to revision {}: {}", oldest, r.status().message());
    }
  }

  // The feed: follows etcd from etcd revision `from`, reconnecting after errors.
  void Feed(int64_t from) {
    int64_t next = from + 1;  // etcd numbering
    while (true) {
      {
        MutexLock lock(&mu_);
        if (closing_) return;
      }
      Status st = FollowOnce(&next);
      {
        MutexLock lock(&mu_);
        mirror_rev_ = -1;  // reads ask etcd until the next stream has rebuilt it
        if (closing_) return;
        if (!st.ok()) log::Warn("state store: etcd watch stream: {} (reconnecting)", st.message());
        lock.WaitFor(log_cv_, 200ms);
      }
    }
  }

  Status FollowOnce(int64_t* next) { return tls_ ? FollowOnce<TlsStream>(next) : FollowOnce<beast::tcp_stream>(next); }
  template <class Stream>
  Status FollowOnce(int64_t* next) {
    constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
    // The mirror: the namespace listed at one revision; the stream below
    // starts at or before it, and Apply keeps it from there.
    PAMPA_ASSIGN_OR_RETURN(auto listed, ListFromEtcd(""));
    {
      MutexLock lock(&mu_);
      mirror_.clear();
      for (auto& [key, v] : listed.items) mirror_.emplace(key, std::move(v));
      mirror_rev_ = listed.revision;
    }
    asio::io_context ioc;
    PAMPA_ASSIGN_OR_RETURN(auto conn, Connect<Stream>(ioc));
    Stream& stream = conn.stream;
    json create = {{"create_request",
                    {{"key", ToBase64(std::string(1, '\0'))},
                     {"range_end", ToBase64(std::string(1, '\0'))},
                     {"start_revision", std::to_string(*next)}}}};
    auto req = PostRequest(endpoints_.front().host, "/v3/watch", create);
    beast::error_code ec;
    beast::get_lowest_layer(stream).expires_after(timeout_);
    http::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
    ioc.restart();
    ioc.run();
    auto failed = [&] {
      if constexpr (kTls) {
        if (IsTlsError(ec)) return TlsFailure(ec, *conn.endpoint, stream.native_handle(), false);
      }
      return Status::Unavailable(ec.message());
    };
    if (ec) return failed();
    // From here the socket is read blocking, for as long as the stream lasts;
    // the destructor shuts it down to end the read (TLS: the socket under it).
    beast::get_lowest_layer(stream).expires_never();
    auto& sock = beast::get_lowest_layer(stream).socket();
    auto& in = BlockingReader(stream);
    {
      MutexLock lock(&mu_);
      if (closing_) return Status::Ok();
      feed_fd_ = sock.native_handle();
      feed_endpoint_ = conn.endpoint;
      Behind(std::chrono::steady_clock::now());  // a new stream: a lag is measured from now
    }
    log_cv_.notify_all();  // a CatchUp waiting for the stream to open
    struct Forget {
      EtcdStore* self;
      ~Forget() {
        MutexLock lock(&self->mu_);
        self->feed_fd_ = -1;
      }
    } forget{this};
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(in, buf, parser, ec);
    if (ec) return failed();
    std::string pending;
    std::vector<char> piece(1 << 16);
    while (!parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      http::read_some(in, buf, parser, ec);  // what has come: events are small and must not wait for more
      if (ec && ec != http::error::need_buffer) return failed();
      pending.append(piece.data(), piece.size() - parser.get().body().size);
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        auto msg = json::parse(pending.substr(0, nl), nullptr, false);
        pending.erase(0, nl + 1);
        if (!msg.is_object()) continue;
        if (msg.contains("error")) {
          const json& e = msg["error"];
          return Status::Unavailable("etcd ended the watch: " +
                                     (e.is_object() ? e.value("message", e.dump()) : e.dump()));
        }
        const json& result = Member(msg, "result");
        if (!result.is_object()) continue;  // nothing to apply (a keep-alive of the stream)
        bool applied;
        try {
          applied = Apply(result, next);
        } catch (const json::exception& e) {
          // A response of a shape this store does not know: reopen the
          // stream from *next rather than let it end the process.
          return Status::Unavailable(std::string("etcd sent a watch response this store cannot read: ") + e.what());
        }
        if (!applied) return Status::Unavailable("etcd canceled the watch");
        CompactEtcd();
      }
    }
    return Status::Unavailable("etcd ended the watch stream");
  }

  const std::vector<Endpoint> endpoints_;
  // Where new connections start: the endpoint that answered last (the way
  // etcd's own clients pin one), moved on when it times out.
  std::atomic<size_t> preferred_{0};
  const std::string ns_;
  const std::chrono::milliseconds timeout_;
  const int64_t history_;
  const std::unique_ptr<EtcdTls> tls_;  // null: plain HTTP
  std::shared_ptr<RevisionSignal> signal_;

  Mutex mu_;  // guards the change log; never held across a request
  std::condition_variable log_cv_;
  std::deque<WatchEvent> log_ GUARDED_BY(mu_);  // changes in the namespace, oldest_..seen_, in revision order
  int64_t oldest_ GUARDED_BY(mu_) = 1;          // the first revision whose changes are kept
  int64_t seen_ GUARDED_BY(mu_) = 0;            // every change up to it is in the log
  bool closing_ GUARDED_BY(mu_) = false;
  int64_t etcd_compacted_ GUARDED_BY(mu_) = 0;  // the last revision this store compacted etcd to
  // The namespace as of mirror_rev_ (-1: none, while the feed (re)starts),
  // kept by the feed: reads are answered from it while it is current.
  std::map<std::string, Versioned> mirror_ GUARDED_BY(mu_);
  int64_t mirror_rev_ GUARDED_BY(mu_) = -1;
  int64_t wrote_ GUARDED_BY(mu_) = 0;                        // the last revision this store wrote
  int64_t read_ GUARDED_BY(mu_) = 0;                         // the newest revision etcd answered a read at
  int feed_fd_ GUARDED_BY(mu_) = -1;                         // the feed's socket while it reads
  const Endpoint* feed_endpoint_ GUARDED_BY(mu_) = nullptr;  // and where it leads
  // Since when the feed, behind a revision etcd answered at, has shown nothing new.
  struct Lag {
    int64_t revision;
    std::chrono::steady_clock::time_point since;
  };
  std::optional<Lag> lag_ GUARDED_BY(mu_);
  std::vector<Kept<beast::tcp_stream>> kept_plain_ GUARDED_BY(mu_);  // idle connections, for the next calls
  std::vector<Kept<TlsStream>> kept_tls_ GUARDED_BY(mu_);
  std::thread feed_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenEtcdStore(const std::string& endpoints, const std::string& ns,
                                             const StoreOptions& options) {
  std::vector<Endpoint> eps;
  std::stringstream in(endpoints);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto colon = item.rfind(':');
    if (item.empty() || colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
      return Status::Invalid("etcd endpoint '" + item + "' is not HOST:PORT (e.g. 127.0.0.1:2379)");
    }
    eps.push_back({item.substr(0, colon), item.substr(colon + 1)});
  }
  if (eps.empty()) return Status::Invalid("give at least one etcd endpoint, HOST:PORT");
  if (ns.empty() || ns.back() != '/') return Status::Invalid("an etcd namespace must end with '/' (e.g. /pampa/)");
  std::unique_ptr<EtcdTls> tls;
  const StoreOptions::Tls& files = options.tls;
  if (!files.ca.empty() || !files.cert.empty() || !files.key.empty()) {
    PAMPA_ASSIGN_OR_RETURN(tls, EtcdTls::Load(files));
  }
  auto store =
      std::make_unique<EtcdStore>(std::move(eps), ns, std::chrono::milliseconds(5000), options, std::move(tls));
  PAMPA_RETURN_IF_ERROR(store->Start());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pampa
