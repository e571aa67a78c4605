#include "cluster/fence_agent.h"

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"

namespace pampa {

int64_t MonotonicMs(std::chrono::steady_clock::time_point t) {
  // libstdc++'s steady_clock is CLOCK_MONOTONIC, which every process of the
  // host shares.
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string ArmLine(int64_t deadline_ms, const std::vector<FenceTarget>& targets) {
  std::string line = "arm " + std::to_string(deadline_ms);
  for (auto& t : targets) line += " " + std::to_string(t.pid) + " " + t.uuid;
  return line + "\n";
}

Status ParseArm(const std::string& line, int64_t* deadline_ms, std::vector<FenceTarget>* targets) {
  std::istringstream in(line);
  std::string word;
  if (!(in >> word) || word != "arm") return Status::Invalid("not an arm line");
  if (!(in >> *deadline_ms) || *deadline_ms < 0) return Status::Invalid("arm: bad deadline");
  targets->clear();
  FenceTarget t;
  while (in >> t.pid) {
    if (t.pid <= 1 || !(in >> t.uuid) || t.uuid.size() != 36) return Status::Invalid("arm: bad PID UUID pair");
    targets->push_back(t);
  }
  if (!in.eof()) return Status::Invalid("arm: trailing text");
  return Status::Ok();
}

FenceAgent::FenceAgent(std::string agent, std::string socket, std::string log)
    : agent_(std::move(agent)), socket_(std::move(socket)), log_(std::move(log)) {}

FenceAgent::~FenceAgent() {
  if (fd_ >= 0) close(fd_);
}

Status FenceAgent::Connect() {
  auto fd = ConnectUnix(socket_, std::chrono::milliseconds(0));
  if (!fd.ok()) {
    // None answers: start one (it outlives this pampad) and wait for it.
    unlink(socket_.c_str());
    PAMPA_ASSIGN_OR_RETURN(pid_t pid, SpawnDetached({agent_, "--socket", socket_}, log_));
    log::Info("fencing agent started (pid {}, {})", pid, socket_);
    fd = ConnectUnix(socket_, std::chrono::seconds(3));
    if (!fd.ok()) return fd.status().Context("the fencing agent " + agent_ + " did not answer (see " + log_ + ")");
  }
  fd_ = fd->Release();
  return Status::Ok();
}

Status FenceAgent::Arm(std::chrono::steady_clock::time_point deadline, const std::vector<FenceTarget>& targets) {
  std::string line = ArmLine(MonotonicMs(deadline), targets);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ < 0) PAMPA_RETURN_IF_ERROR(Connect());
    ssize_t n = send(fd_, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(line.size())) return Status::Ok();
    // The agent went away (or its buffer is full: it hangs): a new one.
    close(fd_);
    fd_ = -1;
  }
  return Status::Unavailable("the fencing agent does not take its deadline");
}

}  // namespace pampa
