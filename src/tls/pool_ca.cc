#include "tls/pool_ca.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <memory>

#include "base/fs.h"
#include "base/log.h"

namespace pampa::tls {
namespace {

// unique_ptr deleters for OpenSSL's free functions.
template <auto F>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    F(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Free<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using KeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX_free>>;
using CertPtr = std::unique_ptr<X509, Free<X509_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Free<X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Free<GENERAL_NAMES_free>>;

constexpr int kCaDays = 3650;    // 10 years
constexpr int kHostDays = 1825;  // 5 years
// Backdated so a peer whose clock is a little behind still accepts a
// certificate issued a moment ago.
constexpr long kBackdateSeconds = 3600;

// Drains OpenSSL's error queue of this thread into one line.
std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

Status SslFail(ErrorCode code, const std::string& what) { return Status(code, what + ": " + SslErrors()); }

// Never prompts on a terminal for an encrypted key: our keys are not encrypted.
int NoPassphrase(char*, int, int, void*) { return 0; }

BioPtr MemBio(const std::string& pem) { return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))); }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

// The first certificate of a PEM text; `what` names it in errors.
Result<CertPtr> ReadCert(const std::string& pem, const std::string& what) {
  ERR_clear_error();
  BioPtr bio = MemBio(pem);
  if (!bio) return SslFail(ErrorCode::kInternal, "cannot read " + what);
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return SslFail(ErrorCode::kInvalid, what + " is not a PEM certificate");
  return cert;
}

Result<KeyPtr> ReadKey(const std::string& pem, const std::string& what) {
  ERR_clear_error();
  BioPtr bio = MemBio(pem);
  if (!bio) return SslFail(ErrorCode::kInternal, "cannot read " + what);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) return SslFail(ErrorCode::kInvalid, what + " is not a PEM private key");
  return key;
}

Result<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return SslFail(ErrorCode::kInternal, "cannot encode a certificate");
  return BioText(bio.get());
}

// PKCS#8 ("BEGIN PRIVATE KEY"): GnuTLS (QEMU), Go (etcd) and OpenSSL all read it.
Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return SslFail(ErrorCode::kInternal, "cannot encode a private key");
  return BioText(bio.get());
}

Result<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return SslFail(ErrorCode::kInternal, "cannot generate a P-256 key");
  return key;
}

// QEMU 7.2 loading a server's tls-creds-x509 from a directory without
// dh-params.pem generates 2048-bit DH parameters on every load: 40-906 ms
// here (a migration's target loads it while the source waits; it made a
// TLS migration's total 1.14x by hand's). RFC 7919's ffdhe2048 group, a
// fixed one (nothing to generate), loads in 1-2 ms.
Status WriteQemuDhParams(const std::string& path) {
  KeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  EVP_PKEY* made = nullptr;
  if (!ctx || EVP_PKEY_paramgen_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_dh_nid(ctx.get(), NID_ffdhe2048) != 1 ||
      EVP_PKEY_paramgen(ctx.get(), &made) != 1)
    return SslFail(ErrorCode::kInternal, "cannot make QEMU's DH parameters (ffdhe2048)");
  KeyPtr params(made);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_Parameters(bio.get(), params.get()) != 1)
    return SslFail(ErrorCode::kInternal, "cannot encode QEMU's DH parameters");
  return WriteFileAtomic(path, BioText(bio.get()), 0644);
}

Status AddNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()), -1,
                                 -1, 0) != 1)
    return SslFail(ErrorCode::kInternal, std::string("cannot set the certificate's ") + field + " '" + value + "'");
  return Status::Ok();
}

Status AddExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return SslFail(ErrorCode::kInternal, std::string("cannot add ") + OBJ_nid2sn(nid) + "=" + value);
  return Status::Ok();
}

// A v3 certificate for `key` with a random 159-bit serial, valid from an hour
// ago for `days`, subject `subject`; not yet signed nor extended.
Result<CertPtr> NewCert(EVP_PKEY* key, X509_NAME* subject, int days) {
  CertPtr cert(X509_new());
  BnPtr serial(BN_new());
  if (!cert || !serial) return SslFail(ErrorCode::kInternal, "cannot allocate a certificate");
  // 159 bits: positive and within the 20 octets RFC 5280 allows.
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) ||
      !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) ||
      X509_set_subject_name(cert.get(), subject) != 1 || X509_set_pubkey(cert.get(), key) != 1)
    return SslFail(ErrorCode::kInternal, "cannot fill in a certificate");
  return cert;
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return SslFail(ErrorCode::kInternal, "cannot sign a certificate");
  return Status::Ok();
}

