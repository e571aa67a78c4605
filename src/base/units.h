// Parsing of user-facing values: object names and sizes with units.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace pampa {

// Names of VMs, pools, volumes, networks: [a-z0-9][a-z0-9-]{0,62}.
Status ValidateName(const std::string& kind, const std::string& name);

// "512M", "2G", "1.5GiB", "1048576" (bytes) -> bytes. Binary units (K=1024).
Result<uint64_t> ParseSize(const std::string& text);

// A disk or volume size: as ParseSize, but a bare number is refused with a
// hint ("100" would be 100 bytes; "100B" says bytes on purpose).
Result<uint64_t> ParseDiskSize(const std::string& text);
// A disk's new size: "SIZE" (the size to grow to) or "+SIZE" (to grow by),
// checked against current: never smaller (that would destroy data).
Result<uint64_t> ParseNewDiskSize(const std::string& text, uint64_t current);

// 2147483648 -> "2.0 GiB".
std::string FormatSize(uint64_t bytes);
// "90s", "10m", "2h" -> seconds; a number without a unit is refused with a hint.
Result<std::chrono::seconds> ParseDuration(const std::string& text);

}  // namespace pampa
