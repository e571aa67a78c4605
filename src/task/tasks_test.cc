#include "task/tasks.h"

#include <gtest/gtest.h>

#include <thread>

namespace pampa {
namespace {

using namespace std::chrono_literals;

TaskInfo WaitDone(Tasks& tasks, const std::string& id) {
  for (int i = 0; i < 500; ++i) {
    auto t = tasks.Get(id);
    if (t.ok() && t->state != "running") return *t;
    std::this_thread::sleep_for(10ms);
  }
  return {};
}

TEST(Tasks, SuccessRecordsResultAndProgressEvents) {
  auto store = NewMemoryStore();
  EventBus bus;
  std::atomic<int> events{0};
  bus.Subscribe([&](const nlohmann::json& e) {
    if (e["type"] == "task") ++events;
  });
  Tasks tasks(*store, bus);
  auto id = tasks.Start("import", "disk", [](TaskContext& ctx) -> Result<nlohmann::json> {
    ctx.Progress(0.5, "half");
    ctx.Log("converted");
    return nlohmann::json{{"bytes", 42}};
  });
  auto t = WaitDone(tasks, id);
  EXPECT_EQ(t.state, "succeeded");
  EXPECT_EQ(t.result["bytes"], 42);
  EXPECT_EQ(t.log.size(), 1u);
  EXPECT_GE(events.load(), 2);
}

TEST(Tasks, ASubtaskFillsItsShareOfTheWhole) {
  struct Whole : TaskContext {
    double progress = 0;
    std::string message;
    std::vector<std::string> log;
    std::atomic<bool> cancel{false};
    void Progress(double f, const std::string& m) override {
      progress = f;
      message = m;
    }
    void Log(const std::string& line) override { log.push_back(line); }
    const std::atomic<bool>* cancel_flag() const override { return &cancel; }
  } whole;
  SubtaskContext second(whole, 0.5, 1.0, "vm b: ");
  second.Progress(0.5, "copying");
  second.Log("moved");
  EXPECT_DOUBLE_EQ(whole.progress, 0.75);
  EXPECT_EQ(whole.message, "vm b: copying");
  EXPECT_EQ(whole.log, std::vector<std::string>{"moved"});
  whole.cancel = true;
  EXPECT_TRUE(second.cancelled());
}

TEST(Tasks, CancelStopsACooperatingTask) {
  auto store = NewMemoryStore();
  EventBus bus;
  Tasks tasks(*store, bus);
  auto id = tasks.Start("wait", "x", [](TaskContext& ctx) -> Result<nlohmann::json> {
    while (!ctx.cancelled()) std::this_thread::sleep_for(5ms);
    return Status::Cancelled("cancelled by user");
  });
  ASSERT_TRUE(tasks.Cancel(id).ok());
  EXPECT_EQ(WaitDone(tasks, id).state, "cancelled");
  EXPECT_EQ(tasks.Cancel(id).code(), ErrorCode::kConflict);
  EXPECT_EQ(tasks.Cancel("nope").code(), ErrorCode::kNotFound);
}

TEST(Tasks, InterruptedTasksAreMarkedFailedAfterRestart) {
  auto store = NewMemoryStore();
  ASSERT_TRUE(store->Put("tasks/abc", R"({"id":"abc","state":"running","type":"import"})").ok());
  EventBus bus;
  Tasks tasks(*store, bus);
  tasks.RecoverInterrupted();
  auto t = tasks.Get("abc");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->state, "failed");
  EXPECT_NE(t->error.find("interrupted"), std::string::npos);
}

}  // namespace
}  // namespace pampa
