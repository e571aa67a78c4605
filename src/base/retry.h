// Retrying a write that is safe to repeat: a Put of a whole value or a Delete
// (of a lock, an intent, a task's record) gives the same result when it runs
// twice, so a failure that may be passing (the disk was briefly full, etcd
// was electing a leader, an SSH link dropped a packet) is tried again before
// anything is left behind. Never for a compare-and-swap or a create: their
// retry after an ambiguous failure is a different request (see
// CommitResolved in store/store.h).
#pragma once

#include <chrono>
#include <thread>
#include <utility>

#include "base/status.h"

namespace pampa {

// Calls write() until it returns Ok or an error that a retry cannot change
// (anything but kUnavailable and kInternal), at most three times, waiting
// 50 ms and then 500 ms between the tries. Returns the last result.
template <typename Write>
Status RetryIdempotent(Write&& write) {
  constexpr std::chrono::milliseconds kWaits[] = {std::chrono::milliseconds(50), std::chrono::milliseconds(500)};
  Status st = write();
  for (auto wait : kWaits) {
    if (st.ok() || (st.code() != ErrorCode::kUnavailable && st.code() != ErrorCode::kInternal)) break;
    std::this_thread::sleep_for(wait);
    st = write();
  }
  return st;
}

}  // namespace pampa
