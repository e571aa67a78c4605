#include "backup/object_store_wrapper.h"

#include <gtest/gtest.h>

#include <chrono>

namespace pampa {
namespace {

class FaultInjectingObjectStoreTest : public ::testing::Test {
 protected:
  FaultInjectingObjectStore store_{NewMemoryObjectStore()};
};

TEST_F(FaultInjectingObjectStoreTest, ForwardsEveryCallWhenNoFaultIsSet) {
  ASSERT_TRUE(store_.Put("config", "c").ok());
  ASSERT_TRUE(store_.Put("chunks/ab/abcd", "x").ok());
  EXPECT_EQ(*store_.Get("config"), "c");
  EXPECT_TRUE(*store_.Exists("chunks/ab/abcd"));
  EXPECT_EQ(*store_.List("chunks/"), std::vector<std::string>{"chunks/ab/abcd"});
  ASSERT_TRUE(store_.Delete("config").ok());
  EXPECT_EQ(store_.Get("config").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_.Describe(), "fault-injecting memory");
  EXPECT_EQ(store_.calls(ObjectOp::kPut), 2);
}

TEST_F(FaultInjectingObjectStoreTest, TheNthPutUnderAPrefixFailsAndWritesNothing) {
  store_.InjectFault({.op = ObjectOp::kPut, .nth = 2, .prefix = "chunks/"});
  ASSERT_TRUE(store_.Put("chunks/aa/1", "1").ok());
  ASSERT_TRUE(store_.Put("backups/b1", "m").ok());  // not under the prefix: not counted
  Status st = store_.Put("chunks/bb/2", "2");
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_NE(st.message().find("injected fault"), std::string::npos);
  EXPECT_FALSE(*store_.target().Exists("chunks/bb/2"));
  EXPECT_TRUE(store_.Put("chunks/bb/2", "2").ok());  // the retry succeeds
}

TEST_F(FaultInjectingObjectStoreTest, AnAfterApplyPutIsStoredButReportedFailed) {
  store_.InjectFault({.op = ObjectOp::kPut, .after_apply = true});
  EXPECT_EQ(store_.Put("backups/b1", "m").code(), ErrorCode::kUnavailable);
  EXPECT_EQ(*store_.target().Get("backups/b1"), "m");
}

TEST_F(FaultInjectingObjectStoreTest, GetAndDeleteFaultsCountSeparately) {
  ASSERT_TRUE(store_.Put("a", "1").ok());
  store_.InjectFault({.op = ObjectOp::kGet, .nth = 2});
  store_.InjectFault({.op = ObjectOp::kDelete, .nth = 1, .persistent = true});
  EXPECT_TRUE(store_.Get("a").ok());
  EXPECT_EQ(store_.Get("a").status().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(store_.Get("a").ok());
  EXPECT_FALSE(store_.Delete("a").ok());
  EXPECT_FALSE(store_.Delete("a").ok());
  EXPECT_TRUE(*store_.Exists("a"));
  store_.Clear();
  EXPECT_TRUE(store_.Delete("a").ok());
}

TEST_F(FaultInjectingObjectStoreTest, AStallDelaysEveryCall) {
  store_.SetStall(std::chrono::milliseconds(30));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store_.Put("a", "1").ok());
  ASSERT_TRUE(store_.List("").ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(60));
}

}  // namespace
}  // namespace pampa
