// Base64 (RFC 4648, with padding): repository key files, the guest agent's
// output, etcd's JSON gateway.
#pragma once

#include <string>

#include "base/status.h"

namespace pampa {

std::string ToBase64(const std::string& bytes);
// kInvalid "bad base64" for text that is not padded base64.
Result<std::string> FromBase64(const std::string& text);

}  // namespace pampa
