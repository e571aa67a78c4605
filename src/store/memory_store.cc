// In-memory implementation of Store, for unit tests: a sorted map of keys and
// a deque of recent changes, both under one mutex.
#include <algorithm>
#include <deque>
#include <map>

#include "base/mutex.h"
#include "store/store_internal.h"

namespace pampa {
namespace {

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(const StoreOptions& options)
      : history_revisions_(std::max<int64_t>(1, options.history_revisions)),
        signal_(std::make_shared<RevisionSignal>(0)) {}
  ~MemoryStore() override {
    leases_.Stop();
    signal_->Close();
  }

  Result<std::optional<std::string>> Get(const std::string& key) override {
    MutexLock lock(&mu_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second.value);
  }
  Status Put(const std::string& key, const std::string& value) override {
    return Apply(Txn().Put(key, value)).status();
  }
  Status Create(const std::string& key, const std::string& value) override {
    return Apply(Txn().IfAbsent(key).Put(key, value)).status();
  }
  Status Delete(const std::string& key) override { return Apply(Txn().Delete(key)).status(); }
  Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) override {
    MutexLock lock(&mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.starts_with(prefix); ++it) {
      out.emplace_back(it->first, it->second.value);
    }
    return out;
  }

  Result<int64_t> Revision() override {
    MutexLock lock(&mu_);
    return revision_;
  }
  Result<std::optional<Versioned>> GetVersioned(const std::string& key) override {
    MutexLock lock(&mu_);
    return Lookup(key);
  }
  Result<VersionedList> ListVersioned(const std::string& prefix) override {
    MutexLock lock(&mu_);
    VersionedList out{.revision = revision_};
    for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.starts_with(prefix); ++it) {
      out.items.emplace_back(it->first, it->second);
    }
    return out;
  }

  Result<int64_t> Commit(const Txn& txn) override {
    PAMPA_RETURN_IF_ERROR(ValidateTxn(txn));
    return Apply(txn);
  }

  Result<std::unique_ptr<Watch>> WatchPrefix(const std::string& prefix, int64_t from_revision,
                                             std::function<void(const WatchEvent&)> on_event) override {
    PAMPA_RETURN_IF_ERROR(ValidateWatch(from_revision, on_event));
    int64_t from;
    {
      MutexLock lock(&mu_);
      if (from_revision != 0 && from_revision < oldest_) return CompactedError(from_revision, oldest_);
      from = from_revision != 0 ? from_revision : revision_ + 1;
    }
    return StartWatch(
        signal_, prefix, from, [this](const std::string& p, int64_t lo, int64_t hi) { return ReadChanges(p, lo, hi); },
        std::move(on_event));
  }

  Result<int64_t> GrantLease(std::chrono::seconds ttl) override { return leases_.Grant(ttl); }
  Status KeepAlive(int64_t lease) override { return leases_.KeepAlive(lease); }
  Status RevokeLease(int64_t lease) override { return leases_.Revoke(lease); }
  Status PutWithLease(const std::string& key, const std::string& value, int64_t lease) override {
    return leases_.Put(key, value, lease);
  }

  Status Compact(int64_t revision) override {
    MutexLock lock(&mu_);
    if (revision > revision_) {
      return Status::Invalid("cannot compact to revision " + std::to_string(revision) + ": the store is at " +
                             std::to_string(revision_));
    }
    CompactTo(revision);
    return Status::Ok();
  }

 private:
  struct Change {
    int64_t revision;
    std::string key;
    std::string value;
    bool deleted;
  };

  std::optional<Versioned> Lookup(const std::string& key) const REQUIRES(mu_) {
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second;
  }

  // Commit without ValidateTxn: Put/Create/Delete keep accepting any key, as
  // they always did.
  Result<int64_t> Apply(const Txn& txn) {
    MutexLock lock(&mu_);
    for (const Compare& c : txn.compares) PAMPA_RETURN_IF_ERROR(CheckCompare(c, Lookup(c.key)));
    const int64_t rev = revision_ + 1;
    std::map<std::string, Change> changes;  // by key: history lists a revision's changes in key order
    for (const Op& op : txn.ops) {
      if (op.kind == Op::Kind::kPut) {
        auto [it, created] = data_.try_emplace(op.key);
        if (created) it->second.create_revision = rev;
        it->second.value = op.value;
        it->second.mod_revision = rev;
        changes[op.key] = {rev, op.key, op.value, false};
      } else if (op.kind == Op::Kind::kDelete) {
        if (data_.erase(op.key) > 0) changes[op.key] = {rev, op.key, "", true};
      } else {
        auto it = data_.lower_bound(op.key);
        while (it != data_.end() && it->first.starts_with(op.key)) {
          changes[it->first] = {rev, it->first, "", true};
          it = data_.erase(it);
        }
      }
    }
    if (changes.empty()) return revision_;
    revision_ = rev;
    for (auto& [key, change] : changes) history_.push_back(std::move(change));
    CompactTo(rev - history_revisions_ + 1);
    lock.Unlock();
    signal_->Advance(rev);
    return rev;
  }

  void CompactTo(int64_t revision) REQUIRES(mu_) {
    if (revision <= oldest_) return;
    oldest_ = revision;
    while (!history_.empty() && history_.front().revision < oldest_) history_.pop_front();
  }

  Result<std::vector<WatchEvent>> ReadChanges(const std::string& prefix, int64_t from, int64_t to) {
    MutexLock lock(&mu_);
    if (from < oldest_) return CompactedError(from, oldest_);
    auto it = std::lower_bound(history_.begin(), history_.end(), from,
                               [](const Change& c, int64_t r) { return c.revision < r; });
    std::vector<WatchEvent> out;
    for (; it != history_.end() && it->revision <= to; ++it) {
      if (!it->key.starts_with(prefix)) continue;
      out.push_back({.type = it->deleted ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut,
                     .key = it->key,
                     .value = it->value,
                     .revision = it->revision});
    }
    return out;
  }

  const int64_t history_revisions_;
  const std::shared_ptr<RevisionSignal> signal_;
  Mutex mu_;
  std::map<std::string, Versioned> data_ GUARDED_BY(mu_);
  int64_t revision_ GUARDED_BY(mu_) = 0;
  int64_t oldest_ GUARDED_BY(mu_) = 1;          // oldest revision history_ holds
  std::deque<Change> history_ GUARDED_BY(mu_);  // in revision order
  LocalLeases leases_{*this};                   // stopped first thing in the destructor
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() { return NewMemoryStore(StoreOptions()); }
std::unique_ptr<Store> NewMemoryStore(const StoreOptions& options) { return std::make_unique<MemoryStore>(options); }

}  // namespace pampa
