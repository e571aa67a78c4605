// Partial failures of a VM's lifecycle: the state store fails its Nth write
// during a create, a delete or an edit, for N = 1, 2, 3... until the operation
// no longer reaches the fault, once with the write not applied and once applied
// with the reply lost (an ambiguous commit, as when etcd times out after its
// commit): each test runs once per mode (.../NotApplied, .../AppliedReplyLost).
// Each N runs on a fresh host. After each failure nothing may be half-done
// (Host::Check), in this pampad and in one started again on the same store,
// and the operation retried without faults must succeed.
#include "vm/vm_manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "vm/vm_test_util.h"

namespace pampa {
namespace {

using testing_host::ExpectNothingLeft;
using testing_host::HalfDone;
using testing_host::Host;

// Far more store writes than any of these operations makes.
constexpr int kMaxPoints = 40;

struct Mode {
  bool after_apply;
  const char* name;
};
constexpr Mode kModes[] = {{false, "not applied"}, {true, "applied, reply lost"}};
// How gtest names the parameter in its output.
void PrintTo(const Mode& mode, std::ostream* os) { *os << mode.name; }

std::string Where(const std::string& op, const Mode& mode, int n) {
  return op + " with store write #" + std::to_string(n) + " failing (" + mode.name + ")";
}

nlohmann::json Stored(Host& host, const std::string& vm) {
  auto v = host.memory->Get("vms/" + vm);
  if (!v.ok() || !v->has_value()) return nullptr;
  return nlohmann::json::parse(**v, nullptr, false);
}

void ExpectInjected(const Status& st, const std::string& where) {
  EXPECT_NE(st.message().find("injected fault"), std::string::npos) << where << ": failed otherwise: " << st.message();
}

HalfDone RetryRefused(const std::string& op, const Status& st) {
  return {"retry-refused", op + " retried without faults: " + st.message()};
}

const std::vector<uint64_t> kDisks = {32 << 20, 16 << 20};

// A VM with two disks and a snapshot: every kind of record a delete removes.
void MakeVmToDelete(Host& host, const std::string& where) {
  Status created = host.CreateVm("web", kDisks);
  ASSERT_TRUE(created.ok()) << where << ": " << created.message();
  Status snap = host.Finish(host.vms.CreateSnapshot("web", "before-upgrade", false, ""));
  ASSERT_TRUE(snap.ok()) << where << ": " << snap.message();
  auto left = host.Check();
  ASSERT_TRUE(left.empty()) << where << ": before the delete:" << testing_host::Describe(left);
}

class VmManagerFaults : public ::testing::TestWithParam<Mode> {};

enum class Op { kCreate, kDelete };
constexpr Op kOps[] = {Op::kCreate, Op::kDelete};
const char* OpName(Op op) { return op == Op::kCreate ? "vm create" : "vm delete"; }

// Runs op on web with the store's write #n failing; *hit says whether the
// operation reached that write.
Status FailOnce(Host& host, Op op, const Mode& mode, int n, bool* hit) {
  int before = host.store.mutations();
  host.store.InjectFault({.nth = n, .after_apply = mode.after_apply});
  Status st = op == Op::kCreate ? host.CreateVm("web", kDisks) : host.vms.Delete("web");
  host.store.Clear();
  *hit = host.store.mutations() - before >= n;
  return st;
}

// Runs op on a fresh host (holding a VM to delete first, for a delete) with
// the store's write #1, #2, ... failing in turn until op no longer reaches
// the fault, and calls then(host, where, status of op) after each failure
// point; fails when op still reached the fault after kMaxPoints writes.
template <typename Then>
void AtEveryFaultPoint(Op op, const Mode& mode, Then then) {
  bool reached_the_end = false;
  for (int n = 1; n <= kMaxPoints && !reached_the_end; ++n) {
    std::string where = Where(OpName(op), mode, n);
    Host host;
    if (op == Op::kDelete) MakeVmToDelete(host, where);
    if (::testing::Test::HasFatalFailure()) return;
    bool hit = false;
    Status st = FailOnce(host, op, mode, n, &hit);
    if (!hit) {
      ASSERT_TRUE(st.ok()) << where << ": " << st.message();
      reached_the_end = true;
    }
    then(host, where, st);
  }
  EXPECT_TRUE(reached_the_end) << OpName(op) << " still reached the fault after " << kMaxPoints << " writes";
}

TEST_P(VmManagerFaults, CreateFailingAtEveryStoreWriteLeavesNothingHalfDone) {
  AtEveryFaultPoint(Op::kCreate, GetParam(), [](Host& host, const std::string& where, const Status& st) {
    ExpectNothingLeft(host.Check(), where);
    // A failed create whose VM is nowhere is retried; one whose VM is whole
    // (an ambiguous write that did land) needs no retry.
    if (!st.ok()) {
      ExpectInjected(st, where);
      if (!host.vms.Show("web").ok()) {
        Status retry = host.CreateVm("web", kDisks);
        if (!retry.ok()) {
          ExpectNothingLeft({RetryRefused("vm create", retry)}, where);
          return;
        }
        ExpectNothingLeft(host.Check(), where + ", then retried");
      }
    }
    ASSERT_TRUE(host.vms.Show("web").ok()) << where;
    EXPECT_FALSE(Stored(host, "web").is_null()) << where;
    EXPECT_TRUE(std::filesystem::exists(host.VolumePath("web-disk0"))) << where;
    EXPECT_TRUE(std::filesystem::exists(host.VolumePath("web-disk1"))) << where;
    Status del = host.vms.Delete("web");
    EXPECT_TRUE(del.ok()) << where << ", then deleted: " << del.message();
    ExpectNothingLeft(host.Check(), where + ", then deleted");
  });
}

TEST_P(VmManagerFaults, DeleteFailingAtEveryStoreWriteLeavesNothingHalfDone) {
  AtEveryFaultPoint(Op::kDelete, GetParam(), [](Host& host, const std::string& where, const Status& st) {
    ExpectNothingLeft(host.Check(), where);
    if (!st.ok()) {
      ExpectInjected(st, where);
      if (host.vms.Show("web").ok()) {
        Status retry = host.vms.Delete("web");
        if (!retry.ok()) {
          ExpectNothingLeft({RetryRefused("vm delete", retry)}, where);
          return;
        }
        ExpectNothingLeft(host.Check(), where + ", then retried");
      }
    }
    EXPECT_EQ(host.vms.Show("web").status().code(), ErrorCode::kNotFound) << where;
    EXPECT_TRUE(Stored(host, "web").is_null()) << where;
    EXPECT_FALSE(std::filesystem::exists(host.VolumePath("web-disk0"))) << where;
    EXPECT_FALSE(std::filesystem::exists(host.VolumePath("web-disk1"))) << where;
    EXPECT_TRUE(host.memory->List("snapshots/web/")->empty()) << where;
  });
}

TEST_P(VmManagerFaults, FailedEditKeepsTheOldSpecInTheStoreAndInShow) {
  const Mode& mode = GetParam();
  bool reached_the_end = false;
  for (int n = 1; n <= kMaxPoints && !reached_the_end; ++n) {
    std::string where = Where("vm edit", mode, n);
    Host host;
    ASSERT_TRUE(host.CreateVm("web", {16 << 20}).ok()) << where;  // 1 CPU, 64 MiB
    EditRequest req;
    req.cpus = 3;
    req.memory_mib = 192;

    int before = host.store.mutations();
    host.store.InjectFault({.nth = n, .after_apply = mode.after_apply});
    Status st = host.vms.Edit("web", req);
    host.store.Clear();
    bool hit = host.store.mutations() - before >= n;
    ExpectNothingLeft(host.Check(), where);
    if (!hit) {
      ASSERT_TRUE(st.ok()) << where << ": " << st.message();
      reached_the_end = true;
    }
    if (!st.ok()) {
      ExpectInjected(st, where);
      // Not applied: the old spec, everywhere. Applied with the reply lost:
      // the store and Show() must at least agree (Check's spec-differs).
      if (!mode.after_apply) {
        EXPECT_EQ((*host.vms.Show("web"))["cpus"], 1) << where;
        EXPECT_EQ((*host.vms.Show("web"))["memory_mib"], 64) << where;
        EXPECT_EQ(Stored(host, "web")["cpus"], 1) << where;
        EXPECT_EQ(Stored(host, "web")["memory_mib"], 64) << where;
      }
      Status retry = host.vms.Edit("web", req);
      if (!retry.ok()) {
        ExpectNothingLeft({RetryRefused("vm edit", retry)}, where);
        Status del = host.vms.Delete("web");
        if (!del.ok()) ExpectNothingLeft({RetryRefused("vm delete (after the failed edit)", del)}, where);
        continue;
      }
      ExpectNothingLeft(host.Check(), where + ", then retried");
    }
    EXPECT_EQ((*host.vms.Show("web"))["cpus"], 3) << where;
    EXPECT_EQ(Stored(host, "web")["cpus"], 3) << where;
    EXPECT_EQ((*host.vms.Show("web"))["memory_mib"], 192) << where;
    EXPECT_EQ(Stored(host, "web")["memory_mib"], 192) << where;
  }
  EXPECT_TRUE(reached_the_end) << "vm edit still reached the fault after " << kMaxPoints << " writes";
}

// pampad started again right after the failure finds the work finished or
// undone (through its intents) with nothing half-done, and the operation
// retried there ends where it should.
TEST_P(VmManagerFaults, ARestartRightAfterAFailedCreateOrDeleteLeavesNothingHalfDone) {
  for (Op op : kOps) {
    AtEveryFaultPoint(op, GetParam(), [op](Host& host, const std::string& where, const Status&) {
      auto restarted = host.Restart();
      std::string context = where + ", then pampad restarted";
      ExpectNothingLeft(host.Check(*restarted), context);
      if (op == Op::kCreate) {
        if (!restarted->Show("web").ok()) {
          Status retry = host.CreateVm(*restarted, "web", kDisks);
          if (!retry.ok()) {
            ExpectNothingLeft({RetryRefused("vm create", retry)}, context);
            return;
          }
        }
        EXPECT_TRUE(restarted->Show("web").ok()) << context;
      } else {
        if (restarted->Show("web").ok()) {
          Status retry = restarted->Delete("web");
          if (!retry.ok()) {
            ExpectNothingLeft({RetryRefused("vm delete", retry)}, context);
            return;
          }
        }
        EXPECT_EQ(restarted->Show("web").status().code(), ErrorCode::kNotFound) << context;
      }
      ExpectNothingLeft(host.Check(*restarted), context + " and the operation retried");
    });
  }
}

// Whatever a failed create or delete left in the store, once the user
// retried it to its end, must never make a later start remove anything of a
// VM made since under the same name.
TEST_P(VmManagerFaults, WhatAFailedCreateOrDeleteLeftNeverRemovesALaterVmOfTheSameName) {
  for (Op op : kOps) {
    AtEveryFaultPoint(op, GetParam(), [op](Host& host, const std::string& where, const Status&) {
      // The user retries until it is done, then makes a new VM of that name.
      Status done = Status::Ok();
      if (op == Op::kCreate && !host.vms.Show("web").ok()) done = host.CreateVm("web", kDisks);
      if (done.ok() && host.vms.Show("web").ok()) done = host.vms.Delete("web");
      if (!done.ok()) {
        ExpectNothingLeft({RetryRefused(OpName(op), done)}, where);
        return;
      }
      Status created = host.CreateVm("web", kDisks);
      ASSERT_TRUE(created.ok()) << where << ", then a new web: " << created.message();
      std::string uuid = (*host.vms.Show("web"))["uuid"];

      auto restarted = host.Restart();
      std::string context = where + ", then a new web was made and pampad restarted";
      ExpectNothingLeft(host.Check(*restarted), context);
      auto shown = restarted->Show("web");
      ASSERT_TRUE(shown.ok()) << context << ": " << shown.status().message();
      EXPECT_EQ((*shown)["uuid"], uuid) << context;  // its volumes: Check's missing-volume
    });
  }
}

// The one place a task's record is checked (the tests above leave it out):
// a finished task is never shown as running because its record could not be
// written, whether the write failed once (it is retried) or the store stays
// down (the final state is kept in memory and written by the next task).
TEST(TaskRecordFaults, AFinishedCreateIsNotShownRunningWhenItsRecordWritesFail) {
  for (bool persistent : {false, true}) {
    for (int n = 1; n <= 2; ++n) {  // the record written at start, then the final one
      std::string where = "vm create with task record write #" + std::to_string(n) + " failing" +
                          (persistent ? " and every one after it" : "");
      Host host;
      host.store.InjectFault({.nth = n, .prefix = "tasks/", .persistent = persistent});
      CreateRequest req;
      req.name = "web";
      req.disks = {16 << 20};
      req.networks = {};
      auto task = host.vms.Create(req);
      ASSERT_TRUE(task.ok()) << where << ": " << task.status().message();
      TaskInfo ended = host.Wait(*task);
      EXPECT_EQ(ended.state, "succeeded") << where << ": " << ended.error;
      auto shown = host.tasks.Get(*task);
      ASSERT_TRUE(shown.ok()) << where << ": " << shown.status().message();
      EXPECT_EQ(shown->state, "succeeded") << where;
      bool listed = false;
      for (auto& t : host.tasks.List()) listed |= t.id == *task && t.state == "succeeded";
      EXPECT_TRUE(listed) << where << ": task list lacks it or shows it otherwise";
      host.store.Clear();
      // The store is back: the next task writes the record that was missing.
      ASSERT_TRUE(host.Finish(host.vms.CreateSnapshot("web", "s1", false, "")).ok()) << where;
      auto stuck = host.StuckTaskRecords();
      EXPECT_TRUE(stuck.empty()) << where << ":" << testing_host::Describe(stuck);
      auto stored = host.memory->Get("tasks/" + *task);
      ASSERT_TRUE(stored.ok() && stored->has_value()) << where << ": its record was never written";
      EXPECT_EQ(nlohmann::json::parse(**stored).value("state", ""), "succeeded") << where;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(StoreWrite, VmManagerFaults, ::testing::ValuesIn(kModes),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return std::string(info.param.after_apply ? "AppliedReplyLost" : "NotApplied");
                         });

}  // namespace
}  // namespace pampa
