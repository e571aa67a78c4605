// The per-VM record shared by vm_manager.cc and vm_runtime.cc.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "qemu/machine.h"
#include "qmp/qmp_client.h"
#include "vm/vm_manager.h"

namespace pampa {

struct VmManager::Vm {
  std::mutex mu;  // guards everything below except the snapshot
  VmSpec spec;
  std::string state = "stopped";  // stopped | starting | running | paused | shutting-down | crashed
  std::string reason;             // why it is crashed, or other notes
  std::string busy;               // long operation in progress, "" when none
  pid_t pid = 0;
  std::string accel;
  int64_t started_ms = 0;
  bool stop_requested = false;  // a stop we asked for: QEMU exiting is not a crash
  bool deleted = false;
  std::unique_ptr<QmpClient> qmp;
  RuntimePaths paths;

  std::mutex agent_mu;  // one guest-agent conversation at a time

  // What List/Show return, refreshed after every change so readers never wait
  // for an operation in progress.
  std::mutex snap_mu;
  nlohmann::json snapshot;
};

// Stops qemu-nbd servers a dead pampad left in a VM's run directory.
void KillStaleNbd(const std::string& run_dir);

}  // namespace pampa
