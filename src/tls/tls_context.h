// The TLS contexts of a host of a pool with certificates (pool_ca.h): the
// server side of its API, the client side of its calls to other hosts, and
// a cache of TLS sessions per peer so that a repeated call resumes instead of
// doing a whole handshake again.
#pragma once

#include <openssl/ssl.h>

// clang-format off
#include <utility>  // first: Boost 1.74 Asio uses std::exchange without including it
// clang-format on
#include <boost/asio/ssl/context.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"
#include "tls/pool_ca.h"

namespace pampa::tls {

class PoolTls {
 public:
  // Loads and checks DATA_DIR/tls (LoadHostFiles); kNotFound when the host
  // has no pool certificate.
  static Result<std::shared_ptr<PoolTls>> Load(const TlsPaths& paths);
  ~PoolTls();

  const HostTls& files() const { return files_; }
  const TlsPaths& paths() const { return paths_; }
  // Serves this host's certificate; asks for a client certificate, which must
  // then be from the pool's CA, but lets a client without one in (a browser,
  // the CLI): PeerName() tells the two apart.
  boost::asio::ssl::context& server() { return server_; }
  // Presents this host's certificate and trusts only the pool's CA.
  boost::asio::ssl::context& client() { return client_; }

  // Before a client handshake with peer (a host name): checks that the peer's
  // certificate is the one issued to that name, and resumes the last session.
  Status PrepareClient(SSL* ssl, const std::string& peer);
  // After a client exchange: keeps its session for the next call to peer.
  void KeepSession(SSL* ssl, const std::string& peer);

 private:
  PoolTls(TlsPaths paths, HostTls files);
  TlsPaths paths_;
  HostTls files_;
  boost::asio::ssl::context server_, client_;
  std::mutex mu_;
  std::map<std::string, SSL_SESSION*> sessions_;  // guarded by mu_
};

// The pool host name a TLS peer proved with a certificate from the pool's CA,
// or "" when it presented none.
std::string PeerName(SSL* ssl);

// A client context that trusts only the CA in ca_file (the CLI's, without a
// certificate of its own). Empty ca_file: the system's CAs.
Result<std::shared_ptr<boost::asio::ssl::context>> ClientContext(const std::string& ca_file);

}  // namespace pampa::tls
