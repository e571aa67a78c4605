#include "backup/tar_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pampa {
namespace {

// A numeric header field: octal digits (space or NUL padded), or GNU's
// base-256 form (high bit of the first byte set) for large sizes.
Result<uint64_t> Number(std::string_view field) {
  uint64_t v = 0;
  if (!field.empty() && (static_cast<unsigned char>(field[0]) & 0x80) != 0) {
    for (size_t i = 0; i < field.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(field[i]);
      if (i == 0) c &= 0x7f;
      if (v >> 56 != 0) return Status::Invalid("a tar header number is too large");
      v = (v << 8) | c;
    }
    return v;
  }
  size_t i = 0;
  while (i < field.size() && field[i] == ' ') ++i;
  for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v >> 60 != 0) return Status::Invalid("a tar header number is too large");
    v = v * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  return v;
}

// A NUL-terminated (or full-width) string field.
std::string Field(std::string_view block, size_t at, size_t len) {
  std::string_view f = block.substr(at, len);
  return std::string(f.substr(0, f.find('\0')));
}

constexpr uint64_t kMaxRecord = 1 << 20;  // a long name or pax record larger than this is not a real one

// The "path" of a pax extended header ("LEN path=VALUE\n" records), or "".
std::string PaxPath(const std::string& data) {
  size_t at = 0;
  std::string path;
  while (at < data.size()) {
    size_t space = data.find(' ', at);
    if (space == std::string::npos) break;
    uint64_t len = 0;
    for (size_t i = at; i < space; ++i) {
      if (data[i] < '0' || data[i] > '9' || len > data.size()) return path;
      len = len * 10 + static_cast<uint64_t>(data[i] - '0');
    }
    if (len == 0 || at + len > data.size()) break;
    std::string_view rec(data.data() + space + 1, at + len - space - 1);  // "key=value\n"
    if (rec.starts_with("path=")) path = std::string(rec.substr(5, rec.size() - 5 - (rec.ends_with('\n') ? 1 : 0)));
    at += len;
  }
  return path;
}

}  // namespace

bool IsZeroTarBlock(std::string_view block) {
  return std::all_of(block.begin(), block.end(), [](char c) { return c == 0; });
}

Result<TarHeader> ParseTarHeader(std::string_view block) {
  if (block.size() != kTarBlock) return Status::Invalid("a tar header is 512 bytes");
  PAMPA_ASSIGN_OR_RETURN(uint64_t stored, Number(block.substr(148, 8)));
  uint64_t sum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(block[i]);
  if (sum != stored) return Status::Invalid("header checksum mismatch");
  TarHeader h;
  PAMPA_ASSIGN_OR_RETURN(h.size, Number(block.substr(124, 12)));
  h.type = block[156];
  h.name = Field(block, 0, 100);
  if (block.substr(257, 5) == "ustar") {
    std::string prefix = Field(block, 345, 155);
    if (!prefix.empty()) h.name = prefix + "/" + h.name;
  }
  return h;
}

Status TarReader::ReadRaw(char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd_, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Unavailable("cannot read " + what_ + ": " + std::strerror(errno));
    if (r == 0) {
      return Status::Invalid(what_ + " ends early at byte " + std::to_string(pos_ + got) +
                             " (a truncated or damaged archive)");
    }
    got += static_cast<size_t>(r);
  }
  pos_ += n;
  return Status::Ok();
}

