// SQLite implementation of Store (format: docs/formats/state-store.md). WAL
// journal with synchronous=FULL, so that a write that returned Ok survives a
// crash of pampad or of the host; every write is one BEGIN IMMEDIATE ...
// COMMIT that changes the keys, appends to the change history and advances
// the revision together, so a crash leaves all of it or none.
#include <sqlite3.h>

#include <algorithm>

#include "base/mutex.h"
#include "store/sqlite_db.h"
#include "store/store_internal.h"

namespace pampa {
namespace {

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, int64_t revision, const StoreOptions& options)
      : db_(db),
        history_revisions_(std::max<int64_t>(1, options.history_revisions)),
        signal_(std::make_shared<RevisionSignal>(revision)) {}
  ~SqliteStore() override {
    leases_.Stop();
    signal_->Close();
    sqlite3_close(db_);
  }

  Result<std::optional<std::string>> Get(const std::string& key) override {
    MutexLock lock(&mu_);
    PAMPA_ASSIGN_OR_RETURN(auto v, Lookup(key));
    if (!v) return std::optional<std::string>();
    return std::optional<std::string>(std::move(v->value));
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
    // Range scan [prefix, prefix + 0xff) keeps the primary-key index in use.
    SqlStatement st(db_, "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key");
    st.Bind(1, prefix).Bind(2, prefix + "\xff");
    std::vector<std::pair<std::string, std::string>> out;
    while (st.Step() == SQLITE_ROW) out.emplace_back(st.Text(0), st.Text(1));
    if (!st.done()) return SqlError(db_, "list");
    return out;
  }

  Result<int64_t> Revision() override {
    MutexLock lock(&mu_);
    return ReadMeta(db_, "revision");
  }
  Result<std::optional<Versioned>> GetVersioned(const std::string& key) override {
    MutexLock lock(&mu_);
    return Lookup(key);
  }
  Result<VersionedList> ListVersioned(const std::string& prefix) override {
    MutexLock lock(&mu_);
    SqlTransaction t(db_, "BEGIN");  // one snapshot for the revision and the rows
    PAMPA_RETURN_IF_ERROR(t.status());
    VersionedList out;
    PAMPA_ASSIGN_OR_RETURN(out.revision, ReadMeta(db_, "revision"));
    SqlStatement st(db_,
                    "SELECT key, value, mod_revision, create_revision FROM kv WHERE key >= ?1 AND key < ?2 "
                    "ORDER BY key");
    st.Bind(1, prefix).Bind(2, prefix + "\xff");
    while (st.Step() == SQLITE_ROW) out.items.emplace_back(st.Text(0), Versioned{st.Text(1), st.Int(2), st.Int(3)});
    if (!st.done()) return SqlError(db_, "list");
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
      PAMPA_ASSIGN_OR_RETURN(int64_t oldest, ReadMeta(db_, "oldest"));
      PAMPA_ASSIGN_OR_RETURN(int64_t revision, ReadMeta(db_, "revision"));
      if (from_revision != 0 && from_revision < oldest) return CompactedError(from_revision, oldest);
      from = from_revision != 0 ? from_revision : revision + 1;
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
    SqlTransaction t(db_, "BEGIN IMMEDIATE");
    PAMPA_RETURN_IF_ERROR(t.status());
    PAMPA_ASSIGN_OR_RETURN(int64_t current, ReadMeta(db_, "revision"));
    if (revision > current) {
      return Status::Invalid("cannot compact to revision " + std::to_string(revision) + ": the store is at " +
                             std::to_string(current));
    }
    PAMPA_RETURN_IF_ERROR(CompactTo(revision));
    return t.Commit();
  }

 private:
  Result<std::optional<Versioned>> Lookup(const std::string& key) REQUIRES(mu_) {
    SqlStatement st(db_, "SELECT value, mod_revision, create_revision FROM kv WHERE key = ?1");
    st.Bind(1, key);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return std::optional<Versioned>();
    if (rc != SQLITE_ROW) return SqlError(db_, "get");
    return std::optional<Versioned>(Versioned{st.Text(0), st.Int(1), st.Int(2)});
  }

  // Commit without ValidateTxn: Put/Create/Delete keep accepting any key, as
  // they always did.
  Result<int64_t> Apply(const Txn& txn) {
    MutexLock lock(&mu_);
    // IMMEDIATE takes the write lock before the compares are read, so that
    // another process cannot change a compared key before COMMIT.
    SqlTransaction t(db_, "BEGIN IMMEDIATE");
    PAMPA_RETURN_IF_ERROR(t.status());
    for (const Compare& c : txn.compares) {
      PAMPA_ASSIGN_OR_RETURN(auto current, Lookup(c.key));
      PAMPA_RETURN_IF_ERROR(CheckCompare(c, current));
    }
    PAMPA_ASSIGN_OR_RETURN(int64_t current, ReadMeta(db_, "revision"));
    const int64_t rev = current + 1;
    bool changed = false;
    for (const Op& op : txn.ops) {
      PAMPA_ASSIGN_OR_RETURN(bool op_changed, ApplyOp(op, rev));
      changed = changed || op_changed;
    }
    if (!changed) return current;  // t rolls back nothing
    PAMPA_RETURN_IF_ERROR(WriteMeta(db_, "revision", rev));
    PAMPA_RETURN_IF_ERROR(CompactTo(rev - history_revisions_ + 1));
    PAMPA_RETURN_IF_ERROR(t.Commit());
    lock.Unlock();
    signal_->Advance(rev);
    return rev;
  }

