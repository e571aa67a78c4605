// pampa vm console NAME: the serial console over a WebSocket. Ctrl-] detaches.
#include <termios.h>
#include <unistd.h>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
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

int Console(Globals& g, const std::string& name) {
  asio::io_context ioc;
  std::string path = "/api/v1/vms/" + name + "/console";
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
      return PrintError("cannot attach to the console of " + name + ": " + why);
    }
    return Attach(ws, ioc);
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
}

}  // namespace pampa::cli
