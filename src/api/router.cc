#include "api/router.h"

#include <sstream>

namespace pampa {
namespace {

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string p;
  while (std::getline(ss, p, '/')) {
    if (!p.empty()) parts.push_back(p);
  }
  return parts;
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool MatchParts(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                std::map<std::string, std::string>* params) {
  if (pattern.size() != path.size()) return false;
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const auto& p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      found[p.substr(1, p.size() - 2)] = UrlDecode(path[i]);
    } else if (p != path[i]) {
      return false;
    }
  }
  if (params) *params = std::move(found);
  return true;
}

const char* CodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kCancelled:
      return "cancelled";
  }
  return "internal";
}

int HttpStatus(ErrorCode c) {
  switch (c) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kInvalid:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kBusy:
      return 409;
    case ErrorCode::kUnauthorized:
      return 401;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kInternal:
      return 500;
    case ErrorCode::kCancelled:
      return 499;  // as nginx's "client closed request": the caller ended it
  }
  return 500;
}

}  // namespace

Result<nlohmann::json> HttpRequest::Json() const {
  if (body.empty()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded()) return Status::Invalid("the request body is not valid JSON");
  return j;
}

std::map<std::string, std::string> ParseQuery(const std::string& query) {
  std::map<std::string, std::string> out;
  std::stringstream ss(query);
  std::string kv;
  while (std::getline(ss, kv, '&')) {
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      out[UrlDecode(kv)] = "";
    else
      out[UrlDecode(kv.substr(0, eq))] = UrlDecode(kv.substr(eq + 1));
  }
  return out;
}

HttpResponse ErrorResponse(const Status& st) {
  return {HttpStatus(st.code()), {{"error", st.message()}, {"code", CodeName(st.code())}}};
}

HttpResponse Reply(const Status& st, nlohmann::json body) {
  return st.ok() ? HttpResponse{200, std::move(body)} : ErrorResponse(st);
}

void Router::Add(const std::string& method, const std::string& pattern, Handler handler) {
  routes_.push_back({method, pattern, Split(pattern), std::move(handler)});
}

bool Router::Match(const std::string& pattern, const std::string& path,
                   std::map<std::string, std::string>* params) const {
  return MatchParts(Split(pattern), Split(path), params);
}

HttpResponse Router::Dispatch(HttpRequest& req) const {
  auto parts = Split(req.path);
  bool path_known = false;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!MatchParts(r.parts, parts, &params)) continue;
    path_known = true;
    if (r.method != req.method) continue;
    req.params = std::move(params);
    try {
      if (forwarder_ && req.forwarded_from.empty()) {
        if (auto answer = forwarder_(r.pattern, req)) return std::move(*answer);
      }
      return r.handler(req);
    } catch (const std::exception& e) {
      return ErrorResponse(Status::Internal(std::string("unexpected error: ") + e.what()));
    }
  }
  if (path_known)
    return {405, {{"error", "method " + req.method + " is not allowed on " + req.path}, {"code", "invalid"}}};
  return {404, {{"error", "no such API endpoint: " + req.path}, {"code", "not-found"}}};
}

std::vector<std::pair<std::string, std::string>> Router::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : routes_) out.emplace_back(r.method, r.pattern);
  for (const auto& u : uploads_) out.emplace_back("PUT", u.first);
  return out;
}

void Router::AddUpload(const std::string& pattern, UploadHandler handler) {
  uploads_.emplace_back(pattern, std::move(handler));
}

const UploadHandler* Router::FindUpload(const std::string& path, std::map<std::string, std::string>* params) const {
  for (const auto& [pattern, handler] : uploads_) {
    if (Match(pattern, path, params)) return &handler;
  }
  return nullptr;
}

}  // namespace pampa
