#include "qemu/cgroups.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/fs.h"
#include "base/log.h"

namespace pampa {
namespace {

constexpr const char* kParent = "pampa";
constexpr uint64_t kPeriodUs = 100000;  // the CFS period a cap is a share of

}  // namespace

Status WriteKernelValue(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::Internal("cannot open " + path + ": " + strerror(errno));
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return Status::Internal("cannot write '" + value + "' to " + path + ": " + strerror(err));
  }
  return Status::Ok();
}

namespace {

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::Internal("cannot make cgroup " + path + ": " + strerror(errno));
  }
  return Status::Ok();
}

// The cgroup file systems mounted here: v2's mount point and controllers, and
// each v1 controller's mount point.
struct Mounts {
  std::string v2;
  std::string cpu, cpuacct, cpuset;
};

Mounts ReadMounts() {
  Mounts m;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || root != "/") continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type, source, options;
    tail >> type >> source >> options;
    if (type == "cgroup2") {
      if (m.v2.empty()) m.v2 = point;
    } else if (type == "cgroup") {
      std::set<std::string> opts;
      std::istringstream o(options);
      for (std::string opt; std::getline(o, opt, ',');) opts.insert(opt);
      if (opts.count("cpu") && m.cpu.empty()) m.cpu = point;
      if (opts.count("cpuacct") && m.cpuacct.empty()) m.cpuacct = point;
      if (opts.count("cpuset") && m.cpuset.empty()) m.cpuset = point;
    }
  }
  return m;
}

// A v1 cpuset cgroup takes no process until it has CPUs and memory nodes:
// a new one gets its parent's.
Status InitCpuset(const std::string& dir) {
  std::string parent = dir.substr(0, dir.rfind('/'));
  for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
    auto now = ReadFile(dir + "/" + file);
    if (now.ok() && now->find_first_not_of(" \n") != std::string::npos) continue;
    PAMPA_ASSIGN_OR_RETURN(std::string value, ReadFile(parent + "/" + file));
    PAMPA_RETURN_IF_ERROR(WriteKernelValue(dir + "/" + file, value));
  }
  return Status::Ok();
}

std::string JoinCpus(const std::vector<int>& cpus) {
  std::string list;
  for (int c : cpus) list += (list.empty() ? "" : ",") + std::to_string(c);
  return list;
}

}  // namespace

Result<std::vector<int>> ParseCpuList(const std::string& text) {
  auto bad = [&] {
    return Status::Invalid("'" + text + "' is not a list of host CPUs: give numbers and ranges such as 0-1,3");
  };
  std::set<int> cpus;
  std::istringstream parts(text);
  std::string part;
  size_t parsed = 0;
  while (std::getline(parts, part, ',')) {
    parsed += part.size() + 1;
    size_t dash = part.find('-');
    std::string a = part.substr(0, dash), b = dash == std::string::npos ? a : part.substr(dash + 1);
    auto number = [](const std::string& s) -> int {
      if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), ::isdigit)) return -1;
      return std::stoi(s);
    };
    int lo = number(a), hi = number(b);
    if (lo < 0 || hi < lo) return bad();
    for (int c = lo; c <= hi; ++c) cpus.insert(c);
  }
  if (cpus.empty() || parsed != text.size() + 1) return bad();
  return std::vector<int>(cpus.begin(), cpus.end());
}

std::vector<int> OnlineCpus() {
  auto text = ReadFile("/sys/devices/system/cpu/online");
  if (text.ok()) {
    std::string t = *text;
    t.erase(std::remove_if(t.begin(), t.end(), ::isspace), t.end());
    if (auto cpus = ParseCpuList(t); cpus.ok()) return *cpus;
  }
  std::vector<int> all;
  for (long i = 0, n = sysconf(_SC_NPROCESSORS_ONLN); i < n; ++i) all.push_back(static_cast<int>(i));
  return all;
}

