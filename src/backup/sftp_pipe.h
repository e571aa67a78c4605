// A pipelined SFTP (version 3) client on one SSH connection.
//
// libssh 0.10's SFTP layer waits for every write's answer before the next
// request, so over a link between sites each repository object cost several
// round trips of its own, one object per connection at a time. Here any
// thread sends requests and waits only for its own answers: one I/O thread
// per connection writes the requests as the SSH channel's window allows and
// hands each answer to whoever waits for its id, so the requests of many
// callers (and all the writes of one object) are in flight at once.
// OpenSSH's sftp-server carries out one connection's requests in the order
// they arrive, which the callers rely on (writes, then close).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "backup/sftp_store.h"
#include "base/mutex.h"
#include "base/status.h"

namespace pampa::sftp {

enum Type : uint8_t {
  kInit = 1,
  kVersion = 2,
  kOpen = 3,
  kClose = 4,
  kRead = 5,
  kWrite = 6,
  kFstat = 8,
  kOpendir = 11,
  kReaddir = 12,
  kRemove = 13,
  kMkdir = 14,
  kStat = 17,
  kRename = 18,
  kStatus = 101,
  kHandle = 102,
  kData = 103,
  kName = 104,
  kAttrs = 105,
  kExtended = 200,
};
// Status codes (SSH_FX_*).
enum Code : uint32_t { kOk = 0, kEof = 1, kNoSuchFile = 2 };
// Open flags (SSH_FXF_*) and the attribute flag for permissions.
constexpr uint32_t kOpenRead = 0x01, kOpenWrite = 0x02, kOpenCreate = 0x08, kOpenExclusive = 0x20;
constexpr uint32_t kAttrSize = 0x01, kAttrUidGid = 0x02, kAttrPermissions = 0x04, kAttrTimes = 0x08,
                   kAttrExtended = 0x80000000;

// A request's fields after its id, in the protocol's encoding.
class Args {
 public:
  Args& U32(uint32_t v);
  Args& U64(uint64_t v);
  Args& Str(std::string_view s);
  const std::string& bytes() const { return b_; }

 private:
  std::string b_;
};

// Reads an answer's fields; a field past the end reads as empty and clears ok().
class Fields {
 public:
  explicit Fields(std::string_view b) : b_(b) {}
  uint32_t U32();
  uint64_t U64();
  std::string_view Str();
  // Skips an ATTRS structure; returns its permissions (0 when absent).
  uint32_t Attrs(uint64_t* size = nullptr);
  bool ok() const { return ok_; }

 private:
  std::string_view b_;
  bool ok_ = true;
};

struct Reply {
  uint8_t type = 0;
  std::string body;  // the fields after the id
  // For kStatus: the code and the server's message.
  uint32_t code = kOk;
  std::string message;
  bool IsStatus(Code c) const { return type == kStatus && code == c; }
  // "the server's message (code N)", for errors.
  std::string Describe() const;
};

class Pipe {
 public:
  struct Slot;
  using Ticket = std::shared_ptr<Slot>;

  // Connects (host key checked, key authentication), starts the SFTP
  // subsystem and its I/O thread.
  static Result<std::shared_ptr<Pipe>> Connect(const SftpLocation& location);
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  // Queues a request and returns at once; Wait collects its answer. tail:
  // bytes that follow args in the request (a write's data), appended to the
  // send queue as they are, not copied into args first.
  Ticket Send(Type type, const Args& args, std::string_view tail = {});
  // The answer, or Unavailable when the connection failed or stopped
  // answering (nothing moved for the location's stall_seconds).
  Result<Reply> Wait(const Ticket& ticket);
  Result<Reply> Call(Type type, const Args& args) { return Wait(Send(type, args)); }

  bool Alive() const;
  // Requests sent and not yet answered (for spreading callers over connections).
  size_t InFlight() const;
  // Bytes per read or write request (SshSession::io_size).
  size_t io_size() const { return ssh_.io_size; }
  bool has_fsync() const { return has_fsync_; }

 private:
  Pipe() = default;
  Status Handshake();
  void Loop();
  // Hands every whole answer at the front of in to its waiter; false on a protocol error.
  bool Dispatch(std::string& in);
  void Fail(const std::string& why);

  SshSession ssh_;
  ssh_channel channel_ = nullptr;
  std::string where_;
  int stall_ms_ = 60000;
  bool has_fsync_ = false;
  int wake_ = -1;  // eventfd: a request was queued or the pipe is closing
  std::thread io_;
  std::atomic<int64_t> last_progress_{0};  // MonotonicMs when bytes last moved

  mutable Mutex mu_;
  std::condition_variable answered_;
  std::string out_ GUARDED_BY(mu_);  // requests not yet taken by the I/O thread
  uint32_t next_id_ GUARDED_BY(mu_) = 1;
  std::map<uint32_t, Ticket> pending_ GUARDED_BY(mu_);
  std::string dead_ GUARDED_BY(mu_);  // why the connection failed; empty while it works
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace pampa::sftp
