#include "resources/prometheus.h"

#include <cmath>
#include <cstdio>

namespace pampa {
namespace {

std::string Escape(const std::string& s, bool quotes) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

}  // namespace

std::string PromName(const std::string& name) {
  std::string out = name.empty() ? "_" : name;
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) out[i] = '_';
  }
  return out;
}

void PromText::Family(const std::string& name, const std::string& type, const std::string& help) {
  std::string n = PromName(name);
  out_ += "# HELP " + n + " " + Escape(help, false) + "\n# TYPE " + n + " " + type + "\n";
}

void PromText::Sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
                      double value) {
  out_ += PromName(name);
  if (!labels.empty()) {
    out_ += "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      out_ += (i ? "," : "") + PromName(labels[i].first) + "=\"" + Escape(labels[i].second, true) + "\"";
    }
    out_ += "}";
  }
  out_ += " " + Number(value) + "\n";
}

}  // namespace pampa
