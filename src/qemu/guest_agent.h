// Client of the QEMU guest agent (qemu-ga) on its virtio-serial socket.
// Each call opens a fresh connection and resynchronises with guest-sync-delimited,
// so a previous caller that gave up half-way cannot confuse the next one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "qmp/json_channel.h"

namespace pampa {

struct ExecResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  bool out_truncated = false;
};

// One connection to the agent, synchronised once, that then carries several
// commands: for sequences that must be quick, such as freeze, point in time,
// thaw (a thaw on a fresh connection waits for two more round trips, and the
// guest's writes wait with it). Its commands must not time out halfway: a late
// answer would be read as the next command's.
class GuestAgentSession {
 public:
  // Connects and resynchronises; kUnavailable when the agent does not answer within timeout.
  static Result<std::unique_ptr<GuestAgentSession>> Open(const std::string& socket_path,
                                                         std::chrono::milliseconds timeout);
  Result<nlohmann::json> Call(const std::string& command, const nlohmann::json& args,
                              std::chrono::milliseconds timeout);

 private:
  GuestAgentSession() = default;
  JsonChannel ch_;
};

class GuestAgent {
 public:
  explicit GuestAgent(std::string socket_path) : path_(std::move(socket_path)) {}

  // Ok when the agent answers guest-ping within timeout.
  Status Ping(std::chrono::milliseconds timeout);
  // Runs argv in the guest and waits for it; kUnavailable when the agent does not answer.
  Result<ExecResult> Exec(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);
  // Starts argv in the guest (its output captured) without waiting; its pid in the guest.
  Result<int64_t> ExecStart(const std::vector<std::string>& argv);
  // The result of a command from ExecStart once it has ended; nullopt while it runs.
  Result<std::optional<ExecResult>> ExecStatus(int64_t pid);
  // Any guest-* command.
  Result<nlohmann::json> Call(const std::string& command, const nlohmann::json& args,
                              std::chrono::milliseconds timeout);

 private:
  std::string path_;
};

// The agent serves one connection at a time, so one conversation (a command,
// or freeze + point in time + thaw) holds the channel. Claiming it is a lease,
// not a lock held across the conversation: a claimant waits at most its wait,
// then gets kBusy naming the conversation that holds it. Thread-safe.
class AgentChannel {
 public:
  class Lease {
   public:
    Lease(Lease&& other) noexcept : channel_(std::exchange(other.channel_, nullptr)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() { Release(); }
    // Gives the channel back early (the destructor does it otherwise).
    void Release();

   private:
    friend class AgentChannel;
    explicit Lease(AgentChannel* channel) : channel_(channel) {}
    AgentChannel* channel_;
  };

  // The channel for what (said to a claimant that times out), once free.
  Result<Lease> Claim(const std::string& what, std::chrono::milliseconds wait);

 private:
  Mutex mu_;  // held only to read or change holder_, never across a conversation
  std::condition_variable free_;
  std::string holder_ GUARDED_BY(mu_);  // empty: free
};

}  // namespace pampa
