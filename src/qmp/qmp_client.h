// QMP client: greeting and capability negotiation, commands with ids, replies
// matched by id, asynchronous events queued for the caller. Not thread-safe:
// the VM that owns it serializes access.
#pragma once

#include <chrono>
#include <deque>
#include <string>

#include "qmp/json_channel.h"

namespace pampa {

class QmpClient {
 public:
  QmpClient() = default;
  explicit QmpClient(int fd) : ch_(fd) {}  // tests

  // Connects and completes the handshake. kUnavailable when QEMU does not answer.
  Status Connect(const std::string& socket_path, std::chrono::milliseconds timeout);
  // Handshake on an already-open channel.
  Status Handshake(std::chrono::milliseconds timeout);
  bool connected() const { return ch_.connected(); }
  void Close() { ch_.Close(); }

  // Runs a command; returns its "return" value, or the QMP error as kInvalid
  // with QEMU's description. Events arriving meanwhile are queued.
  Result<nlohmann::json> Execute(const std::string& command, const nlohmann::json& args = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Hands QEMU a descriptor under name (QMP getfd), for a command that names
  // it (a migration's "fd:NAME"); the caller keeps and closes its own copy.
  Status PassFd(const std::string& name, int fd, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Reads whatever events are ready without blocking, and returns all queued.
  std::deque<nlohmann::json> TakeEvents();

 private:
  Result<nlohmann::json> Run(const std::string& command, const nlohmann::json& args, std::chrono::milliseconds timeout,
                             int pass_fd);

  JsonChannel ch_;
  std::deque<nlohmann::json> events_;
  uint64_t next_id_ = 1;
};

}  // namespace pampa
