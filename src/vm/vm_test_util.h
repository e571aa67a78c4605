// Test-only: a host's real layers under VmManager (a memory store behind a
// FaultInjectingStore, tasks, a directory pool in a temporary directory), and
// the check that an operation which failed half way left nothing half-done in
// the store, on disk or in memory. Shared by vm/vm_manager_test.cc and
// jobs/backup_job_test.cc.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/events.h"
#include "base/process.h"
#include "net/networks.h"
#include "qemu/accel.h"
#include "storage/pools.h"
#include "store/store_wrapper.h"
#include "task/tasks.h"
#include "vm/vm_manager.h"

namespace pampa {
namespace testing_host {

// A new directory under /tmp, removed by the TempDir's destructor.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/pampa-faults-XXXXXX";
    const char* made = mkdtemp(tmpl);
    path_ = made ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Something an interrupted operation left behind: kind names the check
// ("stored-not-listed", "intent-left", ...), detail says what exactly.
struct HalfDone {
  std::string kind;
  std::string detail;
};

inline std::string Describe(const std::vector<HalfDone>& left) {
  std::string out;
  for (auto& h : left) out += "\n  [" + h.kind + "] " + h.detail;
  return out;
}

// The layers pampad wires up, minus the API: everything real except the
// store, which is in memory and fails the calls a test asks it to.
class Host {
 public:
  Host() {
    std::filesystem::create_directories(run_dir);
    std::filesystem::create_directories(data_dir);
    subscription_ = events.Subscribe([this](const nlohmann::json& e) {
      // Tasks publishes a task's final event once it tried to write its final record.
      if (e.value("type", "") != "task") return;
      const auto& t = e["task"];
      if (t.value("state", "") == "running") return;
      std::lock_guard lock(mu_);
      ended_[t.value("id", "")] = t;
    });
    Status st = storage.CreatePool("default", pool_dir);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  ~Host() { events.Unsubscribe(subscription_); }
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Waits for a task's end: polls Tasks::Get, and takes the outcome from the
  // task's final event, which Tasks publishes once it tried to write the final
  // record (StuckTaskRecords finds a record that still says "running").
  TaskInfo Wait(const std::string& id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (true) {
      auto t = tasks.Get(id);
      EXPECT_TRUE(t.ok()) << t.status().message();
      {
        std::lock_guard lock(mu_);
        auto it = ended_.find(id);
        if (it != ended_.end()) {
          const nlohmann::json& e = it->second;
          TaskInfo info;
          info.id = id;
          info.type = e.value("type", "");
          info.state = e.value("state", "");
          info.error = e.value("error", "");
          info.result = e.value("result", nlohmann::json());
          return info;
        }
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "task " << id << " did not end";
        return t.ok() ? *t : TaskInfo{};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // Ok, or the error of a call that returned a task id at once or of the task.
  Status Finish(const Result<std::string>& task) {
    if (!task.ok()) return task.status();
    TaskInfo info = Wait(task.value());
    if (info.state == "succeeded") return Status::Ok();
    return Status::Unavailable(info.type + " task " + info.state + ": " + info.error);
  }

  Status CreateVm(VmManager& manager, const std::string& name, std::vector<uint64_t> disks) {
    CreateRequest req;
    req.name = name;
    req.cpus = 1;
    req.memory_mib = 64;
    req.disks = std::move(disks);
    req.networks = {};  // no NIC: nothing to set up on the host
    return Finish(manager.Create(req));
  }
  Status CreateVm(const std::string& name, std::vector<uint64_t> disks) { return CreateVm(vms, name, disks); }

  // pampad starting again on the same store and pool: a second VmManager that
  // loads what the store holds (and recovers unfinished work). The first one
  // must not be used any more.
  std::unique_ptr<VmManager> Restart() {
    auto restarted = std::make_unique<VmManager>(VmManagerConfig{run_dir, data_dir, "test"}, store, storage, networks,
                                                 tasks, events, accel);
    Status st = restarted->Load();
    EXPECT_TRUE(st.ok()) << st.message();
    return restarted;
  }

  std::string VolumePath(const std::string& volume) const { return pool_dir + "/" + volume + ".qcow2"; }

  // The store's records under prefix, read past the fault injector.
  std::vector<std::pair<std::string, std::string>> Items(const std::string& prefix) {
    auto items = memory->List(prefix);
    EXPECT_TRUE(items.ok()) << items.status().message();
    return items.ok() ? *items : std::vector<std::pair<std::string, std::string>>{};
  }

  // Everything a failed operation might have left half-done, against the
  // store, the pool directory and VmManager's view. Empty when consistent.
  std::vector<HalfDone> Check() { return Check(vms); }
  std::vector<HalfDone> Check(VmManager& manager) {
    std::vector<HalfDone> left;
    std::map<std::string, nlohmann::json> stored;
    for (auto& [key, value] : Items("vms/")) {
      stored[key.substr(4)] = nlohmann::json::parse(value, nullptr, false);
    }
    std::map<std::string, nlohmann::json> listed;
    for (auto& vm : manager.List()) listed[vm.value("name", "")] = vm;

    std::set<std::string> volumes;  // of a VM that exists somewhere
    for (auto& [name, spec] : stored) {
      for (auto& d : spec.value("disks", nlohmann::json::array())) volumes.insert(d.value("volume", ""));
      if (!listed.count(name)) {
        left.push_back({"stored-not-listed", "vms/" + name + " is in the store but VmManager::List() lacks it"});
      }
    }
    for (auto& [name, vm] : listed) {
      for (auto& d : vm.value("disks", nlohmann::json::array())) {
        std::string volume = d.value("volume", "");
        volumes.insert(volume);
        if (!std::filesystem::exists(VolumePath(volume))) {
          left.push_back({"missing-volume", "vm '" + name + "' is listed but its volume " + volume + " is gone"});
        }
      }
      if (!stored.count(name)) {
        left.push_back({"listed-not-stored", "vm '" + name + "' is listed but vms/" + name + " is not in the store"});
      } else {
        for (auto& [field, value] : stored[name].items()) {
          if (vm[field] != value) {
            left.push_back({"spec-differs", "vm '" + name + "': " + field + " is " + value.dump() + " in the store, " +
                                                vm[field].dump() + " in Show()"});
          }
        }
      }
      if (vm.value("busy", "?") != "") {
        left.push_back({"busy", "vm '" + name + "' is still busy: " + vm.value("busy", "?")});
      }
      auto shown = manager.Show(name);
      if (!shown.ok()) left.push_back({"listed-not-shown", "vm '" + name + "': " + shown.status().message()});
    }
    auto exists = [&](const std::string& name) { return stored.count(name) || listed.count(name); };

    for (auto& [key, value] : Items("intents/")) {
      left.push_back({"intent-left", key + " is still in the store"});
    }
    // runtime/<vm>, or hosts/<host>/runtime/<vm> since keys name their host.
    for (const std::string prefix : {"runtime/", "hosts/test/runtime/"}) {
      for (auto& [key, value] : Items(prefix)) {
        if (!exists(key.substr(prefix.size()))) left.push_back({"runtime-orphan", key + " belongs to no VM"});
      }
    }
    for (auto& [key, value] : Items("snapshots/")) {
      std::string vm = key.substr(10, key.find('/', 10) - 10);
      if (!exists(vm)) left.push_back({"snapshot-orphan", key + " belongs to no VM"});
    }
    for (auto& [key, value] : Items("snapshot-current/")) {
      if (!exists(key.substr(17))) left.push_back({"snapshot-orphan", key + " belongs to no VM"});
    }
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(pool_dir, ec)) {
      std::string file = e.path().filename().string();
      if (e.path().extension() == ".creating") {
        left.push_back({"creating-file", file + " is in the pool directory"});
        continue;
      }
      std::string volume = e.path().stem().string();
      if (!volumes.count(volume)) left.push_back({"orphan-volume", file + " belongs to no VM"});
    }
    return left;
  }

  // Records of tasks that ended (their final event came) but still say
  // "running" in the store, where Tasks::Get reads them once they ended.
  std::vector<HalfDone> StuckTaskRecords() {
    std::vector<HalfDone> left;
    for (auto& [key, value] : Items("tasks/")) {
      auto t = nlohmann::json::parse(value, nullptr, false);
      std::string id = key.substr(6);
      bool ended;
      {
        std::lock_guard lock(mu_);
        ended = ended_.count(id) > 0;
      }
      if (ended && t.value("state", "") == "running") {
        left.push_back({"task-record-running", key + " (" + t.value("type", "") + " " + t.value("target", "") +
                                                   ") ended, but its record still says running"});
      }
    }
    return left;
  }

  TempDir dir;
  std::string pool_dir = dir.path() + "/pool";
  std::string run_dir = dir.path() + "/run";
  std::string data_dir = dir.path() + "/data";
  std::unique_ptr<Store> memory = NewMemoryStore();
  FaultInjectingStore store{*memory};
  EventBus events;
  Tasks tasks{store, events};
  Storage storage{store, {}};
  Networks networks{store, run_dir};
  AccelProbe accel{"/nonexistent", "", run_dir};
  VmManager vms{{run_dir, data_dir, "test"}, store, storage, networks, tasks, events, accel};

 private:
  int subscription_ = 0;
  std::mutex mu_;
  std::map<std::string, nlohmann::json> ended_;  // GUARDED_BY(mu_): id -> the task's final event
};

// Fails the test on anything left half-done, saying after what.
inline void ExpectNothingLeft(const std::vector<HalfDone>& left, const std::string& context) {
  EXPECT_TRUE(left.empty()) << context << " left:" << Describe(left);
}

}  // namespace testing_host
}  // namespace pampa
