#include "store/sqlite_db.h"

namespace pampa {
namespace {

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) == SQLITE_OK) return Status::Ok();
  std::string msg = err ? err : sqlite3_errmsg(db);
  sqlite3_free(err);
  return Status::Internal(msg);
}

// Schema 0 -> 1. Keys stored before revisions existed all become revision 1,
// so that every key has a revision >= 1 (0 means "absent" in compares) and a
// watch from revision 1 replays the whole state.
constexpr const char* kUpgradeTo1 =
    "ALTER TABLE kv ADD COLUMN mod_revision INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE kv ADD COLUMN create_revision INTEGER NOT NULL DEFAULT 0;"
    "UPDATE kv SET mod_revision = 1, create_revision = 1;"
    "CREATE TABLE changes(revision INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  deleted INTEGER NOT NULL, PRIMARY KEY(revision, key)) WITHOUT ROWID;"
    "INSERT INTO changes SELECT 1, key, value, 0 FROM kv;"
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta VALUES('revision', (SELECT COUNT(*) > 0 FROM kv)), ('oldest', 1);"
    "PRAGMA user_version = 1;";

Result<int> SchemaVersion(sqlite3* db) {
  SqlStatement st(db, "PRAGMA user_version");
  if (st.Step() != SQLITE_ROW) return SqlError(db, "schema check");
  return static_cast<int>(st.Int(0));
}

Status Upgrade(sqlite3* db) {
  SqlTransaction t(db, "BEGIN IMMEDIATE");  // another pampad may be upgrading the same file
  PAMPA_RETURN_IF_ERROR(t.status());
  PAMPA_ASSIGN_OR_RETURN(int version, SchemaVersion(db));
  if (version > kStateSchemaVersion) {
    return Status::Invalid("it was written by a newer pampa (schema " + std::to_string(version) +
                           ", this pampa knows up to " + std::to_string(kStateSchemaVersion) +
                           "): upgrade pampa, or use the newer one");
  }
  if (version == 0) PAMPA_RETURN_IF_ERROR(Exec(db, kUpgradeTo1));
  return t.Commit();
}

}  // namespace

SqlTransaction::SqlTransaction(sqlite3* db, const char* begin) : db_(db) {
  status_ = Exec(db, begin);
  open_ = status_.ok();
  if (!open_) status_ = Status::Internal("state store cannot start a transaction: " + status_.message());
}

SqlTransaction::~SqlTransaction() {
  if (open_) (void)Exec(db_, "ROLLBACK");
}

Status SqlTransaction::Commit() {
  Status st = Exec(db_, "COMMIT");
  if (!st.ok()) return Status::Internal("state store commit failed: " + st.message());
  open_ = false;
  return Status::Ok();
}

Status SqlError(sqlite3* db, const std::string& op) {
  return Status::Internal("state store " + op + " failed: " + sqlite3_errmsg(db));
}

Result<int64_t> ReadMeta(sqlite3* db, const std::string& name) {
  SqlStatement st(db, "SELECT value FROM meta WHERE name = ?1");
  st.Bind(1, name);
  if (st.Step() != SQLITE_ROW) return SqlError(db, "read of " + name);
  return st.Int(0);
}

Status WriteMeta(sqlite3* db, const std::string& name, int64_t value) {
  SqlStatement st(db, "UPDATE meta SET value = ?2 WHERE name = ?1");
  st.Bind(1, name).Bind(2, value);
  if (st.Step() != SQLITE_DONE) return SqlError(db, "write of " + name);
  return Status::Ok();
}

Result<sqlite3*> OpenStateDatabase(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status::Internal("cannot open state store " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  Status st = Exec(db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                   "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;");
  if (!st.ok()) {
    sqlite3_close(db);
    return Status::Internal("cannot initialise state store " + path + ": " + st.message() +
                            " (is it a Pampa state file?)");
  }
  // Checked outside a transaction first so that opening an up-to-date file
  // takes no write lock.
  auto version = SchemaVersion(db);
  if (!version.ok() || *version != kStateSchemaVersion) {
    st = version.ok() ? Upgrade(db) : version.status();
    if (!st.ok()) {
      sqlite3_close(db);
      return st.Context("cannot open state store " + path);
    }
  }
  return db;
}

}  // namespace pampa
