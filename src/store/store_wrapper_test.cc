#include "store/store_wrapper.h"

#include <gtest/gtest.h>

#include <chrono>

#include "store/store_test_util.h"

namespace pampa {
namespace {

class FaultInjectingStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> target_ = NewMemoryStore();
  FaultInjectingStore store_{*target_};
};

TEST_F(FaultInjectingStoreTest, ForwardsEveryCallWhenNoFaultIsSet) {
  EventLog log;
  auto w = store_.WatchPrefix("vms/", 0, log.Callback());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(store_.Create("vms/a", "1").ok());
  ASSERT_TRUE(store_.CompareAndPut("vms/a", "2", 1).ok());
  ASSERT_TRUE(store_.Commit(Txn().IfExists("vms/a").Put("vms/b", "3")).ok());
  ASSERT_TRUE(store_.CompareAndDelete("vms/b", 3).ok());
  EXPECT_EQ(**store_.Get("vms/a"), "2");
  EXPECT_EQ(*store_.Revision(), 4);
  EXPECT_EQ(store_.List("vms/")->size(), 1u);
  EXPECT_EQ(store_.ListVersioned("vms/")->revision, 4);
  EXPECT_EQ(log.WaitFor(4).size(), 4u);
  EXPECT_EQ(store_.mutations(), 4);
}

TEST_F(FaultInjectingStoreTest, TheNthMutationFailsAndWritesNothing) {
  store_.InjectFault({.nth = 2});
  ASSERT_TRUE(store_.Put("a", "1").ok());
  Status st = store_.Put("b", "1");
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_NE(st.message().find("injected fault"), std::string::npos);
  EXPECT_FALSE(target_->Get("b")->has_value());
  ASSERT_TRUE(store_.Put("c", "1").ok());  // one failure only
  EXPECT_EQ(*target_->Revision(), 2);
  EXPECT_EQ(store_.mutations(), 3);
}

TEST_F(FaultInjectingStoreTest, APrefixFaultCountsOnlyCallsWritingUnderIt) {
  store_.InjectFault({.nth = 2, .prefix = "vms/"});
  ASSERT_TRUE(store_.Put("tasks/1", "t").ok());
  ASSERT_TRUE(store_.Put("vms/a", "1").ok());
  ASSERT_TRUE(store_.Put("tasks/2", "t").ok());
  // A transaction counts when any of its writes falls under the prefix.
  auto r = store_.Commit(Txn().Put("tasks/3", "t").DeletePrefix("vms/"));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(target_->Get("tasks/3")->has_value());
  EXPECT_TRUE(target_->Get("vms/a")->has_value());
}

TEST_F(FaultInjectingStoreTest, AnAfterApplyFaultWritesButReportsFailure) {
  store_.InjectFault({.nth = 1, .after_apply = true});
  Status st = store_.Create("vms/a", "1");
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_NE(st.message().find("reply was lost"), std::string::npos);
  EXPECT_EQ(**target_->Get("vms/a"), "1");
  // A caller that retries blindly now meets its own write.
  EXPECT_EQ(store_.Create("vms/a", "1").code(), ErrorCode::kConflict);
}

TEST_F(FaultInjectingStoreTest, APersistentFaultKeepsFailingUntilCleared) {
  store_.InjectFault({.nth = 1, .persistent = true});
  EXPECT_FALSE(store_.Put("a", "1").ok());
  EXPECT_FALSE(store_.Delete("a").ok());
  EXPECT_FALSE(store_.CompareAndPut("a", "1", 0).ok());
  EXPECT_TRUE(store_.Get("a").ok());  // reads still work
  store_.Clear();
  EXPECT_TRUE(store_.Put("a", "1").ok());
}

TEST_F(FaultInjectingStoreTest, AStallDelaysEveryCall) {
  store_.SetStall(std::chrono::milliseconds(30));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store_.Put("a", "1").ok());
  ASSERT_TRUE(store_.Get("a").ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(60));
  store_.SetStall(std::chrono::milliseconds(0));
}

// CommitResolved tells a transaction that landed though its reply was lost
// from one that did not land, by reading its keys back.
TEST_F(FaultInjectingStoreTest, CommitResolvedAdoptsAnAppliedTxnWhoseReplyWasLost) {
  ASSERT_TRUE(store_.Put("intents/old", "x").ok());
  store_.InjectFault({.nth = 1, .after_apply = true});
  auto rev = CommitResolved(
      store_, Txn().IfAbsent("vms/a").Put("vms/a", "spec").Put("intents/a", "spec").Delete("intents/old"));
  ASSERT_TRUE(rev.ok()) << rev.status().message();
  EXPECT_EQ(*rev, 2);
  EXPECT_EQ((*target_->GetVersioned("vms/a"))->mod_revision, 2);
}

TEST_F(FaultInjectingStoreTest, CommitResolvedTriesAGuardedTxnThatDidNotLandOnceMore) {
  store_.InjectFault({.nth = 1});
  auto rev = CommitResolved(store_, Txn().IfAbsent("vms/a").Put("vms/a", "spec"));
  ASSERT_TRUE(rev.ok()) << rev.status().message();
  EXPECT_EQ(**target_->Get("vms/a"), "spec");
}

TEST_F(FaultInjectingStoreTest, CommitResolvedReportsATxnThatDidNotLandTwice) {
  store_.InjectFault({.nth = 1, .persistent = true});
  auto rev = CommitResolved(store_, Txn().IfAbsent("vms/a").Put("vms/a", "spec"));
  EXPECT_EQ(rev.status().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(target_->Get("vms/a")->has_value());
}

TEST_F(FaultInjectingStoreTest, CommitResolvedNeverRetriesAnUnguardedTxn) {
  // Without compares a late first copy could land after the retry: once only.
  store_.InjectFault({.nth = 1});
  EXPECT_EQ(CommitResolved(store_, Txn().Put("vms/a", "spec")).status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store_.mutations(), 1);
}

TEST_F(FaultInjectingStoreTest, CommitResolvedNeverAdoptsAnotherWritersValue) {
  // Someone else put vms/a with another value: the lost txn is not ours.
  ASSERT_TRUE(target_->Put("vms/a", "theirs").ok());
  store_.InjectFault({.nth = 1});
  auto rev = CommitResolved(store_, Txn().Put("vms/a", "ours"));
  EXPECT_EQ(rev.status().code(), ErrorCode::kUnavailable);
  // A conflict is an answer, never resolved by reading back.
  auto conflict = CommitResolved(store_, Txn().IfAbsent("vms/a").Put("vms/a", "theirs"));
  EXPECT_EQ(conflict.status().code(), ErrorCode::kConflict);
}

TEST_F(FaultInjectingStoreTest, CommitResolvedAdoptsALostDeleteOnlyTxn) {
  ASSERT_TRUE(store_.Put("snapshots/a/1", "s").ok());
  ASSERT_TRUE(store_.Put("intents/a", "i").ok());
  store_.InjectFault({.nth = 1, .after_apply = true});
  auto rev = CommitResolved(store_, Txn().DeletePrefix("snapshots/a/").Delete("intents/a"));
  ASSERT_TRUE(rev.ok()) << rev.status().message();
  EXPECT_EQ(*rev, 3);
}

}  // namespace
}  // namespace pampa
