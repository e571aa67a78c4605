#include "resources/rrd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/log.h"

namespace pampa {
namespace {

// The header (offsets in bytes; little-endian, as this host writes it):
//   0  "PAMPARRD"     8  u32 version      12 u32 series     16 u32 archives
//   20 u32 row bytes  24 i64 last 5-s slot (-1: none)       32 names, '\n'-separated, NUL-padded
//   kAccOffset: per coarse archive an accumulator: i64 slot (-1: none), then per series f64 sum, u64 count
// The header takes whole pages; then each archive's ring of rows: i64 slot, f32 per series.
constexpr char kMagic[8] = {'P', 'A', 'M', 'P', 'A', 'R', 'R', 'D'};
constexpr uint32_t kVersion = 1;
constexpr size_t kNamesOffset = 32, kNamesSize = 1024, kAccOffset = kNamesOffset + kNamesSize;
constexpr size_t kArchives = std::size(kRrdArchives);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

size_t RowBytes(size_t series) { return 8 + 4 * series; }
size_t AccBytes(size_t series) { return 8 + 16 * series; }
size_t HeaderBytes(size_t series) { return (kAccOffset + (kArchives - 1) * AccBytes(series) + 4095) / 4096 * 4096; }
size_t RingOffset(size_t series, size_t archive) {
  size_t off = HeaderBytes(series);
  for (size_t a = 0; a < archive; ++a) off += static_cast<size_t>(kRrdArchives[a].rows) * RowBytes(series);
  return off;
}

template <typename T>
T Load(const char* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void Store(char* p, T v) {
  memcpy(p, &v, sizeof v);
}

int64_t Floor(int64_t t, int64_t step) { return (t >= 0 ? t : t - step + 1) / step * step; }

std::string JoinNames(const std::vector<std::string>& names) {
  std::string joined;
  for (const auto& n : names) joined += n + "\n";
  return joined;
}

// Makes a new file of `size` bytes for names and returns it open.
Result<int> Create(const std::string& path, const std::vector<std::string>& names, size_t size) {
  std::string tmp = path + ".new";
  int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Internal("cannot make " + tmp + ": " + strerror(errno));
  std::vector<char> head(HeaderBytes(names.size()), 0);
  memcpy(head.data(), kMagic, sizeof kMagic);
  Store<uint32_t>(head.data() + 8, kVersion);
  Store<uint32_t>(head.data() + 12, static_cast<uint32_t>(names.size()));
  Store<uint32_t>(head.data() + 16, static_cast<uint32_t>(kArchives));
  Store<uint32_t>(head.data() + 20, static_cast<uint32_t>(RowBytes(names.size())));
  Store<int64_t>(head.data() + 24, -1);
  std::string joined = JoinNames(names);
  memcpy(head.data() + kNamesOffset, joined.data(), joined.size());
  for (size_t a = 1; a < kArchives; ++a)
    Store<int64_t>(head.data() + kAccOffset + (a - 1) * AccBytes(names.size()), -1);
  bool ok = ftruncate(fd, static_cast<off_t>(size)) == 0 &&
            pwrite(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) && fsync(fd) == 0 &&
            rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) {
    Status st = Status::Internal("cannot make " + path + ": " + strerror(errno));
    close(fd);
    unlink(tmp.c_str());
    return st;
  }
  return fd;
}

// Why the open file cannot be used for names (empty: it can).
std::string Damage(int fd, const std::vector<std::string>& names, size_t size) {
  struct stat st;
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != size) return "its size is not the expected one";
  std::vector<char> head(kAccOffset);
  if (pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) return "its header cannot be read";
  if (memcmp(head.data(), kMagic, sizeof kMagic) != 0) return "it is not a metrics file";
  if (Load<uint32_t>(head.data() + 8) != kVersion) return "it is of another version";
  std::string joined = JoinNames(names);
  if (Load<uint32_t>(head.data() + 12) != names.size() || Load<uint32_t>(head.data() + 16) != kArchives ||
      Load<uint32_t>(head.data() + 20) != RowBytes(names.size()) ||
      std::string(head.data() + kNamesOffset, strnlen(head.data() + kNamesOffset, kNamesSize)) != joined) {
    return "it holds other series";
  }
  return "";
}

}  // namespace

