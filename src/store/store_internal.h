// What the Store implementations share and callers do not see: Txn checks and
// their messages (store.cc), and the thread that delivers a watch's events
// (watch.cc). An implementation provides the history read; this file provides
// the ordering, waking and shutdown rules, so they are the same everywhere.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "store/store.h"

namespace pampa {

// kInvalid for an empty key or prefix, or a key written by two ops.
Status ValidateTxn(const Txn& txn);
// Ok when c holds for the key's current state (nullopt: absent), else
// kConflict with a message naming the key and what changed.
Status CheckCompare(const Compare& c, const std::optional<Versioned>& current);
// The message for a watch from a revision the history no longer holds.
Status CompactedError(int64_t revision, int64_t oldest_kept);
// kInvalid for a negative revision or an empty callback.
Status ValidateWatch(int64_t from_revision, const std::function<void(const WatchEvent&)>& on_event);

// Tells a store's watches that revisions were committed. One per store,
// shared with its watches so that it outlives both.
class RevisionSignal {
 public:
  explicit RevisionSignal(int64_t revision) : revision_(revision) {}
  // revision and all before it are committed and readable. Called by writers
  // after their commit, without holding the store's lock; takes only mu_.
  void Advance(int64_t revision);
  // The store is going away: wakes every watch (each delivers kCanceled and
  // ends) and waits until no watch is reading from the store, so that the
  // store may then be destroyed. Called first in the store's destructor.
  void Close();

 private:
  friend class StoreWatch;
  Mutex mu_;
  std::condition_variable cv_;
  int64_t revision_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
  int readers_ GUARDED_BY(mu_) = 0;  // watches inside ReadChanges
};

// The events of keys under prefix with from <= revision <= to, in revision
// order (key order within a revision); CompactedError when from is older than
// the history kept. Must not call back into the watch.
using ReadChanges = std::function<Result<std::vector<WatchEvent>>(const std::string& prefix, int64_t from, int64_t to)>;

// Starts the thread of one watch, delivering from revision from (>= 1) on.
// read is only called between the signal's creation and its Close().
std::unique_ptr<Watch> StartWatch(std::shared_ptr<RevisionSignal> signal, std::string prefix, int64_t from,
                                  ReadChanges read, std::function<void(const WatchEvent&)> on_event);

}  // namespace pampa
