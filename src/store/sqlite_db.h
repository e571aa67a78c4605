// SQLite plumbing of the state store: statement and transaction handles that
// clean up on every path, the meta table, and opening the state file, which
// creates or upgrades its tables (format: docs/formats/state-store.md).
// None of it is thread-safe: the store calls it with its mutex held.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "base/status.h"

namespace pampa {

// The schema this pampa writes (PRAGMA user_version): 0 is the key/value
// table alone, 1 adds revisions, the change history and the meta table.
inline constexpr int kStateSchemaVersion = 1;

// A prepared statement, finalized when it goes out of scope. A statement that
// failed to prepare fails its first Step() with the database's error.
class SqlStatement {
 public:
  SqlStatement(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~SqlStatement() { sqlite3_finalize(s_); }
  SqlStatement(const SqlStatement&) = delete;
  SqlStatement& operator=(const SqlStatement&) = delete;

  SqlStatement& Bind(int i, const std::string& text) {
    sqlite3_bind_text(s_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  SqlStatement& Bind(int i, int64_t n) {
    sqlite3_bind_int64(s_, i, n);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    rc_ = s_ ? sqlite3_step(s_) : SQLITE_ERROR;
    return rc_;
  }
  // The last Step() finished the statement without error.
  bool done() const { return rc_ == SQLITE_DONE; }
  std::string Text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return std::string(p ? p : "", sqlite3_column_bytes(s_, col));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_OK;
};

// A transaction that rolls back unless Commit() returned Ok.
class SqlTransaction {
 public:
  // begin: "BEGIN" (reads) or "BEGIN IMMEDIATE" (writes).
  SqlTransaction(sqlite3* db, const char* begin);
  ~SqlTransaction();
  SqlTransaction(const SqlTransaction&) = delete;
  SqlTransaction& operator=(const SqlTransaction&) = delete;
  // Whether BEGIN succeeded.
  const Status& status() const { return status_; }
  Status Commit();

 private:
  sqlite3* db_;
  Status status_;
  bool open_ = false;
};

// kInternal "state store <op> failed: <sqlite message>".
Status SqlError(sqlite3* db, const std::string& op);
// A counter of the meta table ("revision": of the last write, "oldest": the
// oldest revision the change history holds).
Result<int64_t> ReadMeta(sqlite3* db, const std::string& name);
Status WriteMeta(sqlite3* db, const std::string& name, int64_t value);

// Opens path (creating it when missing) in WAL mode with synchronous=FULL,
// and brings its tables to kStateSchemaVersion in one transaction. The caller
// owns the handle (sqlite3_close). Errors name the path and what to do.
Result<sqlite3*> OpenStateDatabase(const std::string& path);

}  // namespace pampa
