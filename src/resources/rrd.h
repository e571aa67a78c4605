// A fixed-size, file-backed round-robin database (like RRDtool's) of one
// object's metrics: a VM's or the host's. Three archives: a point each 5 s
// for an hour, each minute for a day, each 30 min for a year; the coarser
// ones hold the average of the 5-s points of their step. The file never
// grows (docs/formats/metrics-rrd.md).
//
// The file is mapped shared, so what Add wrote survives a kill -9 of the
// daemon (it is in the page cache) without an fsync per sample. One writer
// thread, any number of readers: mu_ is held for memory copies only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"

namespace pampa {

struct RrdArchive {
  int step_s;
  int rows;
};
inline constexpr RrdArchive kRrdArchives[] = {{5, 720}, {60, 1440}, {1800, 17520}};

class Rrd {
 public:
  // Opens path, or makes it (0600) for these series. A file of other series,
  // of another version, or damaged is renamed to path.bad (and logged) and
  // made anew: history is worth less than a daemon that works.
  static Result<std::unique_ptr<Rrd>> Open(const std::string& path, std::vector<std::string> series);
  ~Rrd();
  Rrd(const Rrd&) = delete;
  Rrd& operator=(const Rrd&) = delete;

  // One sample at unix time t (s), values in series order (NaN: unknown). It
  // lands in the 5-s slot that holds t; a later sample in the same slot
  // replaces its known values (a restarted daemon's first sample, which has
  // no rates yet, does not erase them); one older than the last slot is
  // ignored. Slots skipped are gaps (NaN), in every archive.
  Status Add(int64_t t, const std::vector<double>& values);

  struct Series {
    int step_s = 0;
    std::vector<int64_t> times;               // slot start times, ascending
    std::vector<std::vector<double>> values;  // [series][point], NaN for gaps
  };
  // The points from `since` to `until` (unix s), from the finest archive
  // whose span reaches back to `since`; at most that archive's rows, and
  // none before the first point written. A coarse archive's last point is
  // the average so far.
  Series Read(int64_t since, int64_t until) const;
  const std::vector<std::string>& names() const { return names_; }
  // The file's size for this many series.
  static uint64_t FileSize(size_t series);

 private:
  Rrd(std::string path, std::vector<std::string> names, int fd, char* map, size_t size);
  // The pieces of the mapped file. REQUIRES: mu_ held
  char* Row(size_t archive, int64_t slot) const REQUIRES(mu_);
  void WriteRow(size_t archive, int64_t slot, const double* values) REQUIRES(mu_);
  void Advance(size_t archive, int64_t slot) REQUIRES(mu_);

  const std::string path_;
  const std::vector<std::string> names_;
  const int fd_;
  mutable Mutex mu_;
  char* const map_ GUARDED_BY(mu_);
  const size_t size_;
};

}  // namespace pampa
