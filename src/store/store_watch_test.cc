// Conformance suite, part two: watches, their history and its compaction.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "store/store.h"
#include "store/store_test_util.h"

namespace pampa {
namespace {

using StoreWatchTest = StoreConformance;

TEST_P(StoreWatchTest, WatchFromNowSeesLaterWritesUnderItsPrefixInOrder) {
  ASSERT_TRUE(store_->Put("vms/old", "0").ok());
  EventLog log;
  auto w = store_->WatchPrefix("vms/", 0, log.Callback());
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Put("tasks/t", "x").ok());
  ASSERT_TRUE(store_->Delete("vms/a").ok());
  ASSERT_TRUE(store_->Commit(Txn().Put("vms/c", "3").Put("vms/b", "2").Delete("vms/old")).ok());
  EXPECT_EQ(Describe(log.WaitFor(5)), (std::vector<std::string>{"put vms/a=1 @2", "delete vms/a @4", "put vms/b=2 @5",
                                                                "put vms/c=3 @5", "delete vms/old @5"}));
}

TEST_P(StoreWatchTest, WatchFromAPastRevisionReplaysHistoryThenFollows) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  ASSERT_TRUE(store_->Put("vms/a", "2").ok());
  ASSERT_TRUE(store_->Delete("vms/a").ok());
  EventLog log;
  auto w = store_->WatchPrefix("vms/", 2, log.Callback());
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(store_->Put("vms/b", "3").ok());
  EXPECT_EQ(Describe(log.WaitFor(3)),
            (std::vector<std::string>{"put vms/a=2 @2", "delete vms/a @3", "put vms/b=3 @4"}));
}

TEST_P(StoreWatchTest, ListThenWatchMissesNothingAndRepeatsNothing) {
  ASSERT_TRUE(store_->Put("vms/a", "1").ok());
  auto l = store_->ListVersioned("vms/");
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE(store_->Put("vms/b", "2").ok());  // between the list and the watch
  EventLog log;
  auto w = store_->WatchPrefix("vms/", l->revision + 1, log.Callback());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(Describe(log.WaitFor(1)), (std::vector<std::string>{"put vms/b=2 @2"}));
}

TEST_P(StoreWatchTest, WatchFromACompactedRevisionIsRefused) {
  Open({.history_revisions = 3});
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(store_->Put("k", std::to_string(i)).ok());
  EventLog log;
  auto w = store_->WatchPrefix("", 2, log.Callback());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), ErrorCode::kConflict);
  EXPECT_EQ(w.status().message(),
            "revision 2 was compacted (oldest kept: 4): re-list and watch from the current revision");
  EXPECT_TRUE(store_->WatchPrefix("", 4, log.Callback()).ok());

  ASSERT_TRUE(store_->Compact(6).ok());
  EXPECT_EQ(store_->WatchPrefix("", 5, log.Callback()).status().message(),
            "revision 5 was compacted (oldest kept: 6): re-list and watch from the current revision");
  EXPECT_TRUE(store_->Compact(2).ok());  // already forgotten
  EXPECT_EQ(store_->Compact(7).code(), ErrorCode::kInvalid);
  EXPECT_EQ(**store_->Get("k"), "5");  // compaction keeps the keys
}

TEST_P(StoreWatchTest, WatcherLeftBehindByCompactionIsCanceled) {
  Open({.history_revisions = 5});
  ASSERT_TRUE(store_->Put("k", "0").ok());
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool release = false;
  EventLog log;
  auto record = log.Callback();
  auto w = store_->WatchPrefix("", 1, [&](const WatchEvent& e) {
    record(e);
    std::unique_lock lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });  // a slow consumer
  });
  ASSERT_TRUE(w.ok());
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  for (int i = 1; i < 20; ++i) ASSERT_TRUE(store_->Put("k", std::to_string(i)).ok());
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  auto events = log.WaitFor(2);
  ASSERT_EQ(events.size(), 2u) << ::testing::PrintToString(Describe(events));
  EXPECT_EQ(Describe(events[0]), "put k=0 @1");
  EXPECT_EQ(events[1].type, WatchEvent::Type::kCanceled);
  EXPECT_EQ(events[1].revision, 2);
  EXPECT_EQ(events[1].error.message(),
            "revision 2 was compacted (oldest kept: 16): re-list and watch from the current revision");
}

TEST_P(StoreWatchTest, NoCallbackRunsAfterTheWatchIsDestroyed) {
  EventLog log;
  std::atomic<bool> inside{false};
  std::atomic<int> calls{0};
  auto w = store_->WatchPrefix("", 0, [&](const WatchEvent&) {
    inside = true;
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    inside = false;
  });
  ASSERT_TRUE(w.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store_->Put("k", std::to_string(i)).ok());
  while (calls.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  w->reset();  // while a callback is likely running
  EXPECT_FALSE(inside.load());
  int seen = calls.load();
  ASSERT_TRUE(store_->Put("k", "after").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls.load(), seen);
  EXPECT_LT(seen, 5);  // destruction does not wait for the backlog
}

TEST_P(StoreWatchTest, CallbackMayWriteToTheStore) {
  EventLog log;
  auto record = log.Callback();
  auto w = store_->WatchPrefix("", 0, [&](const WatchEvent& e) {
    record(e);
    if (e.key == "ping") {
      ASSERT_TRUE(store_->Put("pong", "1").ok());
    }
  });
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(store_->Put("ping", "1").ok());
  EXPECT_EQ(Describe(log.WaitFor(2)), (std::vector<std::string>{"put ping=1 @1", "put pong=1 @2"}));
}

TEST_P(StoreWatchTest, EveryWatcherSeesEveryChangeFromConcurrentWriters) {
  EventLog a, b;
  auto wa = store_->WatchPrefix("n/", 0, a.Callback());
  auto wb = store_->WatchPrefix("n/", 0, b.Callback());
  ASSERT_TRUE(wa.ok() && wb.ok());
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) ASSERT_TRUE(store_->Put("n/" + std::to_string(t), std::to_string(i)).ok());
    });
  }
  for (auto& t : ts) t.join();
  for (EventLog* log : {&a, &b}) {
    auto events = log->WaitFor(40);
    ASSERT_EQ(events.size(), 40u);
    for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].revision, static_cast<int64_t>(i + 1));
  }
}

TEST_P(StoreWatchTest, BadWatchArgumentsAreRefused) {
  EventLog log;
  EXPECT_EQ(store_->WatchPrefix("", -1, log.Callback()).status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->WatchPrefix("", 0, nullptr).status().code(), ErrorCode::kInvalid);
}

INSTANTIATE_TEST_SUITE_P(AllStores, StoreWatchTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite, StoreKind::kEtcd,
                                           StoreKind::kEtcdTls),
                         PrintStoreKind);

}  // namespace
}  // namespace pampa
