#include "api/static_files.h"

#include <sys/stat.h>

#include <array>
#include <filesystem>
#include <string_view>

#include "base/fs.h"

namespace pampa {

namespace {

struct MimeType {
  std::string_view extension;
  std::string_view type;
};

constexpr std::array<MimeType, 12> kMimeTypes = {{
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".wasm", "application/wasm"},
    {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
}};

std::string_view MimeOf(std::string_view path) {
  for (const auto& m : kMimeTypes) {
    if (path.size() > m.extension.size() && path.substr(path.size() - m.extension.size()) == m.extension) {
      return m.type;
    }
  }
  return "application/octet-stream";
}

// A request path names a file when every segment is made of the characters
// Vite writes ([A-Za-z0-9._-]), none starts with '.', and none is empty.
bool SafePath(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.size() > 512) return false;
  bool segment_start = true;
  for (size_t i = 1; i < path.size(); ++i) {
    char c = path[i];
    if (c == '/') {
      if (segment_start) return false;
      segment_start = true;
      continue;
    }
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok || (segment_start && c == '.')) return false;
    segment_start = false;
  }
  return !segment_start;
}

bool Accepts(const std::string& accept_encoding, std::string_view coding) {
  // Enough for what browsers send ("gzip, deflate, br, zstd"); q=0 is not honoured.
  size_t at = accept_encoding.find(coding);
  while (at != std::string::npos) {
    bool start = at == 0 || accept_encoding[at - 1] == ' ' || accept_encoding[at - 1] == ',';
    size_t end = at + coding.size();
    bool stop = end == accept_encoding.size() || accept_encoding[end] == ',' || accept_encoding[end] == ';' ||
                accept_encoding[end] == ' ';
    if (start && stop) return true;
    at = accept_encoding.find(coding, end);
  }
  return false;
}

bool IsRegularFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

HttpResponse Text(int status, const std::string& message) {
  HttpResponse r{status};
  r.raw = message + "\n";
  r.content_type = "text/plain; charset=utf-8";
  return r;
}

}  // namespace

StaticFiles::StaticFiles(std::string root) : root_(std::move(root)) {
  if (!root_.empty()) {
    auto canonical = CanonicalPath(root_);
    if (canonical.ok()) root_ = *canonical;
  }
}

bool StaticFiles::available() const { return !root_.empty() && IsRegularFile(root_ + "/index.html"); }

HttpResponse StaticFiles::Serve(const std::string& path, const std::string& accept_encoding) const {
  if (!available()) {
    return Text(404,
                "the web console is not built: run `make build` (it needs nodejs and npm; `tools/install-deps` adds "
                "them), or start pampad with --ui-dir DIR");
  }
  std::string rel = path == "/" ? "/index.html" : path;
  if (!SafePath(rel)) return Text(404, "no such file: " + path);
  std::string file = root_ + rel;
  if (!IsRegularFile(file)) return Text(404, "no such file: " + path);
  auto canonical = CanonicalPath(file);
  if (!canonical.ok() || !PathWithin(*canonical, root_)) return Text(404, "no such file: " + path);

  HttpResponse r{200};
  r.content_type = std::string(MimeOf(rel));
  r.headers["X-Content-Type-Options"] = "nosniff";
  r.headers["Vary"] = "Accept-Encoding";
  bool hashed = rel.rfind("/assets/", 0) == 0;
  r.headers["Cache-Control"] = hashed ? "public, max-age=31536000, immutable" : "no-cache";
  if (rel == "/index.html") {
    // The app talks only to its own origin; xterm.js sets inline styles.
    r.headers["Content-Security-Policy"] =
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
    r.headers["Referrer-Policy"] = "no-referrer";
  }
  for (auto [coding, suffix] : {std::pair<std::string_view, std::string_view>{"br", ".br"}, {"gzip", ".gz"}}) {
    std::string packed = *canonical + std::string(suffix);
    if (Accepts(accept_encoding, coding) && IsRegularFile(packed)) {
      auto data = ReadFile(packed);
      if (!data.ok()) break;
      r.raw = std::move(*data);
      r.headers["Content-Encoding"] = std::string(coding);
      return r;
    }
  }
  auto data = ReadFile(*canonical);
  if (!data.ok()) return Text(500, "cannot read " + path + ": " + data.status().message());
  r.raw = std::move(*data);
  return r;
}

std::string DefaultUiDir(const std::string& exe_path) {
  std::error_code ec;
  auto exe = std::filesystem::canonical(exe_path, ec);
  if (!ec) {
    auto beside = exe.parent_path() / "web";
    if (IsRegularFile((beside / "index.html").string())) return beside.string();
  }
  return "/usr/share/pampa/web";
}

}  // namespace pampa
