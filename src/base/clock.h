// Wall-clock time as the API and the store record it: unix milliseconds.
#pragma once

#include <chrono>
#include <cstdint>

namespace pampa {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace pampa
