// Starting processes: always an argv vector, never a shell.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

struct RunOptions {
  std::string stdin_data;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  // Called with each chunk of stderr as it arrives (qemu-img -p writes progress
  // there and on stdout); may be empty.
  std::function<void(const std::string&)> on_output;
  // When set and becoming true, the process is killed and Run returns kCancelled.
  const std::atomic<bool>* cancel = nullptr;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) to completion. Fails only when the process
// cannot be started, times out or is cancelled; a non-zero exit is a result.
Result<RunResult> Run(const std::vector<std::string>& argv, const RunOptions& opts = {});

// Like Run, but a non-zero exit becomes an error carrying the last stderr line.
Result<RunResult> RunChecked(const std::vector<std::string>& argv, const RunOptions& opts = {});

// Starts argv in a new session, detached from this process (double fork), so it
// outlives us. stdout and stderr go to log_path (appended). Returns its pid.
Result<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log_path);

// Starts argv as a child the kernel kills (SIGKILL) when the thread that
// started it ends: for the servers tests and benches start (etcd), so that a
// test killed by a timeout leaves nothing running. stdout and stderr go to
// log_path (appended). Returns its pid; StopProcess ends it (and reaps it).
Result<pid_t> SpawnTied(const std::vector<std::string>& argv, const std::string& log_path);

// True when pid is a live (not zombie) process whose command line contains
// `marker` (guards against pid reuse).
bool ProcessAlive(pid_t pid, const std::string& marker);

// Stops the process pid if it is still the one whose command line contains
// marker: SIGTERM, then SIGKILL when it has not exited within grace; returns
// once it is gone (or 2 s after the SIGKILL).
void StopProcess(pid_t pid, const std::string& marker, std::chrono::milliseconds grace);

// True when the executable is found in PATH (or is an existing absolute path).
bool HaveExecutable(const std::string& name);

}  // namespace pampa
