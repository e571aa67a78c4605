#include "cli/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "base/units.h"

namespace pampa::cli {

void PrintTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(headers);
  for (auto& r : rows) line(r);
}

void PrintJson(const nlohmann::json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::string HumanSize(uint64_t bytes) { return FormatSize(bytes); }

int PrintStats(const Result<nlohmann::json>& stats, bool as_json, const std::vector<SeriesColumn>& columns) {
  if (!stats.ok()) return PrintError(stats.status().message());
  if (as_json) {
    PrintJson(stats.value());
  } else {
    PrintSeries(stats.value(), columns, 12);
  }
  return 0;
}

void PrintSeries(const nlohmann::json& stats, const std::vector<SeriesColumn>& columns, size_t rows) {
  const nlohmann::json& series = stats.contains("series") ? stats["series"] : nlohmann::json::object();
  const nlohmann::json times = series.value("time", nlohmann::json::array());
  size_t first = times.size() > rows ? times.size() - rows : 0;
  std::vector<std::string> head = {"TIME"};
  for (const auto& c : columns) head.push_back(c.heading);
  std::vector<std::vector<std::string>> table;
  for (size_t i = first; i < times.size(); ++i) {
    std::vector<std::string> row = {FormatTime(times[i].get<int64_t>() * 1000)};
    for (const auto& c : columns) {
      const nlohmann::json& values = series.contains(c.key) ? series[c.key] : nlohmann::json::array();
      if (i >= values.size() || !values[i].is_number()) {
        row.emplace_back("-");
        continue;
      }
      double v = values[i].get<double>();
      char buf[32];
      if (c.unit == "%" || c.unit.empty()) {
        snprintf(buf, sizeof buf, "%.1f%s", v, c.unit.c_str());
        row.emplace_back(buf);
      } else if (c.unit == "/s") {
        snprintf(buf, sizeof buf, "%.0f/s", v);
        row.emplace_back(buf);
      } else {
        row.push_back(FormatSize(static_cast<uint64_t>(std::max(0.0, v))) + (c.unit == "B/s" ? "/s" : ""));
      }
    }
    table.push_back(std::move(row));
  }
  std::cout << "every " << stats.value("step", 0) << " s; the last " << table.size() << " of " << times.size()
            << " points (--json for all)\n";
  PrintTable(head, table);
}

std::string FormatTime(int64_t ms) {
  if (ms == 0) return "-";
  std::time_t t = ms / 1000;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

int PrintError(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

ProgressBar::ProgressBar(bool quiet) : enabled_(!quiet && isatty(STDERR_FILENO)) {}

void ProgressBar::Update(double fraction, const std::string& label) {
  if (!enabled_) return;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * kWidth);
  std::string bar(filled, '#');
  bar += std::string(kWidth - filled, '.');
  std::fprintf(stderr, "\r[%s] %3d%% %-50.50s", bar.c_str(), static_cast<int>(fraction * 100), label.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\r%-90s\r", "");
}

}  // namespace pampa::cli
