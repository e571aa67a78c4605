// A JSON-per-line conversation over a unix socket, with timeouts. Used for QMP
// and for the QEMU guest agent. Not thread-safe: one owner at a time.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/status.h"

namespace pampa {

class JsonChannel {
 public:
  JsonChannel() = default;
  explicit JsonChannel(int fd) : fd_(fd) {}  // takes ownership (tests: socketpair)
  ~JsonChannel();
  JsonChannel(const JsonChannel&) = delete;
  JsonChannel& operator=(const JsonChannel&) = delete;

  Status Connect(const std::string& socket_path, std::chrono::milliseconds timeout);
  bool connected() const { return fd_ >= 0; }
  void Close();

  // pass_fd: a descriptor that goes with the message (SCM_RIGHTS), as QMP's
  // getfd takes it; the caller keeps its own copy.
  Status Send(const nlohmann::json& msg, int pass_fd = -1);
  // Next JSON object; kUnavailable on EOF or timeout (timeout 0: only what is buffered/ready).
  Result<nlohmann::json> Receive(std::chrono::milliseconds timeout);
  // Drops whatever is buffered or readable now (guest agent resync).
  void Discard();

 private:
  std::optional<nlohmann::json> TakeBufferedLine();
  int fd_ = -1;
  std::string buf_;
};

}  // namespace pampa
