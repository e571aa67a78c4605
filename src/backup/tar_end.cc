#include "backup/tar_end.h"

#include <algorithm>

#include "backup/tar_reader.h"

namespace pampa {
namespace {

constexpr size_t kBlock = kTarBlock;

}  // namespace

Status TarEndFinder::Header() {
  if (IsZeroTarBlock(header_)) {
    if (++zero_blocks_ == 2) phase_ = total_ % record_ == 0 ? Phase::kDone : Phase::kPadding;
    return Status::Ok();
  }
  if (zero_blocks_ > 0) return Status::Invalid("a tar header follows a zero block");
  auto h = ParseTarHeader(header_);
  if (!h.ok()) {
    return Status::Invalid("not a tar stream (" + h.status().message() + " at byte " + std::to_string(total_ - kBlock) +
                           ")");
  }
  skip_ = (h->size + kBlock - 1) / kBlock * kBlock;
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