Result<bool> TarReader::ReadHeaderBlock(char* block) {
  size_t got = 0;
  while (got < kTarBlock) {
    ssize_t r = read(fd_, block + got, kTarBlock - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::Unavailable("cannot read " + what_ + ": " + std::strerror(errno));
    // The end of the file right at a header: an archive without its end
    // marker (some writers leave it out), read as ended.
    if (r == 0 && got == 0) return false;
    if (r == 0)
      return Status::Invalid(what_ + " ends early at byte " + std::to_string(pos_ + got) +
                             " (a truncated or damaged archive)");
    got += static_cast<size_t>(r);
  }
  pos_ += kTarBlock;
  return true;
}

Status TarReader::Skip(uint64_t n) {
  if (n == 0) return Status::Ok();
  off_t here = lseek(fd_, 0, SEEK_CUR);
  off_t end = here >= 0 ? lseek(fd_, 0, SEEK_END) : -1;
  if (here >= 0 && end >= 0) {
    // Seeking past the end would hide a truncated archive: say so here.
    if (static_cast<uint64_t>(end - here) < n) {
      return Status::Invalid(what_ + " ends early at byte " + std::to_string(pos_ + uint64_t(end - here)) +
                             " (a truncated or damaged archive)");
    }
    if (lseek(fd_, here + static_cast<off_t>(n), SEEK_SET) < 0) {
      return Status::Unavailable("cannot seek in " + what_ + ": " + std::strerror(errno));
    }
    pos_ += n;
    return Status::Ok();
  }
  char buf[64 << 10];
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof(buf)));
    PAMPA_RETURN_IF_ERROR(ReadRaw(buf, k));
    n -= k;
  }
  return Status::Ok();
}

Result<std::string> TarReader::ReadRecord(uint64_t size) {
  if (size > kMaxRecord)
    return Status::Invalid(what_ + ": a tar extension record of " + std::to_string(size) + " bytes");
  std::string data(size, '\0');
  PAMPA_RETURN_IF_ERROR(ReadRaw(data.data(), data.size()));
  PAMPA_RETURN_IF_ERROR(Skip((kTarBlock - size % kTarBlock) % kTarBlock));
  return data;
}

Result<std::optional<TarReader::Member>> TarReader::Next() {
  PAMPA_RETURN_IF_ERROR(Skip(left_ + padding_));
  left_ = padding_ = 0;
  std::string long_name;
  char block[kTarBlock];
  for (;;) {
    uint64_t at = pos_;
    PAMPA_ASSIGN_OR_RETURN(bool more, ReadHeaderBlock(block));
    if (!more) return std::optional<Member>();
    std::string_view view(block, kTarBlock);
    if (IsZeroTarBlock(view)) return std::optional<Member>();
    auto h = ParseTarHeader(view);
    if (!h.ok()) {
      return Status::Invalid(what_ + " is not a tar archive or is damaged (" + h.status().message() + " at byte " +
                             std::to_string(at) + ")");
    }
    if (h->type == 'L' || h->type == 'x') {  // GNU long name / pax extended header: for the next header
      PAMPA_ASSIGN_OR_RETURN(std::string data, ReadRecord(h->size));
      std::string name = h->type == 'L' ? data.substr(0, data.find('\0')) : PaxPath(data);
      if (!name.empty()) long_name = name;
      continue;
    }
    if (h->type == 'K' || h->type == 'g') {  // a long link name, pax globals: nothing we use
      PAMPA_RETURN_IF_ERROR(ReadRecord(h->size).status());
      continue;
    }
    Member m{long_name.empty() ? h->name : long_name, h->size, pos_, h->type};
    // Links and devices carry no data whatever their size field says.
    left_ = (m.regular() || m.type == '5') ? m.size : 0;
    if (!m.regular()) m.size = left_;
    padding_ = (kTarBlock - left_ % kTarBlock) % kTarBlock;
    return std::optional<Member>(std::move(m));
  }
}

int TarReader::RandomAccessFd() const {
  // The test Skip makes: where lseek works, so does pread.
  return lseek(fd_, 0, SEEK_CUR) >= 0 ? fd_ : -1;
}

Status TarReader::Read(char* buf, size_t n) {
  if (n > left_) return Status::Invalid(what_ + ": reading past the end of a member");
  PAMPA_RETURN_IF_ERROR(ReadRaw(buf, n));
  left_ -= n;
  return Status::Ok();
}

}  // namespace pampa
