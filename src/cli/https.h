// The CLI's side of pampad's HTTPS (a host with a pool certificate): the TLS
// context an endpoint asks for, and connecting and handshaking with errors
// that say what to do. Shared by the REST client, the task event stream and
// the console; implemented in client.cc.
#pragma once

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <memory>

#include "base/status.h"
#include "cli/client.h"

namespace pampa::cli {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// The client context for a TLS endpoint: trusts ep.ca_pem, else ep.ca_file,
// else the system's CAs; trusts anything with ep.no_verify. kInvalid when the
// CA does not load. A stream keeps using the context: it must outlive them.
Result<std::shared_ptr<boost::asio::ssl::context>> TlsContext(const Endpoint& ep);

// Resolves ep and connects stream within kConnectTimeout; kUnavailable with
// what to check otherwise. Runs ioc.
Status ConnectTcp(boost::asio::io_context& ioc, boost::beast::tcp_stream& stream, const Endpoint& ep);

// The client handshake on a connected stream within kConnectTimeout. Unless
// ep.no_verify, pampad's certificate must chain to the trusted CA and name
// ep.host (a DNS name or an IP address). The error says which check failed
// and what to pass instead. Runs ioc.
Status TlsHandshake(boost::asio::io_context& ioc, TlsStream& stream, const Endpoint& ep);

}  // namespace pampa::cli
