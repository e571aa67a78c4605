// pampa vm console NAME: the serial console over a WebSocket. Ctrl-] detaches.
// pampa vm vnc NAME: a local address for a VNC viewer, relayed to the
// graphical console's WebSocket for one viewer.
#include <termios.h>
#include <unistd.h>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <functional>
#include <iostream>

#include "cli/commands.h"
#include "cli/https.h"
#include "cli/output.h"

namespace pampa::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

// Puts the terminal in raw mode while alive.
class RawTerminal {
 public:
  RawTerminal() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    active_ = true;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

template <class Socket>
int Attach(websocket::stream<Socket>& ws, asio::io_context& ioc) {
  asio::posix::stream_descriptor in(ioc, dup(STDIN_FILENO));
  beast::flat_buffer from_ws;
  std::array<char, 1024> keys;
  bool done = false;
  std::function<void()> read_ws, read_keys;
  read_ws = [&] {
    ws.async_read(from_ws, [&](beast::error_code ec, size_t) {
      if (ec) {
        done = true;
        ioc.stop();
        return;
      }
      auto data = from_ws.data();
      ssize_t ignored = write(STDOUT_FILENO, data.data(), data.size());
      (void)ignored;
      from_ws.consume(from_ws.size());
      read_ws();
    });
  };
  read_keys = [&] {
    in.async_read_some(asio::buffer(keys), [&](beast::error_code ec, size_t n) {
      if (ec) {
        ioc.stop();
        return;
      }
      for (size_t i = 0; i < n; ++i) {
        if (keys[i] == 0x1d) {  // Ctrl-]
          ioc.stop();
          return;
        }
      }
      ws.binary(true);
      beast::error_code wec;
      ws.write(asio::buffer(keys.data(), n), wec);
      if (wec) {
        ioc.stop();
        return;
      }
      read_keys();
    });
  };
  std::cerr << "connected to the serial console; Ctrl-] detaches\r\n";
  {
    RawTerminal raw;
    read_ws();
    read_keys();
    ioc.restart();  // a TLS handshake may have run it to its end already
    ioc.run();
  }
  std::cerr << (done ? "\nconsole closed\n" : "\ndetached\n");
  return 0;
}

// Opens the WebSocket at path on pampad (unix socket, TCP or TLS, as the
// CLI was told) and hands it to use; what names the console in errors.
template <class Use>
int OpenWebSocket(Globals& g, asio::io_context& ioc, const std::string& path, const std::string& what, Use&& use) {
  beast::error_code ec;
  auto handshake = [&](auto& ws, const std::string& host) {
    ws.set_option(websocket::stream_base::decorator([&g](websocket::request_type& req) {
      if (!g.ep.token.empty()) req.set(beast::http::field::authorization, "Bearer " + g.ep.token);
    }));
    websocket::response_type res;
    ws.handshake(res, host, path, ec);
    if (ec) {
      std::string why = res.body().empty() ? ec.message() : std::string(res.body());
      auto j = nlohmann::json::parse(why, nullptr, false);
      if (j.is_object() && j.contains("error")) why = j["error"];
      return PrintError("cannot attach to " + what + ": " + why);
    }
    return use(ws);
  };
  if (g.ep.tcp() && g.ep.tls) {
    auto ctx = TlsContext(g.ep);
    if (!ctx.ok()) return PrintError(ctx.status().message());
    websocket::stream<TlsStream> ws(ioc, **ctx);
    Status st = ConnectTcp(ioc, beast::get_lowest_layer(ws), g.ep);
    if (st.ok()) st = TlsHandshake(ioc, ws.next_layer(), g.ep);
    if (!st.ok()) return PrintError(st.message());
    beast::get_lowest_layer(ws).expires_never();  // a console stays open for as long as the user likes
    return handshake(ws, g.ep.host);
  }
  if (g.ep.tcp()) {
    websocket::stream<asio::ip::tcp::socket> ws(ioc);
    asio::ip::tcp::resolver resolver(ioc);
    auto results = resolver.resolve(g.ep.host, g.ep.port, ec);
    if (!ec) asio::connect(ws.next_layer(), results, ec);
    if (ec) return PrintError("cannot reach pampad at " + g.ep.host + ":" + g.ep.port + ": " + ec.message());
    return handshake(ws, g.ep.host);
  }
  websocket::stream<asio::local::stream_protocol::socket> ws(ioc);
  ws.next_layer().connect(asio::local::stream_protocol::endpoint(g.ep.unix_socket), ec);
  if (ec) return PrintError("cannot connect to pampad at " + g.ep.unix_socket + ": " + ec.message());
  return handshake(ws, "localhost");
}

int Console(Globals& g, const std::string& name) {
  asio::io_context ioc;
  return OpenWebSocket(g, ioc, "/api/v1/vms/" + name + "/console", "the console of " + name,
                       [&](auto& ws) { return Attach(ws, ioc); });
}

// Bytes both ways between a VNC viewer and the graphical console's WebSocket,
// until either side closes.
template <class Socket>
int Relay(websocket::stream<Socket>& ws, asio::ip::tcp::socket& viewer, asio::io_context& ioc) {
  ws.binary(true);
  beast::flat_buffer from_ws;
  std::array<char, 16384> from_viewer;
  std::function<void()> read_ws, read_viewer;
  read_ws = [&] {
    ws.async_read(from_ws, [&](beast::error_code ec, size_t) {
      beast::error_code wec;
      if (!ec) asio::write(viewer, from_ws.data(), wec);
      if (ec || wec) return ioc.stop();
      from_ws.consume(from_ws.size());
      read_ws();
    });
  };
  read_viewer = [&] {
    viewer.async_read_some(asio::buffer(from_viewer), [&](beast::error_code ec, size_t n) {
      beast::error_code wec;
      if (!ec) ws.write(asio::buffer(from_viewer.data(), n), wec);
      if (ec || wec) return ioc.stop();
      read_viewer();
    });
  };
  read_ws();
  read_viewer();
  ioc.restart();
  ioc.run();
  std::cerr << "the VNC viewer left; the relay is closed\n";
  return 0;
}

int Vnc(Globals& g, const std::string& name, uint16_t port, int wait_s) {
  // Said before anything listens: a VM that is not running has no console.
  auto vm = g.client().Call("GET", "/api/v1/vms/" + name);
  if (!vm.ok()) return PrintError(vm.status().message());
  std::string state = vm->value("state", "");
  if (state != "running" && state != "paused") {
    return PrintError("vm '" + name + "' is " + state + ": its graphical console exists while it runs");
  }
  asio::io_context ioc;
  using asio::ip::tcp;
  beast::error_code ec;
  tcp::acceptor acceptor(ioc);
  tcp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
  acceptor.open(at.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(at, ec);
  if (!ec) acceptor.listen(1, ec);
  if (ec) return PrintError("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + ec.message());
  uint16_t bound = acceptor.local_endpoint().port();
  std::cout << "127.0.0.1:" << bound << "\n" << std::flush;
  std::cerr << "point a VNC viewer at 127.0.0.1:" << bound << " (vnc://127.0.0.1:" << bound << ") within " << wait_s
            << " s; one viewer, Ctrl-C ends\n";
  tcp::socket viewer(ioc);
  bool accepted = false;
  asio::steady_timer timer(ioc, std::chrono::seconds(wait_s));
  acceptor.async_accept(viewer, [&](beast::error_code aec) {
    accepted = !aec;
    timer.cancel();
  });
  timer.async_wait([&](beast::error_code tec) {
    if (!tec) acceptor.cancel();
  });
  ioc.run();
  acceptor.close();
  if (!accepted) return PrintError("no VNC viewer connected within " + std::to_string(wait_s) + " s");
  viewer.set_option(tcp::no_delay(true), ec);
  ioc.restart();
  return OpenWebSocket(g, ioc, "/api/v1/vms/" + name + "/vnc", "the graphical console of " + name,
                       [&](auto& ws) { return Relay(ws, viewer, ioc); });
}

}  // namespace

void AddConsoleCommands(CLI::App* vm, Globals& g) {
  auto name = std::make_shared<std::string>();
  auto dump = std::make_shared<bool>(false);
  auto cmd = vm->add_subcommand("console", "attach to the serial console (Ctrl-] detaches)");
  cmd->add_option("name", *name, "VM name")->required();
  cmd->add_flag("--dump", *dump, "print what the guest has written to the console so far, then exit");
  Bind(cmd, g, [&g, name, dump] {
    if (*dump) {
      auto r = g.client().GetText("/api/v1/vms/" + *name + "/console/log");
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << *r;
      return 0;
    }
    return Console(g, *name);
  });

  auto vnc_name = std::make_shared<std::string>();
  auto port = std::make_shared<uint16_t>(0);
  auto wait = std::make_shared<int>(60);
  auto vnc = vm->add_subcommand("vnc", "print a local address for a VNC viewer, relayed to the VM's graphical console");
  vnc->add_option("name", *vnc_name, "VM name")->required();
  vnc->add_option("--port", *port, "local port to listen on (default: a free one)");
  vnc->add_option("--wait", *wait, "seconds to wait for the viewer (default 60)")->check(CLI::Range(1, 3600));
  Bind(vnc, g, [&g, vnc_name, port, wait] { return Vnc(g, *vnc_name, *port, *wait); });
}

}  // namespace pampa::cli
