// The web console's built files (web/, built by Vite into BUILD/web), served
// by pampad on the API's own port. Anything outside /api/ is one of these
// files; they carry no secrets, so they need no token (the app signs in and
// sends the token with each API call).
//
// Only files under the root directory are served: the request path is
// checked character by character and resolved without "..", and a symbolic
// link that leaves the root is refused. A precompressed sibling (FILE.br,
// FILE.gz, written by web/scripts/compress.mjs) is sent when the client
// accepts it. Vite names assets by their content hash, so /assets/ files are
// cached for a year; index.html is revalidated on every load.
#pragma once

#include <string>

#include "api/router.h"

namespace pampa {

class StaticFiles {
 public:
  // root: the directory holding index.html; empty or missing: no web console
  // (every page then says how to build it).
  explicit StaticFiles(std::string root);

  bool available() const;
  const std::string& root() const { return root_; }

  // Answers GET/HEAD of `path` (no query). accept_encoding: the request's
  // Accept-Encoding header.
  HttpResponse Serve(const std::string& path, const std::string& accept_encoding) const;

 private:
  std::string root_;
};

// Where pampad looks for the web console when --ui-dir is not given: next to
// the pampad binary (BUILD/web), then /usr/share/pampa/web.
std::string DefaultUiDir(const std::string& exe_path);

}  // namespace pampa
