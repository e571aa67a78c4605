#include "store/store_wrapper.h"

#include <thread>

namespace pampa {

Result<std::optional<std::string>> StoreWrapper::Get(const std::string& key) { return target_.Get(key); }
Status StoreWrapper::Put(const std::string& key, const std::string& value) { return target_.Put(key, value); }
Status StoreWrapper::Create(const std::string& key, const std::string& value) { return target_.Create(key, value); }
Status StoreWrapper::Delete(const std::string& key) { return target_.Delete(key); }
Result<std::vector<std::pair<std::string, std::string>>> StoreWrapper::List(const std::string& prefix) {
  return target_.List(prefix);
}
Result<int64_t> StoreWrapper::Revision() { return target_.Revision(); }
Result<std::optional<Versioned>> StoreWrapper::GetVersioned(const std::string& key) {
  return target_.GetVersioned(key);
}
Result<VersionedList> StoreWrapper::ListVersioned(const std::string& prefix) { return target_.ListVersioned(prefix); }
Status StoreWrapper::CompareAndPut(const std::string& key, const std::string& value, int64_t expected_mod_revision) {
  return target_.CompareAndPut(key, value, expected_mod_revision);
}
Status StoreWrapper::CompareAndDelete(const std::string& key, int64_t expected_mod_revision) {
  return target_.CompareAndDelete(key, expected_mod_revision);
}
Result<int64_t> StoreWrapper::Commit(const Txn& txn) { return target_.Commit(txn); }
Result<std::unique_ptr<Watch>> StoreWrapper::WatchPrefix(const std::string& prefix, int64_t from_revision,
                                                         std::function<void(const WatchEvent&)> on_event) {
  return target_.WatchPrefix(prefix, from_revision, std::move(on_event));
}
Status StoreWrapper::Compact(int64_t revision) { return target_.Compact(revision); }
Result<int64_t> StoreWrapper::GrantLease(std::chrono::seconds ttl) { return target_.GrantLease(ttl); }
Status StoreWrapper::KeepAlive(int64_t lease) { return target_.KeepAlive(lease); }
Status StoreWrapper::RevokeLease(int64_t lease) { return target_.RevokeLease(lease); }
Status StoreWrapper::PutWithLease(const std::string& key, const std::string& value, int64_t lease) {
  return target_.PutWithLease(key, value, lease);
}

namespace {

// Whether op writes a key starting with prefix.
bool Touches(const Op& op, const std::string& prefix) {
  return op.key.starts_with(prefix) || (op.kind == Op::Kind::kDeletePrefix && prefix.starts_with(op.key));
}

// Turns a Status-returning call into the Result<int64_t> Mutate takes.
Result<int64_t> AsResult(const Status& st) {
  if (!st.ok()) return st;
  return int64_t{0};
}

}  // namespace

void FaultInjectingStore::InjectFault(StoreFault fault) {
  MutexLock lock(&mu_);
  faults_.push_back({std::move(fault)});
}

void FaultInjectingStore::Clear() {
  MutexLock lock(&mu_);
  faults_.clear();
  stall_ = std::chrono::milliseconds(0);
}

void FaultInjectingStore::SetStall(std::chrono::milliseconds stall) {
  MutexLock lock(&mu_);
  stall_ = stall;
}

int FaultInjectingStore::mutations() const {
  MutexLock lock(&mu_);
  return mutations_;
}

void FaultInjectingStore::Stall() const {
  std::chrono::milliseconds d;
  {
    MutexLock lock(&mu_);
    d = stall_;
  }
  // Outside mu_: stalled calls of several threads overlap, as on a slow disk.
  if (d.count() > 0) std::this_thread::sleep_for(d);
}

Result<int64_t> FaultInjectingStore::Mutate(const Txn& writes, const std::function<Result<int64_t>()>& call) {
  Stall();
  bool fail = false;
  bool after = false;
  {
    MutexLock lock(&mu_);
    ++mutations_;
    for (Pending& p : faults_) {
      bool match = p.fault.prefix.empty();
      for (const Op& op : writes.ops) match = match || Touches(op, p.fault.prefix);
      if (!match) continue;
      ++p.seen;
      if (p.seen == p.fault.nth || (p.fault.persistent && p.seen > p.fault.nth)) {
        fail = true;
        after = after || p.fault.after_apply;
      }
    }
  }
  const std::string what = writes.ops.empty() ? std::string("nothing") : writes.ops.front().key;
  if (!fail) return call();
  if (!after) return Status::Unavailable("state store unavailable (injected fault): " + what + " was not written");
  Result<int64_t> r = call();
  if (!r.ok()) return r;
  return Status::Unavailable("state store unavailable (injected fault): " + what +
                             " was written, but the reply was lost");
}

Result<std::optional<std::string>> FaultInjectingStore::Get(const std::string& key) {
  Stall();
  return StoreWrapper::Get(key);
}
Status FaultInjectingStore::Put(const std::string& key, const std::string& value) {
  return Mutate(Txn().Put(key, value), [&] { return AsResult(StoreWrapper::Put(key, value)); }).status();
}
Status FaultInjectingStore::Create(const std::string& key, const std::string& value) {
  return Mutate(Txn().Put(key, value), [&] { return AsResult(StoreWrapper::Create(key, value)); }).status();
}
Status FaultInjectingStore::Delete(const std::string& key) {
  return Mutate(Txn().Delete(key), [&] { return AsResult(StoreWrapper::Delete(key)); }).status();
}
Result<std::vector<std::pair<std::string, std::string>>> FaultInjectingStore::List(const std::string& prefix) {
  Stall();
  return StoreWrapper::List(prefix);
}
Result<int64_t> FaultInjectingStore::Revision() {
  Stall();
  return StoreWrapper::Revision();
}
Result<std::optional<Versioned>> FaultInjectingStore::GetVersioned(const std::string& key) {
  Stall();
  return StoreWrapper::GetVersioned(key);
}
Result<VersionedList> FaultInjectingStore::ListVersioned(const std::string& prefix) {
  Stall();
  return StoreWrapper::ListVersioned(prefix);
}
Status FaultInjectingStore::CompareAndPut(const std::string& key, const std::string& value,
                                          int64_t expected_mod_revision) {
  return Mutate(Txn().Put(key, value),
                [&] { return AsResult(StoreWrapper::CompareAndPut(key, value, expected_mod_revision)); })
      .status();
}
Status FaultInjectingStore::CompareAndDelete(const std::string& key, int64_t expected_mod_revision) {
  return Mutate(Txn().Delete(key), [&] { return AsResult(StoreWrapper::CompareAndDelete(key, expected_mod_revision)); })
      .status();
}
Result<int64_t> FaultInjectingStore::Commit(const Txn& txn) {
  return Mutate(txn, [&] { return StoreWrapper::Commit(txn); });
}
Result<std::unique_ptr<Watch>> FaultInjectingStore::WatchPrefix(const std::string& prefix, int64_t from_revision,
                                                                std::function<void(const WatchEvent&)> on_event) {
  Stall();
  return StoreWrapper::WatchPrefix(prefix, from_revision, std::move(on_event));
}
Status FaultInjectingStore::Compact(int64_t revision) {
  Stall();
  return StoreWrapper::Compact(revision);
}

}  // namespace pampa
