// The Prometheus text exposition format (0.0.4), written: families with their
// HELP and TYPE lines, samples with escaped label values.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pampa {

class PromText {
 public:
  // type: "gauge" or "counter". Names that are not valid metric names have
  // their other characters made '_'.
  void Family(const std::string& name, const std::string& type, const std::string& help);
  void Sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels, double value);
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

// The same name with every character a metric or label name may not hold made '_'.
std::string PromName(const std::string& name);

}  // namespace pampa
