#include "cluster/join.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/units.h"
#include "tls/tls_context.h"

namespace pampa {

namespace {

using json = nlohmann::json;

constexpr const char* kTokens = "cluster/join-tokens/";
constexpr const char* kCaKey = "cluster/ca";

std::string Hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

Result<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    return Status::Internal("no random bytes from OpenSSL");
  }
  return Hex(reinterpret_cast<const unsigned char*>(raw.data()), bytes);
}

// "" when OpenSSL fails (never equal to a stored hash).
std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr) != 1) return "";
  return Hex(md, n);
}

bool IpLiteral(const std::string& a) {
  unsigned char buf[16];
  return inet_pton(AF_INET, a.c_str(), buf) == 1 || inet_pton(AF_INET6, a.c_str(), buf) == 1;
}

constexpr const char* kUsedOrExpired =
    "join token is wrong, used or expired: make a new one with 'pampa host join-token' on a host of the pool";

}  // namespace

PoolJoins::PoolJoins(Store& store, std::shared_ptr<tls::PoolTls> tls, std::string host, std::string etcd)
    : store_(store), tls_(std::move(tls)), host_(std::move(host)), etcd_(std::move(etcd)) {}

Result<std::pair<std::string, std::string>> PoolJoins::Ca() const {
  if (!tls_) return Status::NotFound("this pool has no certificate authority (its hosts talk plain HTTP)");
  return std::make_pair(tls_->files().ca.cert, tls_->files().ca_sha256);
}

Result<JoinToken> PoolJoins::MakeToken(std::chrono::seconds ttl) {
  if (!tls_) return Status::Conflict("this pool has no certificate authority: hosts join it by --cluster alone");
  if (tls_->files().ca.key.empty()) {
    return Status::Conflict("this host has no copy of the pool CA's key (" + tls_->paths().ca_key() +
                            "): make the token on another host of the pool");
  }
  if (ttl < std::chrono::seconds(1) || ttl > std::chrono::hours(24 * 7)) {
    return Status::Invalid("a join token lives from 1 s to 7 days (ttl_s)");
  }
  PAMPA_ASSIGN_OR_RETURN(std::string id, RandomHex(4));
  PAMPA_ASSIGN_OR_RETURN(std::string secret, RandomHex(32));
  JoinToken t{id + "." + secret, tls_->files().ca_sha256, NowMs() + ttl.count() * 1000};
  // The lease removes the record a little after the token expires (leases
  // live at least 2 s); Redeem checks the expiry itself.
  PAMPA_ASSIGN_OR_RETURN(int64_t lease, store_.GrantLease(std::max(ttl, std::chrono::seconds(2))));
  json record = {{"sha256", Sha256Hex(secret)}, {"expires_ms", t.expires_ms}, {"by", host_}};
  PAMPA_RETURN_IF_ERROR(store_.PutWithLease(kTokens + id, record.dump(), lease));
  return t;
}

Result<JoinGrant> PoolJoins::Redeem(const std::string& token, const std::string& name, const std::string& address) {
  if (!tls_) return Status::Conflict("this pool has no certificate authority: hosts join it by --cluster alone");
  auto dot = token.find('.');
  if (dot == std::string::npos || dot == 0 || token.find_first_not_of("0123456789abcdef.") != std::string::npos) {
    return Status::Unauthorized(kUsedOrExpired);
  }
  std::string id = token.substr(0, dot), secret = token.substr(dot + 1);
  PAMPA_ASSIGN_OR_RETURN(auto found, store_.GetVersioned(kTokens + id));
  if (!found) return Status::Unauthorized(kUsedOrExpired);
  auto record = json::parse(found->value, nullptr, false);
  std::string want = record.is_object() ? record.value("sha256", "") : "";
  std::string got = Sha256Hex(secret);
  if (got.size() != 64 || want.size() != got.size() || CRYPTO_memcmp(want.data(), got.data(), got.size()) != 0 ||
      record.value("expires_ms", int64_t{0}) < NowMs()) {
    return Status::Unauthorized(kUsedOrExpired);
  }
  PAMPA_RETURN_IF_ERROR(ValidateName("host", name));
  if (!IpLiteral(address)) {
    return Status::Invalid("address '" + address + "' must be the new host's IP address (e.g. 10.0.0.7)");
  }
  PAMPA_ASSIGN_OR_RETURN(auto existing, store_.Get("hosts/" + name + "/info"));
  if (existing) {
    return Status::Conflict("a host named " + name +
                            " is in the pool already: pick another name, or remove it first ('pampa host remove " +
                            name + "')");
  }
  PAMPA_ASSIGN_OR_RETURN(tls::Issued cert, tls::IssueCert(tls_->files().ca, name, {address}));
  PAMPA_ASSIGN_OR_RETURN(std::string not_after, tls::NotAfter(cert.cert));
  PAMPA_ASSIGN_OR_RETURN(std::string sha, tls::Fingerprint(cert.cert));
  json issued = {{"sha256", sha}, {"not_after", not_after}, {"by", host_}, {"address", address}};
  // Spends the token: of two redeemers only one sees it unchanged.
  // Of two redeemers of one token, or two hosts joining under one name, only one wins.
  auto spent = store_.Commit(Txn()
                                 .IfModRevision(kTokens + id, found->mod_revision)
                                 .IfAbsent("cluster/certs/" + name)
                                 .Delete(kTokens + id)
                                 .Put("cluster/certs/" + name, issued.dump()));
  if (!spent.ok()) {
    if (spent.status().code() != ErrorCode::kConflict) return spent.status();
    PAMPA_ASSIGN_OR_RETURN(auto taken, store_.Get("cluster/certs/" + name));
    if (taken) {
      return Status::Conflict("host name " + name + " was given to a host that joined already: pick another, or " +
                              "'pampa host remove " + name + "' first");
    }
    return Status::Unauthorized(kUsedOrExpired);
  }
  return JoinGrant{tls_->files().ca.cert, tls_->files().ca.key, cert.cert, cert.key, etcd_};
}

Status CheckPoolCa(Store& store, const std::string& ca_pem) {
  Status st = store.Create(kCaKey, ca_pem);
  if (st.ok() || st.code() != ErrorCode::kConflict) return st;
  PAMPA_ASSIGN_OR_RETURN(auto recorded, store.Get(kCaKey));
  if (recorded && *recorded != ca_pem) {
    auto theirs = tls::Fingerprint(*recorded), ours = tls::Fingerprint(ca_pem);
    return Status::Conflict("this etcd belongs to another pool (its CA is " +
                            (theirs.ok() ? *theirs : std::string("unreadable")) + ", this host's is " +
                            (ours.ok() ? *ours : std::string("unreadable")) +
                            "): join that pool with 'pampa host join', or use another etcd");
  }
  return Status::Ok();
}

}  // namespace pampa
