// Output helpers of the CLI: tables, JSON, sizes and the progress bar.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pampa::cli {

// Prints rows under headers, columns padded to their widest cell.
void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
void PrintJson(const nlohmann::json& j);
std::string HumanSize(uint64_t bytes);
// Unix milliseconds as local "YYYY-MM-DD HH:MM:SS"; "-" for 0.
std::string FormatTime(int64_t ms);
int PrintError(const std::string& message);  // returns 1

// A progress bar on stderr when it is a terminal; silent otherwise.
class ProgressBar {
 public:
  explicit ProgressBar(bool quiet);
  void Update(double fraction, const std::string& label);
  void Finish();

 private:
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace pampa::cli
