// SQLite implementation of Store: one table, WAL journal, synchronous=FULL so
// that a Put that returned Ok survives a crash of pampad or of the host.
#include <sqlite3.h>

#include <mutex>

#include "store/store.h"

namespace pampa {
namespace {

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override { sqlite3_close(db_); }

  Result<std::optional<std::string>> Get(const std::string& key) override {
    std::lock_guard lock(mu_);
    Stmt st(db_, "SELECT value FROM kv WHERE key = ?1");
    if (!st.ok()) return Error("get");
    sqlite3_bind_text(st.s, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(st.s);
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    if (rc != SQLITE_ROW) return Error("get");
    return std::optional<std::string>(Text(st.s, 0));
  }

  Status Put(const std::string& key, const std::string& value) override {
    return Exec("INSERT INTO kv(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", key, value,
                "put");
  }

  Status Create(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu_);
    Stmt st(db_, "INSERT INTO kv(key, value) VALUES(?1, ?2)");
    if (!st.ok()) return Error("create");
    Bind(st.s, key, value);
    int rc = sqlite3_step(st.s);
    if (rc == SQLITE_CONSTRAINT) return Status::Conflict(key + " already exists");
    if (rc != SQLITE_DONE) return Error("create");
    return Status::Ok();
  }

  Status Delete(const std::string& key) override {
    return Exec("DELETE FROM kv WHERE key = ?1", key, std::string(), "delete");
  }

  Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) override {
    std::lock_guard lock(mu_);
    // Range scan [prefix, prefix + 0xff) keeps the primary-key index in use.
    Stmt st(db_, "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key");
    if (!st.ok()) return Error("list");
    std::string end = prefix + "\xff";
    Bind(st.s, prefix, end);
    std::vector<std::pair<std::string, std::string>> out;
    int rc;
    while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) out.emplace_back(Text(st.s, 0), Text(st.s, 1));
    if (rc != SQLITE_DONE) return Error("list");
    return out;
  }

 private:
  struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s, nullptr); }
    ~Stmt() { sqlite3_finalize(s); }
    bool ok() const { return s != nullptr; }
  };
  static void Bind(sqlite3_stmt* s, const std::string& a, const std::string& b) {
    sqlite3_bind_text(s, 1, a.data(), static_cast<int>(a.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
  }
  static std::string Text(sqlite3_stmt* s, int col) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
    return std::string(p ? p : "", sqlite3_column_bytes(s, col));
  }
  Status Error(const char* op) {
    return Status::Internal(std::string("state store ") + op + " failed: " + sqlite3_errmsg(db_));
  }
  Status Exec(const char* sql, const std::string& a, const std::string& b, const char* op) {
    std::lock_guard lock(mu_);
    Stmt st(db_, sql);
    if (!st.ok()) return Error(op);
    Bind(st.s, a, b);
    if (sqlite3_step(st.s) != SQLITE_DONE) return Error(op);
    return Status::Ok();
  }

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status::Internal("cannot open state store " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  const char* init =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";
  char* err = nullptr;
  if (sqlite3_exec(db, init, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    sqlite3_close(db);
    return Status::Internal("cannot initialise state store " + path + ": " + msg + " (is it a Pampa state file?)");
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(db));
}

}  // namespace pampa
