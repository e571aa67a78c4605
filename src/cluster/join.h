// Letting a new host into a pool with certificates: one-time join tokens
// (`pampa host join-token` on a host of the pool) that a new host redeems
// for the pool's CA and a certificate of its own (`pampa host join`).
//
// A token is "ID.SECRET": the store keeps only SECRET's SHA-256 under
// cluster/join-tokens/ID, on a lease that removes it at expiry; redeeming it
// deletes it in the same transaction that records the new host's
// certificate, so exactly one redeemer wins.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"
#include "store/store.h"

namespace pampa {

namespace tls {
class PoolTls;
}

struct JoinToken {
  std::string token;
  std::string ca_sha256;
  int64_t expires_ms = 0;
};

// What a new host takes home: the pool's CA and its key (any host can let
// the next one join), its certificate and key, and etcd's addresses.
struct JoinGrant {
  std::string ca, ca_key, cert, key, etcd;
};

class PoolJoins {
 public:
  // tls: this host's pool certificate (null: a pool without certificates,
  // which nobody can join this way). etcd: the endpoints this host uses.
  PoolJoins(Store& store, std::shared_ptr<tls::PoolTls> tls, std::string host, std::string etcd);

  // The pool's CA certificate (PEM) and its fingerprint; kNotFound without TLS.
  Result<std::pair<std::string, std::string>> Ca() const;
  Result<JoinToken> MakeToken(std::chrono::seconds ttl);
  // kUnauthorized for a token that is wrong, used or expired; kConflict for
  // a name that is a host of the pool already; kInvalid for a bad name or
  // address.
  Result<JoinGrant> Redeem(const std::string& token, const std::string& name, const std::string& address);

 private:
  Store& store_;
  std::shared_ptr<tls::PoolTls> tls_;
  std::string host_, etcd_;
};

// The pool's CA is recorded in the store at the first start of its first
// host; a host whose CA differs belongs to another pool and must not start.
Status CheckPoolCa(Store& store, const std::string& ca_pem);

}  // namespace pampa