// Host names become a CN and a DNS SAN and are typed on command lines.
Status ValidateHostName(const std::string& name) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid("invalid host name '" + name + "' for a certificate: " + why +
                           " (use 1-63 of letters, digits, '-', '.' and '_', starting with a letter or digit)");
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > 63) return bad("it is longer than 63 characters");
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return bad("it must start with a letter or digit");
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
      return bad(std::string("character '") + c + "' is not allowed");
  }
  return Status::Ok();
}

// Addresses go into an OpenSSL config value ("DNS:a,IP:b"), where a comma
// would start another name.
Status ValidateAddress(const std::string& address) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid("invalid address '" + address + "' for a certificate: " + why +
                           " (use an IP address such as 10.0.0.5 or fd00::5, or a DNS name)");
  };
  if (address.empty()) return bad("it is empty");
  for (char c : address) {
    auto u = static_cast<unsigned char>(c);
    if (c == ',') return bad("it contains a comma");
    if (std::isspace(u)) return bad("it contains a space");
    if (std::iscntrl(u)) return bad("it contains a control character");
  }
  return Status::Ok();
}

bool IsIpLiteral(const std::string& address) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buf) == 1 || inet_pton(AF_INET6, address.c_str(), buf) == 1;
}

std::string Asn1Text(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
}

// Reads a file that must be there once host.pem is: its absence means the
// tls directory is incomplete, not that the host runs without TLS.
Result<std::string> ReadRequired(const std::string& path, bool secret, const std::string& what) {
  if (!Exists(path))
    return Status::Invalid(what + " " + path + " is missing while host.pem exists; restore it or issue this host's " +
                           "certificate again");
  return secret ? ReadPrivateFile(path, what) : ReadFile(path);
}

}  // namespace

Result<Issued> MakeCa(const std::string& pool_id) {
  PAMPA_ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  NamePtr subject(X509_NAME_new());
  if (!subject) return SslFail(ErrorCode::kInternal, "cannot allocate a name");
  PAMPA_RETURN_IF_ERROR(AddNameEntry(subject.get(), "CN", "pampa pool CA " + pool_id));
  PAMPA_ASSIGN_OR_RETURN(CertPtr cert, NewCert(key.get(), subject.get(), kCaDays));
  if (X509_set_issuer_name(cert.get(), subject.get()) != 1) return SslFail(ErrorCode::kInternal, "cannot set issuer");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"));
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  PAMPA_RETURN_IF_ERROR(Sign(cert.get(), key.get()));
  Issued out;
  PAMPA_ASSIGN_OR_RETURN(out.cert, CertPem(cert.get()));
  PAMPA_ASSIGN_OR_RETURN(out.key, KeyPem(key.get()));
  return out;
}

