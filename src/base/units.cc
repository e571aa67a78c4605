#include "base/units.h"

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

}  // namespace pampa