Status CheckCpuList(const std::string& text) {
  PAMPA_ASSIGN_OR_RETURN(auto cpus, ParseCpuList(text));
  std::vector<int> online = OnlineCpus();
  for (int c : cpus) {
    if (!std::binary_search(online.begin(), online.end(), c)) {
      return Status::Invalid("this host has no CPU " + std::to_string(c) + " (its CPUs: 0-" +
                             std::to_string(online.empty() ? 0 : online.back()) + ")");
    }
  }
  return Status::Ok();
}

Cgroups& Cgroups::Host() {
  static Cgroups* host = new Cgroups();  // never destroyed: used until the process ends
  return *host;
}

Cgroups::Cgroups() {
  Mounts m = ReadMounts();
  auto controllers = m.v2.empty() ? Result<std::string>(std::string()) : ReadFile(m.v2 + "/cgroup.controllers");
  if (!m.v2.empty() && controllers.ok() && controllers->find("cpu") != std::string::npos) {
    // The cpu controller must be enabled down to the VMs' parent.
    Status st = WriteKernelValue(m.v2 + "/cgroup.subtree_control", "+cpu");
    if (st.ok()) st = MakeDir(m.v2 + "/" + kParent);
    if (st.ok()) st = WriteKernelValue(m.v2 + "/" + kParent + "/cgroup.subtree_control", "+cpu");
    if (st.ok()) {
      version_ = CgroupVersion::kV2;
      v2_ = m.v2;
      Status cpuset = controllers->find("cpuset") == std::string::npos
                          ? Status::Unavailable("the cpuset controller is missing")
                          : WriteKernelValue(m.v2 + "/cgroup.subtree_control", "+cpuset");
      if (cpuset.ok()) cpuset = WriteKernelValue(m.v2 + "/" + kParent + "/cgroup.subtree_control", "+cpuset");
      cpuset_v2_ = cpuset.ok();
      if (!cpuset.ok()) log::Info("cgroups: pinning sets each thread's affinity: {}", cpuset.message());
      return;
    }
    reason_ = st.message();
  } else if (!m.cpu.empty()) {
    cpu_ = m.cpu + "/" + kParent;
    cpuacct_ = (m.cpuacct.empty() ? m.cpu : m.cpuacct) + "/" + kParent;
    Status st = MakeDir(cpu_);
    if (st.ok() && cpuacct_ != cpu_) st = MakeDir(cpuacct_);
    if (st.ok()) {
      version_ = CgroupVersion::kV1;
      if (!m.cpuset.empty()) {
        Status cpuset = MakeDir(m.cpuset + "/" + kParent);
        if (cpuset.ok()) cpuset = InitCpuset(m.cpuset + "/" + kParent);
        if (cpuset.ok()) cpuset_ = m.cpuset + "/" + kParent;
        if (!cpuset.ok()) log::Info("cgroups: pinning sets each thread's affinity: {}", cpuset.message());
      }
      return;
    }
    reason_ = st.message();
  } else {
    reason_ = "no cgroup file system with the cpu controller is mounted";
  }
  log::Warn("cgroups: CPU weights and caps are unavailable: {}", reason_);
}

std::vector<std::string> Cgroups::Dirs(const std::string& id) const {
  if (version_ == CgroupVersion::kV2) return {v2_ + "/" + kParent + "/" + id};
  std::vector<std::string> dirs;
  if (version_ == CgroupVersion::kV1) dirs.push_back(cpu_ + "/" + id);
  if (version_ == CgroupVersion::kV1 && cpuacct_ != cpu_) dirs.push_back(cpuacct_ + "/" + id);
  if (version_ == CgroupVersion::kV1 && !cpuset_.empty()) dirs.push_back(cpuset_ + "/" + id);
  return dirs;
}

Status Cgroups::Place(const std::string& id, pid_t pid) {
  if (!available()) return Status::Unavailable("CPU weights and caps are unavailable on this host: " + reason_);
  for (const std::string& dir : Dirs(id)) {
    PAMPA_RETURN_IF_ERROR(MakeDir(dir));
    if (!cpuset_.empty() && dir.rfind(cpuset_, 0) == 0) PAMPA_RETURN_IF_ERROR(InitCpuset(dir));
    PAMPA_RETURN_IF_ERROR(WriteKernelValue(dir + "/cgroup.procs", std::to_string(pid)));
  }
  return Status::Ok();
}

