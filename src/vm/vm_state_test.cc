#include "vm/vm_state.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace pampa {
namespace {

TEST(VmState, NamesRoundTrip) {
  for (auto s : {VmState::kStopped, VmState::kStarting, VmState::kRunning, VmState::kPaused, VmState::kShuttingDown,
                 VmState::kCrashed}) {
    VmState parsed;
    ASSERT_TRUE(ParseVmState(Name(s), &parsed)) << Name(s);
    EXPECT_EQ(parsed, s);
  }
  VmState ignored;
  EXPECT_FALSE(ParseVmState("runing", &ignored));
}

TEST(VmState, EveryActionHasANameAndARule) {
  for (int a = 0; a <= static_cast<int>(VmAction::kRename); ++a) {
    auto action = static_cast<VmAction>(a);
    EXPECT_FALSE(Name(action).empty());
    bool some_state_allows = false;
    for (int s = 0; s <= static_cast<int>(VmState::kCrashed); ++s) {
      some_state_allows |= Allowed(action, static_cast<VmState>(s));
    }
    EXPECT_TRUE(some_state_allows) << Name(action);
  }
}

TEST(VmState, TransitionsFollowTheLifecycle) {
  EXPECT_TRUE(ValidTransition(VmState::kStopped, VmState::kStarting));
  EXPECT_TRUE(ValidTransition(VmState::kStarting, VmState::kRunning));
  EXPECT_TRUE(ValidTransition(VmState::kRunning, VmState::kShuttingDown));
  EXPECT_TRUE(ValidTransition(VmState::kShuttingDown, VmState::kStopped));
  EXPECT_TRUE(ValidTransition(VmState::kCrashed, VmState::kStarting));
  EXPECT_FALSE(ValidTransition(VmState::kCrashed, VmState::kRunning));
  EXPECT_FALSE(ValidTransition(VmState::kShuttingDown, VmState::kStarting));
  EXPECT_TRUE(ValidTransition(VmState::kStarting, VmState::kPaused));  // waiting for an incoming migration
  EXPECT_FALSE(ValidTransition(VmState::kStarting, VmState::kShuttingDown));
}

TEST(VmState, RefusalsSayWhatToDo) {
  EXPECT_EQ(CheckAllowed(VmAction::kStart, VmState::kRunning, "web").message(), "vm 'web' is already running");
  EXPECT_EQ(CheckAllowed(VmAction::kDelete, VmState::kRunning, "web").message(),
            "vm 'web' is running; stop it first (pampa vm stop web)");
  EXPECT_EQ(CheckAllowed(VmAction::kStop, VmState::kStopped, "web").message(), "vm 'web' is already stopped");
  EXPECT_EQ(CheckAllowed(VmAction::kGuestAgent, VmState::kPaused, "web").message(), "vm 'web' is paused, not running");
  EXPECT_EQ(CheckAllowed(VmAction::kStart, VmState::kRunning, "web").code(), ErrorCode::kConflict);
  EXPECT_TRUE(CheckAllowed(VmAction::kBackup, VmState::kRunning, "web").ok());
  EXPECT_FALSE(CheckAllowed(VmAction::kBackup, VmState::kStarting, "web").ok());
}

TEST(VmState, ActionsFollowTheStateAndTheLease) {
  auto stopped = AllowedActions(VmState::kStopped, VmOp::kNone);
  EXPECT_NE(std::find(stopped.begin(), stopped.end(), "start"), stopped.end());
  EXPECT_EQ(std::find(stopped.begin(), stopped.end(), "shutdown"), stopped.end());
  EXPECT_TRUE(AllowedActions(VmState::kRunning, VmOp::kBackup).empty());
  EXPECT_EQ(AllowedActions(VmState::kShuttingDown, VmOp::kShutdown), std::vector<std::string>{"stop"});
  // The reconcile loop's look is invisible.
  EXPECT_EQ(AllowedActions(VmState::kRunning, VmOp::kReconcile), AllowedActions(VmState::kRunning, VmOp::kNone));
}

TEST(VmState, ATemplateOnlyClonesBacksUpRenamesAndDeletes) {
  EXPECT_EQ(CheckAllowed(VmAction::kStart, VmState::kStopped, "base", true).message(),
            "vm 'base' is a template, which never runs or changes: start a clone of it instead (pampa vm clone base "
            "NEW)");
  EXPECT_TRUE(CheckAllowed(VmAction::kClone, VmState::kStopped, "base", true).ok());
  EXPECT_FALSE(CheckAllowed(VmAction::kSnapshot, VmState::kStopped, "base", true).ok());
  EXPECT_EQ(CheckAllowed(VmAction::kTemplate, VmState::kStopped, "base", true).message(),
            "vm 'base' is already a template");
  auto actions = AllowedActions(VmState::kStopped, VmOp::kNone, true);
  std::sort(actions.begin(), actions.end());
  EXPECT_EQ(actions, (std::vector<std::string>{"backup", "clone", "delete", "rename"}));
  EXPECT_FALSE(CheckAllowed(VmAction::kRename, VmState::kRunning, "web").ok());
}

}  // namespace
}  // namespace pampa
