#include "api/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <thread>

#include "api/static_files.h"
#include "base/fs.h"
#include "base/log.h"
#include "tls/tls_context.h"

namespace pampa {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
// Calls to another host of a pool with certificates.
using TlsSocket = beast::ssl_stream<beast::tcp_stream>;
// The TCP listener's connections in a pool with certificates: over a plain
// socket, as beast::tcp_stream arms its timer for every TLS record it sends;
// the handshake and the pump keep deadlines of their own.
using TlsServerSocket = asio::ssl::stream<tcp::socket>;

namespace {

bool ConstantTimeEqual(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

constexpr const char* kNeedToken =
    "missing or wrong API token: send 'Authorization: Bearer TOKEN' (the token is in DATA_DIR/token on the host)";

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

struct Shared {
  HttpServerOptions opts;
  const Router& router;
  EventBus& events;
  ConsoleResolver consoles;
  asio::thread_pool& workers;
  WebSocketTickets& tickets;
  StaticFiles ui;
};

void CloseStream(local::socket& s) {
  beast::error_code ec;
  s.close(ec);
}
void CloseStream(tcp::socket& s) {
  beast::error_code ec;
  s.shutdown(tcp::socket::shutdown_both, ec);
  s.close(ec);
}
void CloseStream(beast::tcp_stream& s) { CloseStream(s.socket()); }
void CloseStream(TlsSocket& s) { CloseStream(beast::get_lowest_layer(s)); }
void CloseStream(TlsServerSocket& s) { CloseStream(s.next_layer()); }

// Ends a connection once its last answer is written.
template <class Socket>
void ShutdownSend(Socket& s) {
  beast::error_code ec;
  s.shutdown(Socket::shutdown_send, ec);
  s.close(ec);
}

constexpr const char* kPeerOnly =
    "this call is for hosts of the pool: connect with the host's pool certificate (DATA_DIR/tls/host.pem)";

// Streams bytes between a WebSocket and a byte stream: a console's unix
// socket here, or another host's console stream. first: bytes that came
// with the other host's answer, sent before any more.
template <class Socket, class Target>
class PumpSession : public std::enable_shared_from_this<PumpSession<Socket, Target>> {
 public:
  PumpSession(websocket::stream<Socket> ws, Target target, std::string first = "")
      : ws_(std::move(ws)), target_(std::move(target)), first_(std::move(first)) {}
  void Run() {
    ws_.binary(true);
    ReadWs();
    if (first_.empty()) return ReadTarget();
    ws_.async_write(asio::buffer(first_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->ReadTarget();
    });
  }

 private:
  void ReadWs() {
    ws_.async_read(in_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      asio::async_write(self->target_, self->in_.data(), [self](beast::error_code ec, size_t n) {
        if (ec) return self->Close();
        self->in_.consume(n);
        self->ReadWs();
      });
    });
  }
  void ReadTarget() {
    target_.async_read_some(asio::buffer(out_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->Close();
      self->ws_.async_write(asio::buffer(self->out_.data(), n), [self](beast::error_code ec, size_t) {
        if (ec) return self->Close();
        self->ReadTarget();
      });
    });
  }
  void Close() {
    if (closed_) return;
    closed_ = true;
    CloseStream(target_);
    ws_.async_close(websocket::close_code::normal, [self = this->shared_from_this()](beast::error_code) {});
  }

  websocket::stream<Socket> ws_;
  Target target_;
  std::string first_;
  beast::flat_buffer in_;
  std::array<char, 16384> out_;
  bool closed_ = false;
};

// How long a pump waits for the far end to take bytes (a client that stopped
// reading) before it closes both ends.
constexpr std::chrono::seconds kPumpWriteTimeout{60};

// Streams bytes both ways between two byte streams (a console's unix socket
// and the host that asked for it, or a TLS connection and its session).
// Each direction moves up to kPumpChunk at a time, and arms its deadline once
// a chunk: a 758 KB answer through a TLS connection took 47 cycles of 16 KiB,
// each two epoll waits, a timer re-armed per TLS record and a wake-up of the
// other I/O thread (strace: 420 system calls per answer against 27 without
// TLS), and that, not the cipher, was TLS's cost.
constexpr size_t kPumpChunk = 256 << 10;
template <class A, class B>
class BytePump : public std::enable_shared_from_this<BytePump<A, B>> {
 public:
  BytePump(A a, B b) : a_(std::move(a)), b_(std::move(b)), a_to_b_(a_.get_executor()), b_to_a_(a_.get_executor()) {}
  void Run() {
    Copy(a_, b_, a_to_b_);
    Copy(b_, a_, b_to_a_);
  }

