// Wall-clock time as the API and the store record it (unix milliseconds), and
// a monotonic clock for measuring intervals.
#pragma once

#include <algorithm>
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

// Time left until a steady_clock deadline, never negative (for poll-style timeouts).
inline std::chrono::milliseconds MillisecondsLeft(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

}  // namespace pampa