  // Inside a write transaction. Whether a key changed.
  Result<bool> ApplyOp(const Op& op, int64_t rev) REQUIRES(mu_) {
    if (op.kind == Op::Kind::kPut) {
      SqlStatement put(db_,
                       "INSERT INTO kv(key, value, mod_revision, create_revision) VALUES(?1, ?2, ?3, ?3) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision");
      put.Bind(1, op.key).Bind(2, op.value).Bind(3, rev);
      if (put.Step() != SQLITE_DONE) return SqlError(db_, "put");
      SqlStatement log(db_, "INSERT OR REPLACE INTO changes(revision, key, value, deleted) VALUES(?1, ?2, ?3, 0)");
      log.Bind(1, rev).Bind(2, op.key).Bind(3, op.value);
      if (log.Step() != SQLITE_DONE) return SqlError(db_, "put");
      return true;
    }
    // A Delete is the range [key, key] and a DeletePrefix [prefix, prefix + 0xff).
    const bool one = op.kind == Op::Kind::kDelete;
    const std::string range = one ? "key = ?2" : "key >= ?2 AND key < ?3";
    SqlStatement log(db_, ("INSERT OR REPLACE INTO changes(revision, key, value, deleted) SELECT ?1, key, '', 1 "
                           "FROM kv WHERE " +
                           range)
                              .c_str());
    log.Bind(1, rev).Bind(2, op.key);
    if (!one) log.Bind(3, op.key + "\xff");
    if (log.Step() != SQLITE_DONE) return SqlError(db_, "delete");
    if (sqlite3_changes(db_) == 0) return false;
    SqlStatement del(db_, ("DELETE FROM kv WHERE " + range).c_str());
    del.Bind(2, op.key);
    if (!one) del.Bind(3, op.key + "\xff");
    if (del.Step() != SQLITE_DONE) return SqlError(db_, "delete");
    return true;
  }

  // Inside a write transaction.
  Status CompactTo(int64_t revision) REQUIRES(mu_) {
    PAMPA_ASSIGN_OR_RETURN(int64_t oldest, ReadMeta(db_, "oldest"));
    if (revision <= oldest) return Status::Ok();
    SqlStatement st(db_, "DELETE FROM changes WHERE revision < ?1");
    st.Bind(1, revision);
    if (st.Step() != SQLITE_DONE) return SqlError(db_, "compact");
    return WriteMeta(db_, "oldest", revision);
  }

  Result<std::vector<WatchEvent>> ReadChanges(const std::string& prefix, int64_t from, int64_t to) {
    MutexLock lock(&mu_);
    SqlTransaction t(db_, "BEGIN");  // compaction between the two reads would hide a gap
    PAMPA_RETURN_IF_ERROR(t.status());
    PAMPA_ASSIGN_OR_RETURN(int64_t oldest, ReadMeta(db_, "oldest"));
    if (from < oldest) return CompactedError(from, oldest);
    SqlStatement st(db_,
                    "SELECT revision, key, value, deleted FROM changes WHERE revision >= ?1 AND revision <= ?2 "
                    "AND key >= ?3 AND key < ?4 ORDER BY revision, key");
    st.Bind(1, from).Bind(2, to).Bind(3, prefix).Bind(4, prefix + "\xff");
    std::vector<WatchEvent> out;
    while (st.Step() == SQLITE_ROW) {
      out.push_back({.type = st.Int(3) != 0 ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut,
                     .key = st.Text(1),
                     .value = st.Text(2),
                     .revision = st.Int(0)});
    }
    if (!st.done()) return SqlError(db_, "read history");
    return out;
  }

  Mutex mu_;  // serialises use of db_ (one connection)
  // GUARDED_BY rather than PT_GUARDED_BY: the connection is only ever passed
  // to SQLite, never dereferenced here, so reading the pointer is the use.
  sqlite3* const db_ GUARDED_BY(mu_);
  const int64_t history_revisions_;
  const std::shared_ptr<RevisionSignal> signal_;
  LocalLeases leases_{*this};  // stopped first thing in the destructor
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return OpenSqliteStore(path, StoreOptions());
}

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, const StoreOptions& options) {
  PAMPA_ASSIGN_OR_RETURN(sqlite3 * db, OpenStateDatabase(path));
  auto revision = ReadMeta(db, "revision");
  if (!revision.ok()) {
    sqlite3_close(db);
    return revision.status().Context("cannot open state store " + path);
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(db, *revision, options));
}

}  // namespace pampa