 private:
  struct Direction {
    explicit Direction(const asio::any_io_executor& ex) : deadline(ex) {}
    std::unique_ptr<char[]> buf = std::make_unique<char[]>(kPumpChunk);
    asio::steady_timer deadline;
  };
  template <class From, class To>
  void Copy(From& from, To& to, Direction& d) {
    from.async_read_some(asio::buffer(d.buf.get(), kPumpChunk), [self = this->shared_from_this(), &from, &to, &d](
                                                                    beast::error_code ec, size_t n) {
      if (ec) return self->Close();
      d.deadline.expires_after(kPumpWriteTimeout);
      d.deadline.async_wait([self](beast::error_code ec) {
        if (!ec) self->Close();
      });
      asio::async_write(to, asio::buffer(d.buf.get(), n), [self, &from, &to, &d](beast::error_code ec, size_t) {
        d.deadline.cancel();
        if (ec) return self->Close();
        self->Copy(from, to, d);
      });
    });
  }
  void Close() {
    if (closed_) return;
    closed_ = true;
    a_to_b_.deadline.cancel();
    b_to_a_.deadline.cancel();
    CloseStream(a_);
    CloseStream(b_);
  }

  A a_;
  B b_;
  Direction a_to_b_, b_to_a_;
  bool closed_ = false;
};

// Sends every event from the bus to one WebSocket client.
template <class Socket>
class EventsSession : public std::enable_shared_from_this<EventsSession<Socket>> {
 public:
  EventsSession(websocket::stream<Socket> ws, EventBus& bus) : ws_(std::move(ws)), bus_(bus) {}
  ~EventsSession() { bus_.Unsubscribe(sub_); }
  void Run() {
    std::weak_ptr<EventsSession> weak = this->shared_from_this();
    auto exec = ws_.get_executor();
    sub_ = bus_.Subscribe([weak, exec](const nlohmann::json& ev) {
      std::string msg = Dump(ev);
      asio::post(exec, [weak, msg = std::move(msg)] {
        auto self = weak.lock();
        if (!self || self->closed_) return;
        if (self->queue_.size() > 1000) return self->Close();  // a client that does not read
        self->queue_.push_back(msg);
        if (self->queue_.size() == 1) self->Write();
      });
    });
    Read();
  }

 private:
  void Read() {
    ws_.async_read(in_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->in_.clear();
      self->Read();
    });
  }
  void Write() {
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->Write();
    });
  }
  void Close() {
    if (closed_) return;
    closed_ = true;
    bus_.Unsubscribe(sub_);
    CloseStream(beast::get_lowest_layer(ws_));
  }

  websocket::stream<Socket> ws_;
  EventBus& bus_;
  int sub_ = 0;
  beast::flat_buffer in_;
  std::deque<std::string> queue_;
  bool closed_ = false;
};

// Who is at the other end of a connection, as far as calls between hosts go.
struct Caller {
  // false: calls between hosts are allowed (the root-only unix socket, or a
  // pool without certificates); true: only from a host that proved its name.
  bool checked = false;
  std::string host;  // the pool host name the TLS client's certificate proves; "" none
};

template <class Socket>
class HttpSession : public std::enable_shared_from_this<HttpSession<Socket>> {
 public:
  HttpSession(Socket socket, Shared& shared, bool needs_token, Caller caller = {})
      : socket_(std::move(socket)), shared_(shared), needs_token_(needs_token), caller_(std::move(caller)) {}
  ~HttpSession() { AbandonUpload(); }
  void Run() { Read(); }

 private:
  // The most a REST request's body may hold (an upload streams to a file instead).
  static constexpr uint64_t kMaxBody = 1 << 20;
  // A refused upload's body this small is read and dropped before the answer,
  // so that the client (a browser still sending) reads the answer, not a reset.
  static constexpr uint64_t kMaxDiscarded = 64 << 20;

