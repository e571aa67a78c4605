// Calls from one pampad to another's API (a forwarded VM action, a migration
// step), over HTTP with the pool's token, each with a timeout.
#pragma once

#include <chrono>
#include <string>

#include "base/status.h"

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

// url: "http://HOST:PORT" (the peer's advertised API address). Fails with
// kUnavailable when the peer cannot be reached or does not answer in timeout;
// any HTTP answer (also an error status) is a PeerReply.
Result<PeerReply> CallPeer(const std::string& url, const std::string& token, const PeerRequest& req,
                           std::chrono::milliseconds timeout);

// PUTs the file at `file` as the body of target (a volume moving between
// hosts, streamed from disk); the same failures as CallPeer.
Result<PeerReply> PutFileToPeer(const std::string& url, const std::string& token, const std::string& target,
                                const std::string& file, std::chrono::milliseconds timeout);

// Splits "http://HOST:PORT" (HOST may be [v6]); kInvalid otherwise.
Status ParsePeerUrl(const std::string& url, std::string* host, std::string* port);

}  // namespace pampa