Result<Issued> IssueCert(const Issued& ca, const std::string& name, const std::vector<std::string>& addresses) {
  PAMPA_RETURN_IF_ERROR(ValidateHostName(name));
  for (const auto& a : addresses) PAMPA_RETURN_IF_ERROR(ValidateAddress(a));
  PAMPA_ASSIGN_OR_RETURN(CertPtr ca_cert, ReadCert(ca.cert, "the pool CA certificate"));
  PAMPA_ASSIGN_OR_RETURN(KeyPtr ca_key, ReadKey(ca.key, "the pool CA key"));
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1)
    return SslFail(ErrorCode::kInvalid, "the pool CA key does not belong to the pool CA certificate");

  PAMPA_ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  NamePtr subject(X509_NAME_new());
  if (!subject) return SslFail(ErrorCode::kInternal, "cannot allocate a name");
  PAMPA_RETURN_IF_ERROR(AddNameEntry(subject.get(), "CN", name));
  PAMPA_RETURN_IF_ERROR(AddNameEntry(subject.get(), "O", "pampa pool"));
  PAMPA_ASSIGN_OR_RETURN(CertPtr cert, NewCert(key.get(), subject.get(), kHostDays));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1)
    return SslFail(ErrorCode::kInternal, "cannot set issuer");

  std::string san = "DNS:" + name;
  for (const auto& a : addresses) {
    if (a == name) continue;
    san += (IsIpLiteral(a) ? ",IP:" : ",DNS:") + a;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca_cert.get(), cert.get(), nullptr, nullptr, 0);
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  // QEMU (GnuTLS) refuses a critical keyUsage without keyEncipherment, even
  // for an EC key that cannot encipher.
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  // Both: one certificate serves QEMU's server and client ends, and etcd's
  // gateway presents its server certificate as a client.
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth"));
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_subject_alt_name, san));
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_subject_key_identifier, "hash"));
  PAMPA_RETURN_IF_ERROR(AddExt(cert.get(), &ctx, NID_authority_key_identifier, "keyid"));
  PAMPA_RETURN_IF_ERROR(Sign(cert.get(), ca_key.get()));
  Issued out;
  PAMPA_ASSIGN_OR_RETURN(out.cert, CertPem(cert.get()));
  PAMPA_ASSIGN_OR_RETURN(out.key, KeyPem(key.get()));
  return out;
}

Result<std::string> Fingerprint(const std::string& cert_pem) {
  PAMPA_ASSIGN_OR_RETURN(CertPtr cert, ReadCert(cert_pem, "the certificate"));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &n) != 1)
    return SslFail(ErrorCode::kInternal, "cannot hash the certificate");
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

Result<std::string> CertName(const std::string& cert_pem) {
  PAMPA_ASSIGN_OR_RETURN(CertPtr cert, ReadCert(cert_pem, "the certificate"));
  GeneralNamesPtr sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(sans.get(), i);
    if (gen->type == GEN_DNS) return Asn1Text(gen->d.dNSName);
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) return Status::Invalid("the certificate names no host: it has neither a DNS name nor a CN");
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx)));
  if (len < 0) return SslFail(ErrorCode::kInvalid, "cannot read the certificate's CN");
  std::string out(reinterpret_cast<char*>(utf8), len);
  OPENSSL_free(utf8);
  return out;
}

Result<std::string> NotAfter(const std::string& cert_pem) {
  PAMPA_ASSIGN_OR_RETURN(CertPtr cert, ReadCert(cert_pem, "the certificate"));
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1)
    return SslFail(ErrorCode::kInvalid, "cannot read the certificate's expiry");
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf);
}

Status WriteHostFiles(const TlsPaths& paths, const Issued& ca, const Issued& host) {
  PAMPA_RETURN_IF_ERROR(MakeDirs(paths.dir, 0700));
  PAMPA_RETURN_IF_ERROR(MakeDirs(paths.qemu_dir(), 0700));
  const std::string q = paths.qemu_dir();
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(q + "/ca-cert.pem", ca.cert, 0644));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(q + "/server-cert.pem", host.cert, 0644));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(q + "/server-key.pem", host.key, 0600));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(q + "/client-cert.pem", host.cert, 0644));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(q + "/client-key.pem", host.key, 0600));
  PAMPA_RETURN_IF_ERROR(WriteQemuDhParams(q + "/dh-params.pem"));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(paths.ca_key(), ca.key, 0600));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(paths.host_key(), host.key, 0600));
  // The chain after the leaf, so a TLS server that loads host.pem sends it.
  std::string chain = host.cert;
  if (!chain.empty() && chain.back() != '\n') chain += '\n';
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(paths.host(), chain + ca.cert, 0644));
  // Last: FormPool refuses a directory that holds ca.pem, so a form that
  // stopped half-way can simply be run again.
  return WriteFileAtomic(paths.ca(), ca.cert, 0644);
}