  void Read() {
    header_.emplace();
    header_->header_limit(16 << 10);
    // Checked per route once the head is in. (Not boost::none: Boost 1.74
    // compares a Content-Length with an empty optional as over the limit.)
    header_->body_limit(std::numeric_limits<uint64_t>::max());
    http::async_read_header(socket_, buffer_, *header_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Shutdown();
                              self->OnHead();
                            });
  }

  void OnHead() {
    if (header_->get().method() == http::verb::put && BeginUpload()) return;
    auto length = header_->content_length();
    if (length && *length > kMaxBody) return SendError(413, "request body too large (limit 1 MiB)");
    parser_.emplace(std::move(*header_));
    parser_->body_limit(kMaxBody);
    http::async_read(socket_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::body_limit) return self->SendError(413, "request body too large (limit 1 MiB)");
      if (ec) return self->Shutdown();
      self->Handle(self->parser_->release());
    });
  }

  // --- uploads: a body streamed into a file (Router::AddUpload) -------------
  // true when the request is an upload (it is then answered here).
  bool BeginUpload() {
    std::string target(header_->get().target());
    auto q = target.find('?');
    HttpRequest r;
    r.method = "PUT";
    r.path = NormalPath(target.substr(0, q));
    if (q != std::string::npos) r.query = ParseQuery(target.substr(q + 1));
    r.target = target;
    const UploadHandler* handler = shared_.router.FindUpload(r.path, &r.params);
    if (handler == nullptr) return false;
    keep_alive_ = false;  // one upload per connection
    r_path_ = r.path;
    auto length = header_->content_length();
    if (!Authorized(header_->get())) {
      RefuseUpload(ErrorResponse(Status::Unauthorized(kNeedToken)), length);
      return true;
    }
    if (!FromPoolHost(header_->get(), r.path)) {
      RefuseUpload(HttpResponse{403, {{"error", kPeerOnly}, {"code", "forbidden"}}}, length);
      return true;
    }
    if (!length) {
      SendError(411, "an upload needs a Content-Length: send the file itself as the body");
      return true;
    }
    // begin may look at the disk and the store: on a worker.
    asio::post(shared_.workers, [self = this->shared_from_this(), handler, r = std::move(r), n = *length]() mutable {
      auto file = handler->begin(r, n);
      asio::post(self->socket_.get_executor(), [self, handler, r = std::move(r), file = std::move(file), n]() mutable {
        self->StartUploadBody(handler, std::move(r), std::move(file), n);
      });
    });
    return true;
  }

  void StartUploadBody(const UploadHandler* handler, HttpRequest r, Result<std::string> file, uint64_t length) {
    if (!file.ok()) return RefuseUpload(ErrorResponse(file.status()), length);
    int fd = open(file->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return RefuseUpload(ErrorResponse(Status::Unavailable("cannot create " + *file + ": " + std::strerror(errno))),
                          length);
    }
    upload_.emplace();
    upload_->handler = handler;
    upload_->request = std::move(r);
    upload_->fd = Fd(fd);
    upload_->file = *file;
    ReadUploadBody();
  }

  // Answers an upload without storing it: a small body is read and dropped
  // first, so that a client still sending reads the answer instead of a reset.
  void RefuseUpload(HttpResponse answer, boost::optional<uint64_t> length) {
    if (!length || *length > kMaxDiscarded) return Send(answer);
    upload_.emplace();
    upload_->refusal = std::move(answer);
    ReadUploadBody();
  }

  void ReadUploadBody() {
    body_.emplace(std::move(*header_));
    body_->body_limit(std::numeric_limits<uint64_t>::max());  // Content-Length bounds it
    upload_->buffer.resize(1 << 20);
    ReadUploadPiece();
  }

  void ReadUploadPiece() {
    auto& body = body_->get().body();
    body.data = upload_->buffer.data();
    body.size = upload_->buffer.size();
    http::async_read(socket_, buffer_, *body_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        self->AbandonUpload();
        return self->Shutdown();
      }
      size_t got = self->upload_->buffer.size() - self->body_->get().body().size;
      bool done = self->body_->is_done();
      if (self->upload_->refusal) {
        if (!done) return self->ReadUploadPiece();
        return self->Send(*self->upload_->refusal);
      }
      // A slow disk must not stall this I/O thread: the write runs on a worker
      // (the socket reads nothing meanwhile, so the buffer is the worker's).
      asio::post(self->shared_.workers, [self, got, done] {
        Upload& up = *self->upload_;
        Status st = WriteAt(up.fd.get(), up.buffer.data(), got, up.written, up.file);
        up.written += got;
        asio::post(self->socket_.get_executor(), [self, st, done] { self->UploadPieceWritten(st, done); });
      });
    });
  }

  void UploadPieceWritten(const Status& st, bool done) {
    if (!st.ok()) {
      AbandonUpload();
      return Send(ErrorResponse(st));
    }
    if (!done) return ReadUploadPiece();
    upload_->fd.Reset();
    asio::post(shared_.workers, [self = this->shared_from_this()] {
      Upload& up = *self->upload_;
      HttpResponse resp = up.handler->finish(up.request, up.file);
      up.file.clear();  // the handler's now
      asio::post(self->socket_.get_executor(), [self, resp = std::move(resp)] { self->Send(resp); });
    });
  }

  void AbandonUpload() {
    if (upload_ && !upload_->file.empty()) {
      upload_->fd.Reset();
      unlink(upload_->file.c_str());
      upload_->file.clear();
    }
  }

  bool Authorized(const http::fields& head, bool metrics = false) const {
    if (!needs_token_) return true;
    auto auth = head[http::field::authorization];
    std::string prefix = "Bearer ";
    if (auth.size() <= prefix.size() || auth.substr(0, prefix.size()) != prefix) return false;
    std::string given(auth.substr(prefix.size()));
    return ConstantTimeEqual(given, shared_.opts.token) ||
           (metrics && !shared_.opts.metrics_token.empty() && ConstantTimeEqual(given, shared_.opts.metrics_token));
  }

  // A request's path with runs of '/' made one: the router ignores empty
  // segments, so the checks below must see the path the way it does.
  static std::string NormalPath(std::string path) {
    path.erase(std::unique(path.begin(), path.end(), [](char a, char b) { return a == '/' && b == '/'; }), path.end());
    return path;
  }

  // Calls between hosts (a migration's steps, a forwarded action, a console
  // stream) need a host of the pool at the other end, where that is checked.
  bool FromPoolHost(const http::fields& head, const std::string& path) const {
    if (!caller_.checked) return true;
    auto forwarded = head["Pampa-Forwarded"];
    bool between_hosts = path.rfind("/api/v1/migrations/", 0) == 0 || !forwarded.empty() ||
                         beast::iequals(head[http::field::upgrade], kConsoleStream);
    if (!between_hosts) return true;
    return !caller_.host.empty() && (forwarded.empty() || forwarded == caller_.host);
  }

  // The calls a host that is not in the pool yet makes: it has no token.
  static bool OpenToAll(const std::string& method, const std::string& path) {
    return (method == "GET" && path == "/api/v1/pool/ca") || (method == "POST" && path == "/api/v1/hosts/join");
  }

  void Handle(http::request<http::string_body> req) {
    std::string target(req.target());
    auto q = target.find('?');
    HttpRequest r;
    r.method = std::string(req.method_string());
    r.path = NormalPath(target.substr(0, q));
    if (q != std::string::npos) r.query = ParseQuery(target.substr(q + 1));
    r.target = target;
    r.forwarded_from = std::string(req["Pampa-Forwarded"]);
    r.from_pool_host = !needs_token_ || !caller_.host.empty();
    keep_alive_ = req.keep_alive();
    // Prometheus scrapes /metrics, with the API token or the metrics token.
    const bool metrics = r.path == "/metrics" && r.method == "GET";
    if (!metrics && r.path.rfind("/api/", 0) != 0) return ServeFile(req, r.path);
    if (!FromPoolHost(req, r.path)) return SendError(403, kPeerOnly);
    if (beast::iequals(req[http::field::upgrade], kConsoleStream)) return ConsoleStream(std::move(req), r.path);
    if (websocket::is_upgrade(req)) {
      std::string ticket = r.query.count("ticket") ? r.query["ticket"] : "";
      return Upgrade(std::move(req), r.path, ticket);
    }
    if (!Authorized(req, metrics) && !OpenToAll(r.method, r.path)) return SendError(401, kNeedToken);
    r_path_ = r.path;
    r.body = std::move(req.body());
    asio::post(shared_.workers, [self = this->shared_from_this(), r = std::move(r)]() mutable {
      HttpResponse resp = self->shared_.router.Dispatch(r);
      if (resp.stream) return self->Stream(resp);
      asio::post(self->socket_.get_executor(), [self, resp = std::move(resp)] { self->Send(resp); });
    });
  }

  // The web console's files, read on a worker (the disk may be slow).
  void ServeFile(const http::request<http::string_body>& req, const std::string& path) {
    if (req.method() != http::verb::get) {
      return SendError(405, "only GET reaches the web console's files; the API is under /api/v1/");
    }
    r_path_ = path;
    asio::post(shared_.workers,
               [self = this->shared_from_this(), path, encoding = std::string(req[http::field::accept_encoding])] {
                 HttpResponse resp = self->shared_.ui.Serve(path, encoding);
                 asio::post(self->socket_.get_executor(), [self, resp = std::move(resp)] { self->Send(resp); });
               });
  }

  // How long a streamed body waits for a client that does not read.
  static constexpr std::chrono::seconds kStreamWriteTimeout{60};

  // Starts one write on the socket's executor and waits for it on this worker
  // thread; a client that does not take it in kStreamWriteTimeout is hung up on.
  template <class Start>
  beast::error_code WriteAndWait(Start start) {
    auto done = std::make_shared<std::promise<beast::error_code>>();
    auto result = done->get_future();
    asio::post(socket_.get_executor(), [self = this->shared_from_this(), start, done] {
      start([done](beast::error_code ec, size_t) { done->set_value(ec); });
    });
    if (result.wait_for(kStreamWriteTimeout) == std::future_status::timeout) {
      asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->Shutdown(); });
      result.wait();  // the write ends (aborted) before its buffers may go
      return asio::error::timed_out;
    }
    return result.get();
  }

  // Sends resp's streamed body in chunks, from this worker thread (the session
  // starts nothing else meanwhile), then closes the connection.
  void Stream(const HttpResponse& resp) {
    http::response<http::empty_body> head{static_cast<http::status>(resp.status), 11};
    head.set(http::field::server, "pampad");
    head.set(http::field::content_type, resp.content_type);
    head.set(http::field::trailer, "Pampa-Error");
    for (auto& [name, value] : resp.headers) head.set(name, value);
    head.chunked(true);
    head.keep_alive(false);
    http::response_serializer<http::empty_body> header(head);
    beast::error_code ec =
        WriteAndWait([this, &header](auto handler) { http::async_write_header(socket_, header, handler); });
    Status st = ec ? Status::Unavailable("client gone: " + ec.message()) : Status::Ok();
    if (st.ok()) {
      st = resp.stream([this](std::string_view piece) -> Status {
        if (piece.empty()) return Status::Ok();
        auto chunk = http::make_chunk(asio::const_buffer(piece.data(), piece.size()));
        beast::error_code wec =
            WriteAndWait([this, &chunk](auto handler) { asio::async_write(socket_, chunk, handler); });
        return wec ? Status::Unavailable("the client stopped reading: " + wec.message()) : Status::Ok();
      });
      if (!st.ok()) log::Warn("{}: streamed response ended early: {}", r_path_, st.message());
      http::fields trailer;
      if (!st.ok()) {
        std::string message = st.message();
        std::replace_if(
            message.begin(), message.end(), [](char c) { return c == '\r' || c == '\n'; }, ' ');
        trailer.set("Pampa-Error", message);
      }
      auto last = http::make_chunk_last(trailer);
      WriteAndWait([this, &last](auto handler) { asio::async_write(socket_, last, handler); });
    }
    asio::post(socket_.get_executor(), [self = this->shared_from_this()] { self->Shutdown(); });
  }

  void Send(const HttpResponse& resp) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(resp.status), 11);
    res->set(http::field::server, "pampad");
    for (auto& [name, value] : resp.headers) res->set(name, value);
    if (resp.raw) {
      res->set(http::field::content_type, resp.content_type);
      res->body() = *resp.raw;
    } else {
      res->set(http::field::content_type, "application/json");
      res->body() = Dump(resp.body) + "\n";
    }
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    http::async_write(socket_, *res, [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->Shutdown();
      self->Read();
    });
  }

  void SendError(int status, const std::string& message) {
    keep_alive_ = false;
    const char* code = status == 401 ? "unauthorized" : status == 403 ? "forbidden" : "invalid";
    Send(HttpResponse{status, {{"error", message}, {"code", code}}});
  }

  // Which streaming endpoint path is (params: the VM's name), if any.
  std::optional<TicketKind> Endpoint(const std::string& path, std::map<std::string, std::string>* params) const {
    const Router& router = shared_.router;
    if (path == "/api/v1/events") return TicketKind::kEvents;
    if (router.Match("/api/v1/vms/{name}/console", path, params)) return TicketKind::kSerial;
    if (router.Match("/api/v1/vms/{name}/vnc", path, params)) return TicketKind::kVnc;
    return std::nullopt;
  }
  static std::string ConsoleKind(TicketKind k) { return k == TicketKind::kVnc ? "vnc" : "serial"; }

  void Upgrade(http::request<http::string_body> req, const std::string& path, const std::string& ticket) {
    std::map<std::string, std::string> params;
    std::optional<TicketKind> endpoint = Endpoint(path, &params);
    if (!endpoint) return SendError(404, "no WebSocket endpoint at " + path);
    if (!Authorized(req) && !(needs_token_ && shared_.tickets.Redeem(ticket, *endpoint, params["name"]))) {
      return SendError(401,
                       "missing, used or expired ticket: get one with POST /api/v1/tickets (it opens this endpoint "
                       "once, within 30 s), or send 'Authorization: Bearer TOKEN'");
    }
    if (*endpoint == TicketKind::kEvents) {
      EventBus& events = shared_.events;
      return AcceptWs(std::move(req), [&events](websocket::stream<Socket> ws) {
        std::make_shared<EventsSession<Socket>>(std::move(ws), events)->Run();
      });
    }
    std::string kind = ConsoleKind(*endpoint);
    auto target = shared_.consoles(params["name"], kind);
    if (!target.ok()) {
      keep_alive_ = false;
      return Send(ErrorResponse(target.status()));
    }
    if (target->socket.empty()) return UpgradeRemote(std::move(req), path, *target);
    auto sock = OpenConsole(*target, params["name"], kind);
    if (!sock) return;
    AcceptWs(std::move(req), [sock](websocket::stream<Socket> ws) {
      std::make_shared<PumpSession<Socket, local::socket>>(std::move(ws), std::move(*sock))->Run();
    });
  }

  // The unix socket of a console here; on failure the error is sent (nullptr).
  std::shared_ptr<local::socket> OpenConsole(const ConsoleTarget& target, const std::string& vm,
                                             const std::string& kind) {
    auto sock = std::make_shared<local::socket>(socket_.get_executor());
    beast::error_code ec;
    sock->connect(local::endpoint(target.socket), ec);
    if (!ec) return sock;
    keep_alive_ = false;
    Send(
        ErrorResponse(Status::Unavailable("cannot open the " + kind + " console of vm '" + vm + "': " + ec.message())));
    return nullptr;
  }

  // Answers the WebSocket upgrade and hands the stream to start.
  void AcceptWs(http::request<http::string_body> req, std::function<void(websocket::stream<Socket>)> start) {
    auto ws = std::make_shared<websocket::stream<Socket>>(std::move(socket_));
    bool binary_proto = req[http::field::sec_websocket_protocol].find("binary") != beast::string_view::npos;
    ws->set_option(websocket::stream_base::decorator([binary_proto](websocket::response_type& res) {
      res.set(http::field::server, "pampad");
      if (binary_proto) res.set(http::field::sec_websocket_protocol, "binary");
    }));
    auto reqp = std::make_shared<http::request<http::string_body>>(std::move(req));
    ws->async_accept(*reqp, [ws, reqp, start = std::move(start)](beast::error_code ec) {
      if (!ec) start(std::move(*ws));
    });
  }

  // A console of a VM another host of the pool runs: that host's pampad
  // streams the console's bytes here (kConsoleStream, with the pool's
  // token, over TLS where the pool has certificates); this host frames them
  // for the WebSocket client.
  void UpgradeRemote(http::request<http::string_body> req, const std::string& path, const ConsoleTarget& target) {
    auto reqp = std::make_shared<http::request<http::string_body>>(std::move(req));
    auto self = this->shared_from_this();
    auto fail = [self, where = "host " + target.peer_name + " (which runs the VM) "](const std::string& what) {
      self->keep_alive_ = false;
      self->Send(ErrorResponse(Status::Unavailable(where + what)));
    };
    tls::PoolTls* pool_tls = shared_.opts.tls.get();
    if (target.secure && pool_tls == nullptr) return fail("speaks TLS, but this host has no pool certificate");
    if (!target.secure && pool_tls != nullptr)
      return fail("is advertised at http://: hosts with certificates use https");
    auto stream = std::make_shared<beast::tcp_stream>(socket_.get_executor());
    auto resolver = std::make_shared<tcp::resolver>(socket_.get_executor());
    stream->expires_after(std::chrono::seconds(10));
    auto on_connect = [self, stream, reqp, path, target, fail, pool_tls](beast::error_code ec) {
      if (ec) return fail("does not answer: " + ec.message());
      if (!target.secure) return self->AskConsole(stream, reqp, path, target, fail);
      auto secure = std::make_shared<TlsSocket>(std::move(*stream), pool_tls->client());
      if (Status st = pool_tls->PrepareClient(secure->native_handle(), target.peer_name); !st.ok()) {
        return fail(st.message());
      }
      secure->async_handshake(asio::ssl::stream_base::client,
                              [self, secure, reqp, path, target, fail](beast::error_code ec) {
                                if (ec) return fail("is not that host of this pool (TLS): " + ec.message());
                                self->AskConsole(secure, reqp, path, target, fail);
                              });
    };
    resolver->async_resolve(
        target.peer_host, target.peer_port,
        [resolver, stream, fail, on_connect](beast::error_code ec, const tcp::resolver::results_type& found) {
          if (ec || found.empty()) return fail("cannot be resolved: " + ec.message());
          tcp::endpoint ep = found.begin()->endpoint();
          // Made here, close-on-exec from the start, so no child can inherit it.
          int fd = socket(ep.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
          if (fd < 0) return fail("cannot be reached: " + std::string(strerror(errno)));
          stream->socket().assign(ep.protocol(), fd, ec);
          if (ec) {
            close(fd);
            return fail("cannot be reached: " + ec.message());
          }
          stream->socket().set_option(tcp::no_delay(true), ec);
          stream->async_connect(ep, on_connect);
        });
  }

  // Asks the host that runs the VM for its console's bytes on a connected
  // stream (plain or TLS) and, once it agrees, pipes them into the WebSocket.
  template <class Peer, class Fail>
  void AskConsole(std::shared_ptr<Peer> peer, std::shared_ptr<http::request<http::string_body>> reqp,
                  const std::string& path, const ConsoleTarget& target, Fail fail) {
    struct Exchange {
      beast::flat_buffer buffer;
      http::request<http::empty_body> ask;
      http::response_parser<http::string_body> answer;
    };
    auto x = std::make_shared<Exchange>();
    x->ask = {http::verb::get, path, 11};
    x->ask.set(http::field::host, target.peer_host);
    x->ask.set(http::field::upgrade, kConsoleStream);
    x->ask.set(http::field::connection, "upgrade");
    x->ask.set(http::field::authorization, "Bearer " + target.token);
    x->ask.set("Pampa-Forwarded", shared_.opts.host);
    x->answer.body_limit(64 << 10);
    auto self = this->shared_from_this();
    auto on_answer = [self, peer, x, reqp, fail](beast::error_code ec) {
      if (ec) return fail("did not open the console: " + ec.message());
      beast::get_lowest_layer(*peer).expires_never();
      std::string first = beast::buffers_to_string(x->buffer.data());
      self->AcceptWs(std::move(*reqp), [peer, first](websocket::stream<Socket> ws) {
        std::make_shared<PumpSession<Socket, Peer>>(std::move(ws), std::move(*peer), first)->Run();
      });
    };
    auto on_refusal = [x, fail](beast::error_code, size_t) {
      auto body = nlohmann::json::parse(x->answer.get().body(), nullptr, false);
      fail("refused the console: " + (body.is_object() ? body.value("error", std::string("no reason given"))
                                                       : "HTTP " + std::to_string(x->answer.get().result_int())));
    };
    http::async_write(*peer, x->ask, [peer, x, fail, on_answer, on_refusal](beast::error_code ec, size_t) {
      if (ec) return fail("did not take the request: " + ec.message());
      http::async_read_header(*peer, x->buffer, x->answer,
                              [peer, x, on_answer, on_refusal](beast::error_code ec, size_t) {
                                if (ec || x->answer.get().result() == http::status::switching_protocols)
                                  return on_answer(ec);
                                http::async_read(*peer, x->buffer, x->answer, on_refusal);
                              });
    });
  }

  // Between hosts of a pool: the raw bytes of the console of a VM that runs
  // here, for the host a WebSocket client talks to (see UpgradeRemote).
  void ConsoleStream(http::request<http::string_body> req, const std::string& path) {
    if (!Authorized(req)) return SendError(401, kNeedToken);
    std::map<std::string, std::string> params;
    std::optional<TicketKind> endpoint = Endpoint(path, &params);
    if (!endpoint || *endpoint == TicketKind::kEvents) return SendError(404, "no console at " + path);
    std::string kind = ConsoleKind(*endpoint);
    auto target = shared_.consoles(params["name"], kind);
    if (!target.ok()) {
      keep_alive_ = false;
      return Send(ErrorResponse(target.status()));
    }
    if (target->socket.empty()) return SendError(409, "vm '" + params["name"] + "' does not run on this host");
    auto sock = OpenConsole(*target, params["name"], kind);
    if (!sock) return;
    auto answer = std::make_shared<std::string>(std::string("HTTP/1.1 101 Switching Protocols\r\nUpgrade: ") +
                                                kConsoleStream + "\r\nConnection: Upgrade\r\n\r\n");
    auto self = this->shared_from_this();
    asio::async_write(socket_, asio::buffer(*answer), [self, answer, sock](beast::error_code ec, size_t) {
      if (ec) return;
      std::make_shared<BytePump<Socket, local::socket>>(std::move(self->socket_), std::move(*sock))->Run();
    });
  }

  void Shutdown() { ShutdownSend(socket_); }

  Socket socket_;
  Shared& shared_;
  bool needs_token_;
  Caller caller_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<http::buffer_body>> body_;  // an upload's
  struct Upload {
    const UploadHandler* handler = nullptr;  // none: refused, the body is dropped
    HttpRequest request;
    Fd fd;
    std::string file;  // set while the file is the session's (removed if the body does not arrive)
    uint64_t written = 0;
    std::vector<char> buffer;
    std::optional<HttpResponse> refusal;  // begin's answer, sent once the small body is dropped
  };
  std::optional<Upload> upload_;
  bool keep_alive_ = true;
  std::string r_path_;  // the request being answered, for the log
};

