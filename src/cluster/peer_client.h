// Calls from one pampad to another's API (a forwarded VM action, a migration
// step), with the pool's token, each with a timeout: over HTTPS with this
// host's pool certificate where the pool has them (tls/tls_context.h).
#pragma once

#include <chrono>
#include <string>

#include "base/status.h"

namespace pampa::tls {
class PoolTls;
}

namespace pampa {

struct PeerReply {
  int status = 0;
  std::string body;
  std::string content_type;
};

struct PeerRequest {
  std::string method = "GET";
  std::string target;  // path and query, e.g. "/api/v1/vms/web?x=1"
  std::string body;    // JSON, or empty
  // Names the calling host; the callee then never forwards the request again.
  std::string forwarded_from;
};

// Another host of the pool: its advertised API address ("https://HOST:PORT",
// or "http://" in a pool without certificates), its name (which its
// certificate must carry) and this host's TLS (required for https).
struct PeerAddress {
  std::string url;
  std::string name;
  tls::PoolTls* tls = nullptr;
};

// Fails with kUnavailable when the peer cannot be reached, does not prove it
// is `to.name` of this pool, or does not answer in timeout; any HTTP answer
// (also an error status) is a PeerReply.
Result<PeerReply> CallPeer(const PeerAddress& to, const std::string& token, const PeerRequest& req,
                           std::chrono::milliseconds timeout);

// PUTs the file at `file` as the body of target (a volume moving between
// hosts, streamed from disk); the same failures as CallPeer.
Result<PeerReply> PutFileToPeer(const PeerAddress& to, const std::string& token, const std::string& target,
                                const std::string& file, std::chrono::milliseconds timeout);

// Splits "http://HOST:PORT" or "https://HOST:PORT" (HOST may be [v6]);
// kInvalid otherwise. tls (may be null): whether it is https.
Status ParsePeerUrl(const std::string& url, std::string* host, std::string* port, bool* tls = nullptr);

}  // namespace pampa
