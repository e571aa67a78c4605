// A VM's share of the host's CPUs: each running VM's QEMU in a cgroup of its
// own (its weight and cap), and its vCPU threads pinned to host cores.
//
// cgroup v2 where the host has it (ROOT/pampa/<id>: cpu.weight, cpu.max), v1
// where it does not (CPU/pampa/<id> in the cpu hierarchy: cpu.shares, the CFS
// quota; CPUACCT/pampa/<id> for accounting when cpuacct is mounted apart).
// The layout is read from /proc/self/mountinfo once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

// Writes value to a kernel file (cgroup, sysfs) in one write.
Status WriteKernelValue(const std::string& path, const std::string& value);

// "0-1,3" -> {0, 1, 3}: sorted, no duplicates; refuses what is malformed.
Result<std::vector<int>> ParseCpuList(const std::string& text);
// The host's online CPUs.
std::vector<int> OnlineCpus();
// Refuses a list naming CPUs this host does not have.
Status CheckCpuList(const std::string& text);

struct CpuLimits {
  int weight = 100;     // relative, 1..10000 (100: everyone's default)
  int cap_percent = 0;  // of one core; 0: none
};

// Which cgroup file system holds the cpu controller here.
enum class CgroupVersion { kNone, kV1, kV2 };

class Cgroups {
 public:
  // The host's layout, found at the first use.
  static Cgroups& Host();

  CgroupVersion version() const { return version_; }
  // Why not, when there is none.
  const std::string& reason() const { return reason_; }
  bool available() const { return version_ != CgroupVersion::kNone; }

  // Makes VM id's cgroup(s) and moves process pid (all its threads) there;
  // again for a process already there is harmless.
  Status Place(const std::string& id, pid_t pid);
  Status SetCpu(const std::string& id, const CpuLimits& limits);
  // The CPU time the VM's cgroup used, ns.
  Result<uint64_t> CpuUsageNs(const std::string& id) const;
  // Removes the VM's cgroup(s) once its QEMU is gone (what fails is logged).
  void Remove(const std::string& id);

  // Confines VM id's QEMU (process pid, every thread: vCPUs, I/O, the main
  // loop) to cpus (empty: every online CPU): its cpuset, or without one each
  // thread's affinity. The whole process, not the vCPU threads alone: with
  // only the vCPUs pinned, the kernel splits a group's weight between CPUs by
  // where its threads ran, and weights 100:300 on one core measured 1:3.45
  // instead of 1:3.00 (docs/design.md, Resources).
  Status Pin(const std::string& id, pid_t pid, const std::vector<int>& cpus);
  // Pins each thread to cpus (empty: every online CPU).
  static Status PinThreads(const std::vector<pid_t>& tids, const std::vector<int>& cpus);

 private:
  Cgroups();
  // The VM's cgroup directories (two under v1 when cpuacct is mounted apart).
  std::vector<std::string> Dirs(const std::string& id) const;
  CgroupVersion version_ = CgroupVersion::kNone;
  std::string reason_;
  std::string v2_;             // the v2 mount; empty under v1
  std::string cpu_, cpuacct_;  // v1 hierarchies (the same dir when co-mounted)
  std::string cpuset_;         // v1: the cpuset hierarchy's pampa dir; empty: none
  bool cpuset_v2_ = false;     // v2: the cpuset controller is enabled for the VMs
};

}  // namespace pampa
