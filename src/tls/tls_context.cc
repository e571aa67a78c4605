#include "tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace pampa::tls {

namespace ssl = boost::asio::ssl;

namespace {

// Both ends: TLS 1.2 at least, this host's certificate chain and key, and
// the pool's CA as the only one trusted.
Status Configure(ssl::context& c, const TlsPaths& paths) {
  SSL_CTX_set_min_proto_version(c.native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  c.use_certificate_chain_file(paths.host(), ec);
  if (!ec) c.use_private_key_file(paths.host_key(), ssl::context::pem, ec);
  if (!ec) c.load_verify_file(paths.ca(), ec);
  if (ec) return Status::Invalid("cannot load the pool certificate from " + paths.dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

PoolTls::PoolTls(TlsPaths paths, HostTls files)
    : paths_(std::move(paths)),
      files_(std::move(files)),
      server_(ssl::context::tls_server),
      client_(ssl::context::tls_client) {}

PoolTls::~PoolTls() {
  for (auto& [peer, session] : sessions_) SSL_SESSION_free(session);
}

Result<std::shared_ptr<PoolTls>> PoolTls::Load(const TlsPaths& paths) {
  PAMPA_ASSIGN_OR_RETURN(HostTls files, LoadHostFiles(paths));
  std::shared_ptr<PoolTls> t(new PoolTls(paths, std::move(files)));
  PAMPA_RETURN_IF_ERROR(Configure(t->server_, paths));
  PAMPA_RETURN_IF_ERROR(Configure(t->client_, paths));
  // Ask for a client certificate but let clients without one in: the
  // request's handler decides (PeerName). One that is presented must verify.
  t->server_.set_verify_mode(ssl::verify_peer);
  SSL_CTX_set_client_CA_list(t->server_.native_handle(), SSL_load_client_CA_file(paths.ca().c_str()));
  static const unsigned char kSessionContext[] = "pampad";
  SSL_CTX_set_session_id_context(t->server_.native_handle(), kSessionContext, sizeof kSessionContext - 1);
  t->client_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  // Sessions are kept per peer by KeepSession, not in OpenSSL's cache.
  SSL_CTX_set_session_cache_mode(t->client_.native_handle(), SSL_SESS_CACHE_OFF);
  return t;
}

Status PoolTls::PrepareClient(SSL* ssl, const std::string& peer) {
  // The certificate must name the host we meant.
  if (SSL_set1_host(ssl, peer.c_str()) != 1) return Status::Internal("cannot check the name of host " + peer);
  std::lock_guard lock(mu_);
  auto it = sessions_.find(peer);
  if (it != sessions_.end()) SSL_set_session(ssl, it->second);
  return Status::Ok();
}

void PoolTls::KeepSession(SSL* ssl, const std::string& peer) {
  // Freed without a shutdown, OpenSSL takes the connection for broken and its
  // session as not to be resumed; the exchange ended well, so say so.
  SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_SESSION* session = SSL_get1_session(ssl);
  if (session == nullptr) return;
  if (!SSL_SESSION_is_resumable(session)) {
    SSL_SESSION_free(session);
    return;
  }
  std::lock_guard lock(mu_);
  auto [it, added] = sessions_.emplace(peer, session);
  if (!added) {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
}

std::string PeerName(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return "";
  std::string name;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans) && name.empty(); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
    if (n->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = n->d.dNSName;
    name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }
  GENERAL_NAMES_free(sans);
  return name;
}

Result<std::shared_ptr<ssl::context>> ClientContext(const std::string& ca_file) {
  auto c = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(c->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    c->set_default_verify_paths(ec);
  } else {
    c->load_verify_file(ca_file, ec);
  }
  if (ec) return Status::Invalid("cannot load the CA certificate " + ca_file + ": " + ec.message());
  c->set_verify_mode(ssl::verify_peer);
  return c;
}

}  // namespace pampa::tls
