// Stores that stand in front of another store, as LevelDB's EnvWrapper does
// for its Env: StoreWrapper forwards every call, and FaultInjectingStore fails
// or slows chosen calls, so that unit tests reproduce a write that fails half
// way through an operation (the state file's disk filled, etcd lost quorum)
// without a real outage.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "store/store.h"

namespace pampa {

// Forwards every call to target, which must outlive the wrapper. Subclasses
// override the calls they want to change. Thread-safe as target is.
class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(Store& target) : target_(target) {}
  Store& target() { return target_; }

  Result<std::optional<std::string>> Get(const std::string& key) override;
  Status Put(const std::string& key, const std::string& value) override;
  Status Create(const std::string& key, const std::string& value) override;
  Status Delete(const std::string& key) override;
  Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) override;
  Result<int64_t> Revision() override;
  Result<std::optional<Versioned>> GetVersioned(const std::string& key) override;
  Result<VersionedList> ListVersioned(const std::string& prefix) override;
  Status CompareAndPut(const std::string& key, const std::string& value, int64_t expected_mod_revision) override;
  Status CompareAndDelete(const std::string& key, int64_t expected_mod_revision) override;
  Result<int64_t> Commit(const Txn& txn) override;
  Result<std::unique_ptr<Watch>> WatchPrefix(const std::string& prefix, int64_t from_revision,
                                             std::function<void(const WatchEvent&)> on_event) override;
  Status Compact(int64_t revision) override;
  Result<int64_t> GrantLease(std::chrono::seconds ttl) override;
  Status KeepAlive(int64_t lease) override;
  Status RevokeLease(int64_t lease) override;
  Status PutWithLease(const std::string& key, const std::string& value, int64_t lease) override;

 private:
  Store& target_;
};

// A failure to inject into the mutating calls (Put, Create, Delete,
// CompareAndPut, CompareAndDelete, Commit) that match it.
struct StoreFault {
  // The nth matching call from now fails (1: the next one).
  int nth = 1;
  // Only calls that write a key starting with prefix match (a Commit matches
  // when one of its ops does); empty: every mutating call matches.
  std::string prefix;
  // false: the call fails before reaching the target, nothing is written.
  // true: the target applies it, then the caller is told kUnavailable anyway,
  // as when etcd times out after its commit: the retry must be idempotent.
  bool after_apply = false;
  // Every matching call after the nth fails too (the store stays down).
  bool persistent = false;
};

// Fails or stalls chosen calls with kUnavailable and a message containing
// "injected fault"; everything else reaches the target unchanged. Thread-safe.
class FaultInjectingStore : public StoreWrapper {
 public:
  explicit FaultInjectingStore(Store& target) : StoreWrapper(target) {}

  // Adds a fault; several faults may be pending, each counts on its own.
  void InjectFault(StoreFault fault);
  // Removes every fault and the stall.
  void Clear();
  // Every call, reads included, sleeps this long before it is forwarded
  // (a slow disk or a distant etcd); zero: none.
  void SetStall(std::chrono::milliseconds stall);
  // The mutating calls seen so far, failed ones included.
  int mutations() const;

  Result<std::optional<std::string>> Get(const std::string& key) override;
  Status Put(const std::string& key, const std::string& value) override;
  Status Create(const std::string& key, const std::string& value) override;
  Status Delete(const std::string& key) override;
  Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) override;
  Result<int64_t> Revision() override;
  Result<std::optional<Versioned>> GetVersioned(const std::string& key) override;
  Result<VersionedList> ListVersioned(const std::string& prefix) override;
  Status CompareAndPut(const std::string& key, const std::string& value, int64_t expected_mod_revision) override;
  Status CompareAndDelete(const std::string& key, int64_t expected_mod_revision) override;
  Result<int64_t> Commit(const Txn& txn) override;
  Result<std::unique_ptr<Watch>> WatchPrefix(const std::string& prefix, int64_t from_revision,
                                             std::function<void(const WatchEvent&)> on_event) override;
  Status Compact(int64_t revision) override;

 private:
  struct Pending {
    StoreFault fault;
    int seen = 0;  // matching calls counted so far
  };

  // Stalls, counts the call, and applies it to the target through call unless
  // a fault says otherwise. writes lists what the call writes (for matching
  // and for the message).
  Result<int64_t> Mutate(const Txn& writes, const std::function<Result<int64_t>()>& call);
  void Stall() const;

  mutable Mutex mu_;
  std::vector<Pending> faults_ GUARDED_BY(mu_);
  std::chrono::milliseconds stall_ GUARDED_BY(mu_){0};
  int mutations_ GUARDED_BY(mu_) = 0;
};

}  // namespace pampa
