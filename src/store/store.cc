// The parts of the Store contract every implementation shares: Txn building
// and checking, the messages of failed compares, and compare-and-swap as a
// one-compare, one-op Txn.
#include <set>

#include "store/store_internal.h"

namespace pampa {

Txn& Txn::IfAbsent(std::string key) {
  compares.push_back({.kind = Compare::Kind::kAbsent, .key = std::move(key)});
  return *this;
}

Txn& Txn::IfExists(std::string key) {
  compares.push_back({.kind = Compare::Kind::kExists, .key = std::move(key)});
  return *this;
}

Txn& Txn::IfModRevision(std::string key, int64_t mod_revision) {
  compares.push_back({.kind = Compare::Kind::kModRevision, .key = std::move(key), .mod_revision = mod_revision});
  return *this;
}

Txn& Txn::IfValue(std::string key, std::string value) {
  compares.push_back({.kind = Compare::Kind::kValue, .key = std::move(key), .value = std::move(value)});
  return *this;
}

Txn& Txn::Put(std::string key, std::string value) {
  ops.push_back({.kind = Op::Kind::kPut, .key = std::move(key), .value = std::move(value)});
  return *this;
}

Txn& Txn::Delete(std::string key) {
  ops.push_back({.kind = Op::Kind::kDelete, .key = std::move(key)});
  return *this;
}

Txn& Txn::DeletePrefix(std::string prefix) {
  ops.push_back({.kind = Op::Kind::kDeletePrefix, .key = std::move(prefix)});
  return *this;
}

Status ValidateTxn(const Txn& txn) {
  for (const Compare& c : txn.compares) {
    if (c.key.empty()) return Status::Invalid("state store transaction: a compare has an empty key");
  }
  // The final state of every key must not depend on the order of the ops
  // (etcd refuses such a Txn too, so both stores behave alike).
  std::set<std::string> puts;
  for (const Op& op : txn.ops) {
    if (op.key.empty()) return Status::Invalid("state store transaction: an operation has an empty key or prefix");
    if (op.kind == Op::Kind::kPut && !puts.insert(op.key).second) {
      return Status::Invalid("state store transaction: " + op.key + " is written twice");
    }
  }
  for (const Op& op : txn.ops) {
    if (op.kind == Op::Kind::kDelete && puts.count(op.key) > 0) {
      return Status::Invalid("state store transaction: " + op.key + " is both put and deleted");
    }
    if (op.kind == Op::Kind::kDeletePrefix) {
      auto it = puts.lower_bound(op.key);
      if (it != puts.end() && it->rfind(op.key, 0) == 0) {
        return Status::Invalid("state store transaction: " + *it + " is put and deleted by prefix " + op.key);
      }
    }
  }
  return Status::Ok();
}

Status CheckCompare(const Compare& c, const std::optional<Versioned>& current) {
  const std::string now = current ? std::to_string(current->mod_revision) : "absent";
  switch (c.kind) {
    case Compare::Kind::kAbsent:
      if (!current) return Status::Ok();
      return Status::Conflict(c.key + " already exists");
    case Compare::Kind::kExists:
      if (current) return Status::Ok();
      return Status::Conflict(c.key + " does not exist");
    case Compare::Kind::kModRevision:
      if ((current ? current->mod_revision : 0) == c.mod_revision) return Status::Ok();
      if (c.mod_revision == 0) {
        return Status::Conflict(c.key + " already exists (revision " + now + "): re-read and retry");
      }
      return Status::Conflict(c.key + " changed since revision " + std::to_string(c.mod_revision) + " (now " + now +
                              "): re-read and retry");
    case Compare::Kind::kValue:
      if (current && current->value == c.value) return Status::Ok();
      if (!current) return Status::Conflict(c.key + " does not exist");
      return Status::Conflict(c.key + " does not hold the expected value (changed at revision " + now +
                              "): re-read and retry");
  }
  return Status::Internal("state store: unknown compare kind");
}

Status CompactedError(int64_t revision, int64_t oldest_kept) {
  return Status::Conflict("revision " + std::to_string(revision) + " was compacted (oldest kept: " +
                          std::to_string(oldest_kept) + "): re-list and watch from the current revision");
}

Status ValidateWatch(int64_t from_revision, const std::function<void(const WatchEvent&)>& on_event) {
  if (from_revision < 0) return Status::Invalid("cannot watch from revision " + std::to_string(from_revision));
  if (!on_event) return Status::Invalid("a watch needs a callback");
  return Status::Ok();
}

Status Store::CompareAndPut(const std::string& key, const std::string& value, int64_t expected_mod_revision) {
  return Commit(Txn().IfModRevision(key, expected_mod_revision).Put(key, value)).status();
}

Status Store::CompareAndDelete(const std::string& key, int64_t expected_mod_revision) {
  return Commit(Txn().IfModRevision(key, expected_mod_revision).Delete(key)).status();
}

namespace {

// Whether op's effect is in store now: nullopt when the store cannot say.
std::optional<bool> EffectPresent(Store& store, const Op& op, int64_t* put_revision) {
  switch (op.kind) {
    case Op::Kind::kPut: {
      auto v = store.GetVersioned(op.key);
      if (!v.ok()) return std::nullopt;
      if (!v->has_value() || (*v)->value != op.value) return false;
      *put_revision = (*v)->mod_revision;
      return true;
    }
    case Op::Kind::kDelete: {
      auto v = store.Get(op.key);
      if (!v.ok()) return std::nullopt;
      return !v->has_value();
    }
    case Op::Kind::kDeletePrefix: {
      auto v = store.List(op.key);
      if (!v.ok()) return std::nullopt;
      return v->empty();
    }
  }
  return false;
}

}  // namespace

Result<int64_t> CommitResolved(Store& store, const Txn& txn) {
  auto rev = store.Commit(txn);
  for (int attempt = 0;; ++attempt) {
    if (rev.ok() || rev.status().code() == ErrorCode::kInvalid) return rev;
    bool conflict = rev.status().code() == ErrorCode::kConflict;
    if (conflict && attempt == 0) return rev;  // an answer, never resolved by reading back
    // Read back: is every op's effect there?
    int64_t put_revision = 0;
    bool unknown = false, absent = false;
    for (const Op& op : txn.ops) {
      std::optional<bool> present = EffectPresent(store, op, &put_revision);
      unknown |= !present.has_value();
      absent |= present.has_value() && !*present;
      if (!present.value_or(false)) break;
    }
    if (!unknown && !absent) {
      if (put_revision != 0) return put_revision;
      auto now = store.Revision();
      return now.ok() ? *now : rev;
    }
    // It did not land (yet): a guarded txn is tried once more, on a new
    // exchange. Should the first copy still land late, its compares fail
    // then (or the retry's do, and the read-back above finds ours).
    if (unknown || attempt > 0 || txn.compares.empty()) return rev;
    rev = store.Commit(txn);
  }
}

}  // namespace pampa
