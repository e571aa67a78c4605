// What only the SQLite store promises: state, revisions and history survive a
// restart and a kill -9 in the middle of a write, and state files from before
// revisions existed open and upgrade in place.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "store/store.h"
#include "store/store_test_util.h"

namespace pampa {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() / ("pampa-sqlite-" + std::to_string(getpid()) + "-" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "state.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Store> Open() {
    auto s = OpenSqliteStore(path_);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  // Runs statements on the file with plain SQLite, as an older pampa would.
  void RawSql(const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, DataRevisionsAndHistorySurviveReopen) {
  {
    auto s = Open();
    ASSERT_TRUE(s->Put("vms/web", "{}").ok());
    ASSERT_TRUE(s->Put("vms/db", "{}").ok());
    ASSERT_TRUE(s->Delete("vms/db").ok());
  }
  auto s = Open();
  EXPECT_EQ(**s->Get("vms/web"), "{}");
  EXPECT_EQ(*s->Revision(), 3);
  ASSERT_TRUE(s->Put("vms/web", "{\"cpus\":2}").ok());
  EXPECT_EQ((*s->GetVersioned("vms/web"))->mod_revision, 4);
  EXPECT_EQ((*s->GetVersioned("vms/web"))->create_revision, 1);
  EventLog log;
  auto w = s->WatchPrefix("vms/", 1, log.Callback());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(Describe(log.WaitFor(4)), (std::vector<std::string>{"put vms/web={} @1", "put vms/db={} @2",
                                                                "delete vms/db @3", "put vms/web={\"cpus\":2} @4"}));
}

TEST_F(SqliteStoreTest, StateFileFromBeforeRevisionsIsUpgradedInPlace) {
  RawSql(
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
      "INSERT INTO kv VALUES('vms/web', 'w'), ('pools/default', 'p');");
  {
    auto s = Open();
    EXPECT_EQ(**s->Get("vms/web"), "w");
    EXPECT_EQ(*s->Revision(), 1);
    EXPECT_EQ((*s->GetVersioned("pools/default"))->mod_revision, 1);
    ASSERT_TRUE(s->CompareAndPut("vms/web", "w2", 1).ok());
  }
  auto s = Open();  // the second open finds the new schema and changes nothing
  EXPECT_EQ(*s->Revision(), 2);
  EventLog log;
  auto w = s->WatchPrefix("", 1, log.Callback());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(Describe(log.WaitFor(3)),
            (std::vector<std::string>{"put pools/default=p @1", "put vms/web=w @1", "put vms/web=w2 @2"}));
}

TEST_F(SqliteStoreTest, StateFileOfANewerPampaIsRefused) {
  RawSql("CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID; PRAGMA user_version = 9;");
  auto s = OpenSqliteStore(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("written by a newer pampa (schema 9"), std::string::npos) << s.status().message();
}

TEST_F(SqliteStoreTest, NotADatabaseGivesClearError) {
  FILE* f = fopen(path_.c_str(), "w");
  fputs("this is not sqlite, just text that is long enough to be a header.....", f);
  fclose(f);
  auto s = OpenSqliteStore(path_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cannot"), std::string::npos);
}

// A child process commits transactions of 50 keys in a loop and is killed
// with SIGKILL at a random moment; every transaction must then be found
// whole or not at all, and the revision must match what the keys say.
TEST_F(SqliteStoreTest, KillDuringCommitLeavesWholeTransactions) {
  ASSERT_NE(Open(), nullptr);  // creates the file before the child races for it
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = OpenSqliteStore(path_);
    if (!s.ok()) _exit(2);
    for (int gen = 1;; ++gen) {
      Txn t;
      for (int k = 0; k < 50; ++k) t.Put("g/" + std::to_string(k), std::to_string(gen));
      if (!(*s)->Commit(t).ok()) _exit(3);
    }
  }
  // Kill once a few commits have landed, at a moment the child does not choose.
  for (int i = 0; i < 500; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto s = OpenSqliteStore(path_);
    if (s.ok() && *(*s)->Revision() >= 3) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(7));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);

  auto s = Open();
  auto items = s->ListVersioned("g/");
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->items.size(), 50u);
  const int64_t revision = items->revision;
  EXPECT_GE(revision, 3);
  for (const auto& [key, v] : items->items) {
    EXPECT_EQ(v.value, std::to_string(revision)) << key;
    EXPECT_EQ(v.mod_revision, revision) << key;
  }
  EventLog log;
  auto w = s->WatchPrefix("g/", revision, log.Callback());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(log.WaitFor(50).size(), 50u);  // the last transaction's history is whole too
}

}  // namespace
}  // namespace pampa
