// Routes of the REST API: each resource file registers its handlers here
// ("GET /api/v1/vms/{name}"). Handlers run on API worker threads; they parse
// and validate, then hand a typed request to the owner (VmManager, Storage...).
// The router knows nothing of HTTP transport (that is http_server.cc).
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace pampa {

struct HttpRequest {
  std::string method;
  std::string path;  // without the query string
  std::string body;
  std::map<std::string, std::string> params;  // from {placeholders}
  std::map<std::string, std::string> query;
  std::string target;  // path and query as received, for forwarding
  // The host that forwarded this request ("" from a client): never forwarded again.
  std::string forwarded_from;
  // Came over the root-only unix socket or from a host with the pool's
  // certificate (not merely with the API token).
  bool from_pool_host = false;

  // The body as a JSON object; an empty body is {}.
  Result<nlohmann::json> Json() const;
};

// Hands the next piece of a streamed body to the client; fails when the client
// is gone or stopped reading (then the producer should stop).
using BodyWriter = std::function<Status(std::string_view)>;

struct HttpResponse {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
  // When set, sent as is with content_type instead of the JSON body.
  std::optional<std::string> raw;
  std::string content_type = "text/plain; charset=utf-8";
  // When set, the body (of content_type) is produced while it is sent, in
  // chunks, on the worker thread: for bodies too large to hold (files restored
  // from a backup). A failure once the body has begun cannot change the status:
  // the response then ends with a "Pampa-Error" trailer carrying the message.
  std::function<Status(const BodyWriter&)> stream;
  // Extra header fields (name, value).
  std::map<std::string, std::string> headers;
};

// Maps a Status to a JSON error response: {"error": message, "code": kind}.
HttpResponse ErrorResponse(const Status& st);
// 200 with body when ok, else the error.
HttpResponse Reply(const Status& st, nlohmann::json body = {{"ok", true}});
template <typename T>
HttpResponse Reply(const Result<T>& r) {
  return r.ok() ? HttpResponse{200, nlohmann::json(r.value())} : ErrorResponse(r.status());
}

// A route whose request body is too large to hold (an image uploaded from
// the browser): the server streams the body into a file instead.
struct UploadHandler {
  // Before any of the body is read, with req.params filled and req.body
  // empty: validates the request and names the new file the body goes to
  // (whose directory exists); an error is the answer, and the body is not
  // stored (a small one is read and dropped first, so the client reads it).
  std::function<Result<std::string>(const HttpRequest& req, uint64_t length)> begin;
  // Once the whole body is in that file: the answer. From here on the file is
  // the handler's (it removes it when done with it); a body that does not
  // arrive whole is removed by the server and finish is not called.
  std::function<HttpResponse(const HttpRequest& req, const std::string& file)> finish;
};

class Router {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  void Add(const std::string& method, const std::string& pattern, Handler handler);
  // Finds the route, fills req.params and runs the handler; 404/405 otherwise.
  HttpResponse Dispatch(HttpRequest& req) const;
  // Matches only, for the WebSocket endpoints (fills params).
  bool Match(const std::string& pattern, const std::string& path, std::map<std::string, std::string>* params) const;
  std::vector<std::pair<std::string, std::string>> Routes() const;

  // Upload routes (always PUT, streamed bodies).
  void AddUpload(const std::string& pattern, UploadHandler handler);
  // The upload route matching path (fills params), or nullptr.
  const UploadHandler* FindUpload(const std::string& path, std::map<std::string, std::string>* params) const;

  // Decides, before a route's handler runs, whether another host should
  // answer (in a pool, an action on a VM that host runs): returns its answer,
  // or nullopt to run the handler here. Called with the matched pattern and
  // req.params filled. Set before serving.
  using Forwarder = std::function<std::optional<HttpResponse>(const std::string& pattern, const HttpRequest& req)>;
  void SetForwarder(Forwarder forwarder) { forwarder_ = std::move(forwarder); }

 private:
  struct Route {
    std::string method, pattern;
    std::vector<std::string> parts;
    Handler handler;
  };
  std::vector<Route> routes_;
  std::vector<std::pair<std::string, UploadHandler>> uploads_;  // pattern, handler
  Forwarder forwarder_;
};

std::map<std::string, std::string> ParseQuery(const std::string& query);

}  // namespace pampa
