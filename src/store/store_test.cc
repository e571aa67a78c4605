// One conformance suite that every Store implementation passes.
#include "store/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace pampa {
namespace {

enum class Kind { kMemory, kSqlite };

class StoreConformance : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kMemory) {
      store_ = NewMemoryStore();
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("pampa-store-" + std::to_string(getpid()));
      std::filesystem::create_directories(dir_);
      auto s = OpenSqliteStore((dir_ / "state.db").string());
      ASSERT_TRUE(s.ok()) << s.status().message();
      store_ = std::move(s.value());
    }
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Store> store_;
  std::filesystem::path dir_;
};

TEST_P(StoreConformance, GetOfMissingKeyIsEmpty) {
  auto v = store_->Get("vms/none");
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
}

TEST_P(StoreConformance, PutThenGetAndOverwrite) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  EXPECT_EQ(**store_->Get("vms/a"), "1");
  ASSERT_TRUE(store_->Put("vms/a", "2").ok());
  EXPECT_EQ(**store_->Get("vms/a"), "2");
}

TEST_P(StoreConformance, CreateRefusesExistingKey) {
  ASSERT_TRUE(store_->Create("vms/a", "1").ok());
  auto st = store_->Create("vms/a", "2");
  EXPECT_EQ(st.code(), ErrorCode::kConflict);
  EXPECT_EQ(**store_->Get("vms/a"), "1");
}

TEST_P(StoreConformance, ListIsPrefixOnlyAndOrdered) {
  ASSERT_TRUE(store_->Put("vms/b", "b").ok());
  ASSERT_TRUE(store_->Put("vms/a", "a").ok());
  ASSERT_TRUE(store_->Put("vmsx/c", "c").ok());
  ASSERT_TRUE(store_->Put("pools/default", "p").ok());
  auto l = store_->List("vms/");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].first, "vms/a");
  EXPECT_EQ((*l)[1].first, "vms/b");
}

TEST_P(StoreConformance, DeleteIsIdempotent) {
  ASSERT_TRUE(store_->Put("k", "v").ok());
  ASSERT_TRUE(store_->Delete("k").ok());
  ASSERT_TRUE(store_->Delete("k").ok());
  EXPECT_FALSE(store_->Get("k")->has_value());
}

TEST_P(StoreConformance, ValuesAreBinarySafeUtf8) {
  std::string v = "{\"name\":\"é\\u0000\"}\n";
  ASSERT_TRUE(store_->Put("k", v).ok());
  EXPECT_EQ(**store_->Get("k"), v);
}

TEST_P(StoreConformance, ConcurrentCreatesHaveOneWinner) {
  std::atomic<int> wins{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      if (store_->Create("race", std::to_string(i)).ok()) ++wins;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(wins.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(AllStores, StoreConformance, ::testing::Values(Kind::kMemory, Kind::kSqlite));

TEST(SqliteStore, DataSurvivesReopen) {
  auto dir = std::filesystem::temp_directory_path() / ("pampa-reopen-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "state.db").string();
  {
    auto s = OpenSqliteStore(path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Put("vms/web", "{}").ok());
  }
  auto s = OpenSqliteStore(path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(**(*s)->Get("vms/web"), "{}");
  std::filesystem::remove_all(dir);
}

TEST(SqliteStore, NotADatabaseGivesClearError) {
  auto path = std::filesystem::temp_directory_path() / ("pampa-bad-" + std::to_string(getpid()));
  FILE* f = fopen(path.c_str(), "w");
  fputs("this is not sqlite, just text that is long enough to be a header.....", f);
  fclose(f);
  auto s = OpenSqliteStore(path.string());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cannot"), std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace pampa