uint64_t Rrd::FileSize(size_t series) { return RingOffset(series, kArchives); }

Result<std::unique_ptr<Rrd>> Rrd::Open(const std::string& path, std::vector<std::string> series) {
  if (JoinNames(series).size() >= kNamesSize) return Status::Internal("too many metrics series for " + path);
  size_t size = FileSize(series.size());
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    std::string why = Damage(fd, series, size);
    if (!why.empty()) {
      close(fd);
      fd = -1;
      log::Warn("metrics: {} is set aside as {}.bad and made anew: {}", path, path, why);
      if (rename(path.c_str(), (path + ".bad").c_str()) != 0) {
        return Status::Internal("cannot set aside " + path + ": " + strerror(errno));
      }
    }
  } else if (errno != ENOENT) {
    return Status::Internal("cannot open " + path + ": " + strerror(errno));
  }
  if (fd < 0) {
    PAMPA_ASSIGN_OR_RETURN(fd, Create(path, series, size));
  }
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    Status st = Status::Internal("cannot map " + path + ": " + strerror(errno));
    close(fd);
    return st;
  }
  return std::unique_ptr<Rrd>(new Rrd(path, std::move(series), fd, static_cast<char*>(map), size));
}

Rrd::Rrd(std::string path, std::vector<std::string> names, int fd, char* map, size_t size)
    : path_(std::move(path)), names_(std::move(names)), fd_(fd), map_(map), size_(size) {}

Rrd::~Rrd() {
  MutexLock lock(&mu_);
  munmap(map_, size_);
  close(fd_);
}

char* Rrd::Row(size_t archive, int64_t slot) const {
  const RrdArchive& a = kRrdArchives[archive];
  int64_t index = (slot / a.step_s) % a.rows;
  if (index < 0) index += a.rows;
  return map_ + RingOffset(names_.size(), archive) + static_cast<size_t>(index) * RowBytes(names_.size());
}

void Rrd::WriteRow(size_t archive, int64_t slot, const double* values) {
  char* row = Row(archive, slot);
  for (size_t i = 0; i < names_.size(); ++i)
    Store<float>(row + 8 + 4 * i, static_cast<float>(values ? values[i] : kNaN));
  Store<int64_t>(row, slot);  // last: a row whose values are half written names another slot
}

// Moves coarse archive `archive`'s accumulator to the slot holding `slot`:
// the one it held becomes a row (the average of what it gathered), the
// slots in between gaps.
void Rrd::Advance(size_t archive, int64_t slot) {
  const RrdArchive& a = kRrdArchives[archive];
  const size_t n = names_.size();
  char* acc = map_ + kAccOffset + (archive - 1) * AccBytes(n);
  int64_t at = Load<int64_t>(acc), to = Floor(slot, a.step_s);
  if (at == to) return;
  if (at >= 0 && at < to) {
    std::vector<double> avg(n);
    for (size_t i = 0; i < n; ++i) {
      double sum = Load<double>(acc + 8 + 16 * i);
      uint64_t count = Load<uint64_t>(acc + 16 + 16 * i);
      avg[i] = count ? sum / static_cast<double>(count) : kNaN;
    }
    WriteRow(archive, at, avg.data());
    int64_t gap = at + a.step_s;
    if ((to - gap) / a.step_s > a.rows) gap = to - static_cast<int64_t>(a.rows) * a.step_s;
    for (; gap < to; gap += a.step_s) WriteRow(archive, gap, nullptr);
  }
  memset(acc, 0, AccBytes(n));
  Store<int64_t>(acc, to);
}