Status Cgroups::SetCpu(const std::string& id, const CpuLimits& limits) {
  if (!available()) return Status::Unavailable("CPU weights and caps are unavailable on this host: " + reason_);
  uint64_t quota = static_cast<uint64_t>(limits.cap_percent) * kPeriodUs / 100;
  if (version_ == CgroupVersion::kV2) {
    std::string dir = v2_ + "/" + kParent + "/" + id;
    PAMPA_RETURN_IF_ERROR(WriteKernelValue(dir + "/cpu.weight", std::to_string(limits.weight)));
    return WriteKernelValue(dir + "/cpu.max",
                            (limits.cap_percent > 0 ? std::to_string(quota) : "max") + " " + std::to_string(kPeriodUs));
  }
  std::string dir = cpu_ + "/" + id;
  // v1's default share is 1024 for a weight of 100.
  PAMPA_RETURN_IF_ERROR(WriteKernelValue(dir + "/cpu.shares", std::to_string(std::max(2, limits.weight * 1024 / 100))));
  PAMPA_RETURN_IF_ERROR(WriteKernelValue(dir + "/cpu.cfs_period_us", std::to_string(kPeriodUs)));
  return WriteKernelValue(dir + "/cpu.cfs_quota_us", limits.cap_percent > 0 ? std::to_string(quota) : "-1");
}

Result<uint64_t> Cgroups::CpuUsageNs(const std::string& id) const {
  if (version_ == CgroupVersion::kV1) {
    PAMPA_ASSIGN_OR_RETURN(std::string text, ReadFile(cpuacct_ + "/" + id + "/cpuacct.usage"));
    return std::stoull(text);
  }
  if (version_ == CgroupVersion::kV2) {
    PAMPA_ASSIGN_OR_RETURN(std::string text, ReadFile(v2_ + "/" + kParent + "/" + id + "/cpu.stat"));
    std::istringstream in(text);
    std::string key;
    uint64_t value = 0;
    while (in >> key >> value) {
      if (key == "usage_usec") return value * 1000;
    }
  }
  return Status::Unavailable("no CPU accounting for " + id);
}

void Cgroups::Remove(const std::string& id) {
  for (const std::string& dir : Dirs(id)) {
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT) log::Warn("cgroups: cannot remove {}: {}", dir, strerror(errno));
  }
}

Status Cgroups::Pin(const std::string& id, pid_t pid, const std::vector<int>& cpus) {
  if (version_ == CgroupVersion::kV2 && cpuset_v2_) {
    // Empty: the parent's CPUs (every CPU), as a new cgroup has.
    return WriteKernelValue(v2_ + "/" + kParent + "/" + id + "/cpuset.cpus", cpus.empty() ? "\n" : JoinCpus(cpus));
  }
  if (!cpuset_.empty()) {
    std::string list = JoinCpus(cpus);
    if (cpus.empty()) {
      PAMPA_ASSIGN_OR_RETURN(list, ReadFile(cpuset_ + "/cpuset.cpus"));
    }
    return WriteKernelValue(cpuset_ + "/" + id + "/cpuset.cpus", list);
  }
  // No cpuset: each thread's affinity (threads QEMU starts later inherit it).
  std::vector<pid_t> tids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    tids.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
  }
  if (ec) return Status::Internal("cannot list the threads of process " + std::to_string(pid) + ": " + ec.message());
  return PinThreads(tids, cpus);
}

Status Cgroups::PinThreads(const std::vector<pid_t>& tids, const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus.empty() ? OnlineCpus() : cpus) CPU_SET(c, &set);
  for (pid_t tid : tids) {
    if (sched_setaffinity(tid, sizeof set, &set) != 0) {
      return Status::Internal("cannot pin thread " + std::to_string(tid) + ": " + strerror(errno));
    }
  }
  return Status::Ok();
}

}  // namespace pampa
