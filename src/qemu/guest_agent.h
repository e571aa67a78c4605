// Client of the QEMU guest agent (qemu-ga) on its virtio-serial socket.
// Each call opens a fresh connection and resynchronises with guest-sync-delimited,
// so a previous caller that gave up half-way cannot confuse the next one.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
  // Any guest-* command.
  Result<nlohmann::json> Call(const std::string& command, const nlohmann::json& args,
                              std::chrono::milliseconds timeout);

 private:
  std::string path_;
};

}  // namespace pampa