// Asio opens and accepts without SOCK_CLOEXEC; a QEMU that inherited a
// listening socket would keep pampad's port and answer its clients.
// (The spawn path closes every inherited descriptor too; this is the second lock.)
void CloseOnExec(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

template <class Acceptor, class Socket>
void Accept(asio::io_context& ioc, Acceptor& acceptor, Shared& shared, bool needs_token) {
  acceptor.async_accept(asio::make_strand(ioc),
                        [&ioc, &acceptor, &shared, needs_token](beast::error_code ec, Socket s) {
                          if (!acceptor.is_open()) return;
                          if (!ec) CloseOnExec(s.native_handle());
                          if (!ec) std::make_shared<HttpSession<Socket>>(std::move(s), shared, needs_token)->Run();
                          Accept<Acceptor, Socket>(ioc, acceptor, shared, needs_token);
                        });
}

// The TCP listener of a pool with certificates: each connection's TLS
// handshake first (within 10 s); then its plain bytes go through a socket
// pair to the same session a unix socket's connection gets (one session
// type: Beast's HTTP and WebSocket code over TLS would double this file's
// build, measured at over 10 minutes), which knows what the handshake proved.
void AcceptTls(asio::io_context& ioc, tcp::acceptor& acceptor, Shared& shared) {
  acceptor.async_accept(asio::make_strand(ioc), [&ioc, &acceptor, &shared](beast::error_code ec, tcp::socket s) {
    if (!acceptor.is_open()) return;
    if (!ec) {
      CloseOnExec(s.native_handle());
      s.set_option(tcp::no_delay(true), ec);  // small requests and answers must not wait for delayed ACKs
      auto stream = std::make_shared<TlsServerSocket>(std::move(s), shared.opts.tls->server());
      auto deadline = std::make_shared<asio::steady_timer>(stream->get_executor(), std::chrono::seconds(10));
      deadline->async_wait([stream](beast::error_code ec) {
        if (!ec) CloseStream(*stream);  // no handshake within 10 s
      });
      stream->async_handshake(asio::ssl::stream_base::server, [stream, deadline, &shared](beast::error_code ec) {
        deadline->cancel();
        if (ec) return CloseStream(*stream);  // a stranger's certificate, or not TLS at all
        Caller caller{true, tls::PeerName(stream->native_handle())};
        local::socket outer(stream->get_executor()), inner(stream->get_executor());
        asio::local::connect_pair(outer, inner, ec);
        if (ec) return CloseStream(*stream);
        CloseOnExec(outer.native_handle());
        CloseOnExec(inner.native_handle());
        std::make_shared<BytePump<TlsServerSocket, local::socket>>(std::move(*stream), std::move(outer))->Run();
        std::make_shared<HttpSession<local::socket>>(std::move(inner), shared, true, std::move(caller))->Run();
      });
    }
    AcceptTls(ioc, acceptor, shared);
  });
}

}  // namespace

