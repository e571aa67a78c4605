// The pool's certificate authority: the keys and certificates that let the
// hosts of a pool trust each other (API calls between hosts, etcd, QEMU's
// migration and NBD streams). OpenSSL 3; ECDSA P-256 keys, SHA-256 signatures.
//
// A host's files live in DATA_DIR/tls (mode 0700):
//   ca.pem, ca-key.pem          the pool CA (every host holds its key: any host
//                               can let a new one join; see docs/design.md)
//   host.pem, host-key.pem      this host's certificate (then the CA) and key
//   qemu/                       the same, named as QEMU's tls-creds-x509 wants
//   etcd/server.pem, -key.pem   etcd's own certificate (the forming host only)
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace pampa::tls {

// The file names inside DATA_DIR/tls.
struct TlsPaths {
  explicit TlsPaths(std::string data_dir) : dir(std::move(data_dir) + "/tls") {}
  std::string dir;
  std::string ca() const { return dir + "/ca.pem"; }
  std::string ca_key() const { return dir + "/ca-key.pem"; }
  std::string host() const { return dir + "/host.pem"; }
  std::string host_key() const { return dir + "/host-key.pem"; }
  std::string qemu_dir() const { return dir + "/qemu"; }
  std::string etcd_cert() const { return dir + "/etcd/server.pem"; }
  std::string etcd_key() const { return dir + "/etcd/server-key.pem"; }
};

// A certificate and its private key, both PEM.
struct Issued {
  std::string cert;
  std::string key;
};

// A new pool CA: CN "pampa pool CA <pool_id>", valid 10 years.
Result<Issued> MakeCa(const std::string& pool_id);

// A certificate for `name` signed by the CA (ca.cert/ca.key PEM): CN=name,
// O="pampa pool", SANs DNS:name plus every entry of addresses (an IP literal
// becomes IP:, anything else DNS:), serverAuth and clientAuth, valid 5 years.
// kInvalid when name or an address is malformed or the CA does not load.
Result<Issued> IssueCert(const Issued& ca, const std::string& name, const std::vector<std::string>& addresses);

// "sha256:<64 hex digits>" of a certificate's DER (the CA's fingerprint a
// joining host checks before it trusts what the pool sends).
Result<std::string> Fingerprint(const std::string& cert_pem);

// The first DNS subject-alternative name of a certificate (the pool host
// name it was issued to), or its CN when it has none.
Result<std::string> CertName(const std::string& cert_pem);

// Expiry of a certificate as "YYYY-MM-DDTHH:MM:SSZ".
Result<std::string> NotAfter(const std::string& cert_pem);

// Writes a host's files under paths.dir: the CA and its key, the host's
// certificate (followed by the CA) and key, and qemu/ (ca-cert.pem,
// server-cert.pem, server-key.pem, client-cert.pem, client-key.pem,
// dh-params.pem: RFC 7919's ffdhe2048, which QEMU would otherwise generate
// each time it loads a server's credentials). Keys are
// 0600, directories 0700; each file is replaced atomically.
Status WriteHostFiles(const TlsPaths& paths, const Issued& ca, const Issued& host);

// A host's TLS files as loaded and checked: the certificate chains to the CA
// and matches the key. Missing files: kNotFound (the host is not in a pool
// with TLS).
struct HostTls {
  Issued ca;
  Issued host;            // host.cert is the leaf only
  std::string name;       // the host name in the certificate
  std::string ca_sha256;  // Fingerprint(ca.cert)
  std::string not_after;  // of the host's certificate
};
// Also writes qemu/dh-params.pem where it is missing (a pool formed before
// WriteHostFiles wrote it); failing that, only a warning: QEMU works
// without it, slowly.
Result<HostTls> LoadHostFiles(const TlsPaths& paths);

// Forms a pool on its first host: a new CA and the host's certificate
// (WriteHostFiles) and, when etcd_addresses is not empty, etcd's server
// certificate for those addresses (it also carries clientAuth: etcd's JSON
// gateway presents it to etcd's own gRPC). Refuses when paths.dir already
// holds a CA.
Status FormPool(const TlsPaths& paths, const std::string& host, const std::vector<std::string>& addresses,
                const std::vector<std::string>& etcd_addresses);

}  // namespace pampa::tls
