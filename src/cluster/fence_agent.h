// Fencing that does not depend on pampad being healthy. pampa-fence
// (fence_main.cc) is a small process of its own, started by pampad and
// outliving it, that holds a deadline and the QEMU processes of this host's
// HA VMs: pampad moves the deadline forward each time it renews the host's
// lease; when the deadline passes (pampad died, hung, or lost the store) the
// agent kills those processes, before the lease can end and another host
// start the VMs. A pampad restarted within the deadline finds the agent and
// takes over; nothing is killed.
//
// The conversation is lines over a unix socket (RUN_DIR/fence.sock, root
// only):
//   arm DEADLINE [PID UUID]...   kill these at DEADLINE (CLOCK_MONOTONIC ms)
//                                unless a later arm comes first; no pairs:
//                                nothing to kill
//
// Threads: one caller at a time (HaManager's fence thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

struct FenceTarget {
  pid_t pid = 0;
  std::string uuid;  // in the process's command line: guards against pid reuse
};

// The deadline as the agent reads it: CLOCK_MONOTONIC milliseconds.
int64_t MonotonicMs(std::chrono::steady_clock::time_point t);

// One "arm" line; the agent's parser reads it back with ParseArm.
std::string ArmLine(int64_t deadline_ms, const std::vector<FenceTarget>& targets);
// Fails on anything but a well-formed arm line.
Status ParseArm(const std::string& line, int64_t* deadline_ms, std::vector<FenceTarget>* targets);

class FenceAgent {
 public:
  // agent: the pampa-fence executable; socket: where it listens; log: its output.
  FenceAgent(std::string agent, std::string socket, std::string log);
  ~FenceAgent();
  FenceAgent(const FenceAgent&) = delete;
  FenceAgent& operator=(const FenceAgent&) = delete;

  // Hands the agent a new deadline and the processes to kill at it, starting
  // the agent when none answers.
  Status Arm(std::chrono::steady_clock::time_point deadline, const std::vector<FenceTarget>& targets);

 private:
  Status Connect();
  const std::string agent_, socket_, log_;
  int fd_ = -1;
};

}  // namespace pampa