struct HttpServer::Impl {
  Impl(HttpServerOptions o, const Router& r, EventBus& e, ConsoleResolver c, WebSocketTickets& t)
      : workers(o.workers), shared{o, r, e, std::move(c), workers, t, StaticFiles(o.ui_dir)} {}
  asio::io_context ioc;
  asio::thread_pool workers;
  Shared shared;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<local::acceptor> unix_acceptor;
  std::vector<std::thread> threads;
  uint16_t port = 0;
};

HttpServer::HttpServer(HttpServerOptions options, const Router& router, EventBus& events, ConsoleResolver consoles,
                       WebSocketTickets& tickets)
    : impl_(std::make_unique<Impl>(std::move(options), router, events, std::move(consoles), tickets)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  auto& o = impl_->shared.opts;
  beast::error_code ec;
  if (!o.unix_socket.empty()) {
    unlink(o.unix_socket.c_str());
    impl_->unix_acceptor.emplace(impl_->ioc);
    local::endpoint ep(o.unix_socket);
    impl_->unix_acceptor->open(ep.protocol(), ec);
    if (!ec) CloseOnExec(impl_->unix_acceptor->native_handle());
    mode_t old = umask(0177);  // the socket is born 0600: root only
    if (!ec) impl_->unix_acceptor->bind(ep, ec);
    umask(old);
    if (!ec) impl_->unix_acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::Unavailable("cannot listen on " + o.unix_socket + ": " + ec.message());
    chmod(o.unix_socket.c_str(), 0600);
    Accept<local::acceptor, local::socket>(impl_->ioc, *impl_->unix_acceptor, impl_->shared, false);
  }
  if (!o.tcp_address.empty()) {
    auto addr = asio::ip::make_address(o.tcp_address, ec);
    if (ec) return Status::Invalid("invalid listen address '" + o.tcp_address + "'");
    tcp::endpoint ep(addr, o.tcp_port);
    impl_->tcp_acceptor.emplace(impl_->ioc);
    impl_->tcp_acceptor->open(ep.protocol(), ec);
    if (!ec) CloseOnExec(impl_->tcp_acceptor->native_handle());
    if (!ec) impl_->tcp_acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) impl_->tcp_acceptor->bind(ep, ec);
    if (!ec) impl_->tcp_acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::Unavailable("cannot listen on " + o.tcp_address + ":" + std::to_string(o.tcp_port) + ": " +
                                 ec.message() + " (another pampad running? use --listen ADDR:PORT)");
    }
    impl_->port = impl_->tcp_acceptor->local_endpoint().port();
    if (o.tls) {
      AcceptTls(impl_->ioc, *impl_->tcp_acceptor, impl_->shared);
    } else {
      Accept<tcp::acceptor, tcp::socket>(impl_->ioc, *impl_->tcp_acceptor, impl_->shared, true);
    }
  }
  for (int i = 0; i < std::max(1, o.io_threads); ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  return Status::Ok();
}

uint16_t HttpServer::tcp_port() const { return impl_->port; }

void HttpServer::Stop() {
  if (!impl_) return;
  beast::error_code ec;
  if (impl_->tcp_acceptor) impl_->tcp_acceptor->close(ec);
  if (impl_->unix_acceptor) impl_->unix_acceptor->close(ec);
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
  impl_->workers.join();
}

}  // namespace pampa
