// What the Store implementations share and callers do not see: Txn checks and
// their messages (store.cc), and the thread that delivers a watch's events
// (watch.cc). An implementation provides the history read; this file provides
// the ordering, waking and shutdown rules, so they are the same everywhere.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
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

// The leases of a store that lives in this process (memory, SQLite): kept
// in memory, expired by a thread of their own that deletes their keys through
// the store's Commit (only where a key still holds what the lease put).
// Declare it as the store's last member: it stops its thread first.
class LocalLeases {
 public:
  explicit LocalLeases(Store& store);
  ~LocalLeases();  // Stop()s
  // Stops the expiry thread; call first in the store's destructor, before
  // anything the store's Commit uses goes.
  void Stop();
  Result<int64_t> Grant(std::chrono::seconds ttl);
  Status KeepAlive(int64_t lease);
  Status Revoke(int64_t lease);
  Status Put(const std::string& key, const std::string& value, int64_t lease);

 private:
  struct Lease {
    std::chrono::seconds ttl;
    std::chrono::steady_clock::time_point deadline;
    std::map<std::string, int64_t> keys;  // key -> the revision the lease put it at
  };
  // Deletes the keys of an ended lease that still hold what it put.
  void DeleteKeys(const std::map<std::string, int64_t>& keys);
  void ExpiryLoop();

  Store& store_;
  Mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Lease> leases_ GUARDED_BY(mu_);
  int64_t next_id_ GUARDED_BY(mu_) = 1;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread expiry_;
};

// etcd's minimum: shorter leases are rounded up to it.
inline constexpr std::chrono::seconds kMinLeaseTtl{2};

}  // namespace pampa
