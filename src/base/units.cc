#include "base/units.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace pampa {

Status ValidateName(const std::string& kind, const std::string& name) {
  auto bad = [&](const std::string& why) {
    return Status::Invalid("invalid " + kind + " name '" + name + "': " + why +
                           " (use 1-63 of a-z, 0-9 and '-', starting with a letter or digit)");
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > 63) return bad("it is longer than 63 characters");
  if (!(std::islower(static_cast<unsigned char>(name[0])) || std::isdigit(static_cast<unsigned char>(name[0]))))
    return bad("it must start with a lowercase letter or digit");
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
      return bad(std::string("character '") + c + "' is not allowed");
  }
  return Status::Ok();
}

Result<uint64_t> ParseSize(const std::string& text) {
  auto bad = [&]() {
    return Status::Invalid("invalid size '" + text + "': use a number with an optional unit, e.g. 512M, 2G, 10GiB, 1T");
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return bad();
  std::string num = text.substr(0, i);
  if (num.find('.') != num.rfind('.')) return bad();
  double value;
  try {
    value = std::stod(num);
  } catch (...) {
    return bad();
  }
  std::string unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TB" || unit == "TIB")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    return bad();
  double bytes = value * mult;
  if (bytes < 1 || bytes > 64.0 * 1024 * 1024 * 1024 * 1024) {
    return Status::Invalid("size '" + text + "' is out of range (1 byte to 64 TiB)");
  }
  return static_cast<uint64_t>(std::llround(bytes));
}

Result<uint64_t> ParseDiskSize(const std::string& text) {
  if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.back()))) {
    return Status::Invalid("size '" + text + "' has no unit: write " + text + "G or " + text + "M (or " + text +
                           "B if you mean bytes)");
  }
  return ParseSize(text);
}

Result<uint64_t> ParseNewDiskSize(const std::string& text, uint64_t current) {
  bool grow_by = text.starts_with('+');
  PAMPA_ASSIGN_OR_RETURN(uint64_t size, ParseDiskSize(grow_by ? text.substr(1) : text));
  if (grow_by) size += current;
  if (size < current) {
    return Status::Invalid("the disk is " + FormatSize(current) + "; shrinking it to " + FormatSize(size) +
                           " would destroy data, so only growing is allowed (+SIZE grows by SIZE)");
  }
  return size;
}

std::string FormatSize(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

Result<std::chrono::seconds> ParseDuration(const std::string& text) {
  auto bad = [&](const std::string& hint) {
    return Status::Invalid("duration '" + text + "' " + hint + " (e.g. 90s, 10m, 2h)");
  };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!text.empty() && std::all_of(text.begin(), text.end(), digit)) return bad("needs a unit: s, m, h, d or w");
  if (text.size() < 2) return bad("needs a number and a unit: s, m, h, d or w");
  char unit = text.back();
  std::string digits = text.substr(0, text.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), digit)) return bad("is not a duration");
  if (digits.size() > 6) return bad("is too long");
  int64_t n = std::stoll(digits);
  switch (unit) {
    case 's':
      return std::chrono::seconds(n);
    case 'm':
      return std::chrono::seconds(n * 60);
    case 'h':
      return std::chrono::seconds(n * 3600);
    case 'd':
      return std::chrono::seconds(n * 86400);
    case 'w':
      return std::chrono::seconds(n * 7 * 86400);
    default:
      return bad("has an unknown unit '" + std::string(1, unit) + "': use s, m, h, d or w");
  }
}

}  // namespace pampa
