#include "backup/tar_end.h"

#include <algorithm>

namespace pampa {

namespace {

constexpr size_t kBlock = 512;

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

}  // namespace

Status TarEndFinder::Header() {
  if (std::all_of(header_.begin(), header_.end(), [](char c) { return c == 0; })) {
    if (++zero_blocks_ == 2) phase_ = total_ % record_ == 0 ? Phase::kDone : Phase::kPadding;
    return Status::Ok();
  }
  if (zero_blocks_ > 0) return Status::Invalid("a tar header follows a zero block");
  PAMPA_ASSIGN_OR_RETURN(uint64_t stored, Number(std::string_view(header_).substr(148, 8)));
  uint64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header_[i]);
  }
  if (sum != stored)
    return Status::Invalid("not a tar stream (header checksum mismatch at byte " + std::to_string(total_ - kBlock) +
                           ")");
  PAMPA_ASSIGN_OR_RETURN(uint64_t size, Number(std::string_view(header_).substr(124, 12)));
  skip_ = (size + kBlock - 1) / kBlock * kBlock;
  if (skip_ > 0) phase_ = Phase::kData;
  return Status::Ok();
}

Result<size_t> TarEndFinder::Feed(std::string_view data) {
  size_t used = 0;
  while (used < data.size() && phase_ != Phase::kDone) {
    size_t n = 0;
    switch (phase_) {
      case Phase::kHeader:
        n = std::min(kBlock - header_.size(), data.size() - used);
        header_.append(data.substr(used, n));
        used += n;
        total_ += n;
        if (header_.size() == kBlock) {
          Status st = Header();
          header_.clear();
          PAMPA_RETURN_IF_ERROR(st);
        }
        break;
      case Phase::kData:
        n = static_cast<size_t>(std::min<uint64_t>(skip_, data.size() - used));
        skip_ -= n;
        used += n;
        total_ += n;
        if (skip_ == 0) phase_ = Phase::kHeader;
        break;
      case Phase::kPadding:
        n = static_cast<size_t>(std::min<uint64_t>(record_ - total_ % record_, data.size() - used));
        used += n;
        total_ += n;
        if (total_ % record_ == 0) phase_ = Phase::kDone;
        break;
      case Phase::kDone:
        break;
    }
  }
  return used;
}

}  // namespace pampa
