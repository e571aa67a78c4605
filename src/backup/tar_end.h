// Where a tar archive ends in a byte stream that has no end of its own (a
// virtio-serial port carrying one archive after another): headers are read
// and file data skipped by the sizes they give, up to the end-of-archive
// marker (two zero blocks) and the padding that fills its last record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace pampa {

class TarEndFinder {
 public:
  // record_size: the writer's record (GNU tar -b N writes N * 512 bytes).
  explicit TarEndFinder(size_t record_size = 512) : record_(record_size) {}
  // Consumes the next bytes of the stream; returns how many of them belong to
  // the archive (fewer than given once its end is inside them). kInvalid when
  // the bytes are not a tar archive (a header's checksum is wrong).
  Result<size_t> Feed(std::string_view data);
  bool done() const { return phase_ == Phase::kDone; }
  uint64_t bytes() const { return total_; }

 private:
  enum class Phase { kHeader, kData, kPadding, kDone };
  Status Header();
  size_t record_;
  Phase phase_ = Phase::kHeader;
  std::string header_;   // the header block being gathered
  uint64_t skip_ = 0;    // data bytes left of the current member
  int zero_blocks_ = 0;  // consecutive zero header blocks
  uint64_t total_ = 0;   // archive bytes consumed
};

}  // namespace pampa
