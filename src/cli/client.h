// The pampa CLI's connection to pampad: REST calls over the unix socket (the
// default, root only) or over TCP (HTTPS on a host with a pool certificate)
// with a bearer token, and task waiting with a progress bar. The CLI knows
// only the API's JSON wire format.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace pampa::cli {

// Where the CLI trusts pampad's certificate from when --ca is not given and
// this file is readable (a host of the pool); otherwise the system's CAs.
inline constexpr const char* kDefaultCaFile = "/var/lib/pampa/tls/ca.pem";

struct Endpoint {
  std::string unix_socket = "/run/pampa/pampa.sock";
  std::string host, port;  // set when --url is given
  std::string token;
  bool tls = false;        // https://: pampad's certificate is checked against the CA below
  std::string ca_file;     // the CA to trust (--ca); empty: the system's CAs
  std::string ca_pem;      // a CA given in memory, trusted instead of ca_file (host join)
  bool no_verify = false;  // accept any certificate: only for host join's first fetch of the
                           // pool CA, whose fingerprint the user then checks
  bool tcp() const { return !host.empty(); }
  // "host:port" ("[v6]:port"), or the unix socket's path: for messages.
  std::string where() const {
    if (!tcp()) return unix_socket;
    return (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":" + port;
  }
};

struct ApiResponse {
  int status = 0;
  nlohmann::json body;
  std::string raw;
};

// A request that gets no answer fails after this long with a message saying so
// (long work is a task: no request needs minutes). PAMPA_TIMEOUT (seconds)
// overrides it; connecting has its own, shorter limit.
inline constexpr std::chrono::seconds kDefaultRequestTimeout{60};
inline constexpr std::chrono::seconds kConnectTimeout{5};
std::chrono::seconds RequestTimeout();

class ApiClient {
 public:
  explicit ApiClient(Endpoint ep) : ep_(std::move(ep)) {}
  // Requests that legitimately wait (vm exec waits for the guest's command)
  // widen the request timeout for this client.
  ApiClient& WithTimeout(std::chrono::seconds t) {
    timeout_ = t;
    return *this;
  }
  // Sends one request; an HTTP error status becomes a Status with the server's message.
  Result<nlohmann::json> Call(const std::string& method, const std::string& path, const nlohmann::json& body = nullptr);
  // The raw response body (text endpoints such as the console log).
  Result<std::string> GetText(const std::string& path);
  // A request whose answer is a stream (a tar of files restored from a
  // backup): each piece of the body goes to sink as it arrives. An error
  // status, or a "Pampa-Error" trailer after the body, is an error with
  // pampad's message; a sink error stops the download.
  // headers, when given, gets the answer's header fields before the first piece.
  Status Download(const std::string& method, const std::string& path, const nlohmann::json& body,
                  const std::function<Status(std::string_view)>& sink,
                  std::map<std::string, std::string>* headers = nullptr);
  // Polls a task until it ends, drawing a progress bar on a terminal. Returns
  // the finished task; a failed task is an error with its message.
  Result<nlohmann::json> WaitTask(const std::string& id, bool quiet = false);
  const Endpoint& endpoint() const { return ep_; }

 private:
  Result<ApiResponse> Send(const std::string& method, const std::string& path, const std::string& body);
  Endpoint ep_;
  std::chrono::seconds timeout_{0};  // 0: RequestTimeout()
};

// Parses "http://host[:port]" or "https://host[:port]" (port 8006 when left
// out; an IPv6 host in brackets) into the endpoint.
Status ParseUrl(const std::string& url, Endpoint* ep);

}  // namespace pampa::cli