Result<HostTls> LoadHostFiles(const TlsPaths& paths) {
  if (!Exists(paths.host()))
    return Status::NotFound("this host has no pool certificate (" + paths.host() +
                            "): form a pool (pampad form-pool) or join one (pampa host join) to use TLS");
  HostTls out;
  PAMPA_ASSIGN_OR_RETURN(std::string host_pem, ReadFile(paths.host()));
  PAMPA_ASSIGN_OR_RETURN(out.ca.cert, ReadRequired(paths.ca(), false, "the pool CA certificate"));
  PAMPA_ASSIGN_OR_RETURN(out.host.key, ReadRequired(paths.host_key(), true, "this host's key"));
  // A host may hold the pool's certificates without the CA key.
  if (Exists(paths.ca_key())) {
    PAMPA_ASSIGN_OR_RETURN(out.ca.key, ReadPrivateFile(paths.ca_key(), "the pool CA key"));
  }

  PAMPA_ASSIGN_OR_RETURN(CertPtr ca, ReadCert(out.ca.cert, paths.ca()));
  PAMPA_ASSIGN_OR_RETURN(CertPtr leaf, ReadCert(host_pem, paths.host()));
  PAMPA_ASSIGN_OR_RETURN(KeyPtr key, ReadKey(out.host.key, paths.host_key()));
  if (X509_check_private_key(leaf.get(), key.get()) != 1)
    return SslFail(ErrorCode::kInvalid, paths.host_key() + " is not the key of the certificate " + paths.host());
  if (!out.ca.key.empty()) {
    PAMPA_ASSIGN_OR_RETURN(KeyPtr ca_key, ReadKey(out.ca.key, paths.ca_key()));
    if (X509_check_private_key(ca.get(), ca_key.get()) != 1)
      return SslFail(ErrorCode::kInvalid, paths.ca_key() + " is not the key of the CA " + paths.ca());
  }

  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr) != 1)
    return SslFail(ErrorCode::kInternal, "cannot set up the certificate check");
  if (X509_verify_cert(ctx.get()) != 1) {
    ERR_clear_error();
    return Status::Invalid("this host's certificate " + paths.host() + " does not verify against the pool CA " +
                           paths.ca() + ": " + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())) +
                           " (issue the host's certificate again from the pool's CA)");
  }

  PAMPA_ASSIGN_OR_RETURN(out.host.cert, CertPem(leaf.get()));
  PAMPA_ASSIGN_OR_RETURN(out.name, CertName(out.host.cert));
  PAMPA_ASSIGN_OR_RETURN(out.ca_sha256, Fingerprint(out.ca.cert));
  PAMPA_ASSIGN_OR_RETURN(out.not_after, NotAfter(out.host.cert));
  // Pools formed before QEMU's directory had them (QEMU works without, slowly).
  if (std::string dh = paths.qemu_dir() + "/dh-params.pem"; !Exists(dh)) {
    if (Status st = WriteQemuDhParams(dh); !st.ok()) log::Warn("{}", st.message());
  }
  return out;
}

Status FormPool(const TlsPaths& paths, const std::string& host, const std::vector<std::string>& addresses,
                const std::vector<std::string>& etcd_addresses) {
  if (Exists(paths.ca()))
    return Status::Conflict(paths.dir + " already holds a pool CA (" + paths.ca() +
                            "): this host belongs to a pool; remove the directory first to form a new one");
  unsigned char id[4];
  if (RAND_bytes(id, sizeof id) != 1) return SslFail(ErrorCode::kInternal, "cannot draw a pool id");
  char pool_id[9];
  std::snprintf(pool_id, sizeof pool_id, "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);

  // Everything is issued before anything is written, so a bad name or
  // address leaves the directory as it was.
  PAMPA_ASSIGN_OR_RETURN(Issued ca, MakeCa(pool_id));
  PAMPA_ASSIGN_OR_RETURN(Issued cert, IssueCert(ca, host, addresses));
  if (!etcd_addresses.empty()) {
    PAMPA_ASSIGN_OR_RETURN(Issued etcd, IssueCert(ca, "etcd", etcd_addresses));
    PAMPA_RETURN_IF_ERROR(MakeDirs(paths.dir, 0700));
    PAMPA_RETURN_IF_ERROR(MakeDirs(paths.dir + "/etcd", 0700));
    PAMPA_RETURN_IF_ERROR(WriteFileAtomic(paths.etcd_key(), etcd.key, 0600));
    PAMPA_RETURN_IF_ERROR(WriteFileAtomic(paths.etcd_cert(), etcd.cert, 0644));
  }
  return WriteHostFiles(paths, ca, cert);
}

}  // namespace pampa::tls
