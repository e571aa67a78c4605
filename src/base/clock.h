// Wall-clock time as the API and the store record it (unix milliseconds), and
// a monotonic clock for measuring intervals.
#pragma once

#include <chrono>
#include <cstdint>

namespace pampa {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Milliseconds on a clock that never jumps (for timeouts and durations).
inline int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace pampa
