// Output helpers of the CLI: tables, JSON, sizes and the progress bar.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa::cli {

// Prints rows under headers, columns padded to their widest cell.
void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
void PrintJson(const nlohmann::json& j);
std::string HumanSize(uint64_t bytes);
// Unix milliseconds as local "YYYY-MM-DD HH:MM:SS"; "-" for 0.
std::string FormatTime(int64_t ms);
int PrintError(const std::string& message);  // returns 1

// A stats answer ({"step", "series": {"time": [...], KEY: [...]}}) as a table
// of its last `rows` points; each column is a series' key, its heading and
// its unit ("%", "B" for bytes, "B/s", "/s" or "" for a plain number).
struct SeriesColumn {
  std::string key, heading, unit;
};
void PrintSeries(const nlohmann::json& stats, const std::vector<SeriesColumn>& columns, size_t rows);
// The answer of a stats call: its error, all of it as JSON, or its last 12 points.
int PrintStats(const Result<nlohmann::json>& stats, bool as_json, const std::vector<SeriesColumn>& columns);

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