Status Rrd::Add(int64_t t, const std::vector<double>& values) {
  const size_t n = names_.size();
  if (values.size() != n)
    return Status::Internal("metrics: " + std::to_string(values.size()) + " values for " + std::to_string(n) +
                            " series");
  const int step = kRrdArchives[0].step_s;
  int64_t slot = Floor(t, step);
  MutexLock lock(&mu_);
  int64_t last = Load<int64_t>(map_ + 24);
  if (last >= 0 && slot < last) return Status::Ok();  // older than what is there
  std::vector<double> replaced;
  if (slot == last) {
    const char* row = Row(0, slot);
    if (Load<int64_t>(row) == slot) {
      for (size_t i = 0; i < n; ++i) replaced.push_back(Load<float>(row + 8 + 4 * i));
    }
  } else if (last >= 0) {
    int64_t gap = last + step;
    if ((slot - gap) / step > kRrdArchives[0].rows) gap = slot - static_cast<int64_t>(kRrdArchives[0].rows) * step;
    for (; gap < slot; gap += step) WriteRow(0, gap, nullptr);
  }
  std::vector<double> merged = values;  // an unknown value keeps what the slot had
  for (size_t i = 0; i < replaced.size(); ++i) {
    if (std::isnan(merged[i])) merged[i] = replaced[i];
  }
  WriteRow(0, slot, merged.data());
  for (size_t a = 1; a < kArchives; ++a) {
    Advance(a, slot);
    char* acc = map_ + kAccOffset + (a - 1) * AccBytes(n);
    for (size_t i = 0; i < n; ++i) {
      double sum = Load<double>(acc + 8 + 16 * i);
      uint64_t count = Load<uint64_t>(acc + 16 + 16 * i);
      if (!replaced.empty() && !std::isnan(replaced[i]) && count > 0) {
        sum -= replaced[i];
        --count;
      }
      if (!std::isnan(merged[i])) {
        sum += static_cast<double>(static_cast<float>(merged[i]));
        ++count;
      }
      Store<double>(acc + 8 + 16 * i, sum);
      Store<uint64_t>(acc + 16 + 16 * i, count);
    }
  }
  Store<int64_t>(map_ + 24, slot);
  return Status::Ok();
}

Rrd::Series Rrd::Read(int64_t since, int64_t until) const {
  const size_t n = names_.size();
  Series s;
  s.values.resize(n);
  MutexLock lock(&mu_);
  int64_t last = Load<int64_t>(map_ + 24);
  size_t archive = 0;
  while (archive + 1 < kArchives &&
         last - since > static_cast<int64_t>(kRrdArchives[archive].step_s) * kRrdArchives[archive].rows) {
    ++archive;
  }
  const RrdArchive& a = kRrdArchives[archive];
  s.step_s = a.step_s;
  if (last < 0) return s;
  const char* acc = archive > 0 ? map_ + kAccOffset + (archive - 1) * AccBytes(n) : nullptr;
  int64_t newest = acc ? Load<int64_t>(acc) : last;
  int64_t from = std::max(Floor(since, a.step_s), newest - static_cast<int64_t>(a.rows - 1) * a.step_s);
  for (int64_t t = from; t <= std::min(newest, until); t += a.step_s) {
    s.times.push_back(t);
    if (acc && t == newest) {  // still gathering: the average so far
      for (size_t i = 0; i < n; ++i) {
        uint64_t count = Load<uint64_t>(acc + 16 + 16 * i);
        s.values[i].push_back(count ? Load<double>(acc + 8 + 16 * i) / static_cast<double>(count) : kNaN);
      }
      continue;
    }
    const char* row = Row(archive, t);
    bool here = Load<int64_t>(row) == t;
    if (!here && s.times.size() == 1) {  // before the first point written: not a gap, nothing
      s.times.clear();
      continue;
    }
    for (size_t i = 0; i < n; ++i) s.values[i].push_back(here ? Load<float>(row + 8 + 4 * i) : kNaN);
  }
  return s;
}

}  // namespace pampa
