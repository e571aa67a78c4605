#include "backup/sftp_pipe.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/clock.h"

namespace pampa::sftp {
namespace {

// Answers are at most an io_size read plus headers, or a directory listing
// (OpenSSH sends 100 names at a time); anything bigger is a broken stream.
constexpr uint32_t kMaxAnswer = 4 << 20;
// Bytes the server may send ahead of our reading, per connection: 8 MiB
// allow 400 MiB/s at a 20 ms round trip.
constexpr uint32_t kReceiveWindow = 8 << 20;

uint32_t Be32(const char* p) {
  auto u = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return u(0) << 24 | u(1) << 16 | u(2) << 8 | u(3);
}

void PutBe32(std::string& b, uint32_t v) {
  char c[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
  b.append(c, 4);
}

// Appends one packet to out: length, type, [id,] fields, tail (straight into
// the send queue: a write's data is not copied once more on its way).
void AppendPacket(std::string& out, uint8_t type, const uint32_t* id, const std::string& fields,
                  std::string_view tail = {}) {
  PutBe32(out, static_cast<uint32_t>(1 + (id ? 4 : 0) + fields.size() + tail.size()));
  out.push_back(static_cast<char>(type));
  if (id) PutBe32(out, *id);
  out += fields;
  out += tail;
}

}  // namespace

Args& Args::U32(uint32_t v) {
  PutBe32(b_, v);
  return *this;
}
Args& Args::U64(uint64_t v) {
  PutBe32(b_, static_cast<uint32_t>(v >> 32));
  PutBe32(b_, static_cast<uint32_t>(v));
  return *this;
}
Args& Args::Str(std::string_view s) {
  PutBe32(b_, static_cast<uint32_t>(s.size()));
  b_.append(s);
  return *this;
}

uint32_t Fields::U32() {
  if (b_.size() < 4) {
    ok_ = false;
    b_ = {};
    return 0;
  }
  uint32_t v = Be32(b_.data());
  b_.remove_prefix(4);
  return v;
}
uint64_t Fields::U64() {
  uint64_t hi = U32();
  return hi << 32 | U32();
}
std::string_view Fields::Str() {
  uint32_t n = U32();
  if (!ok_ || n > b_.size()) {
    ok_ = false;
    b_ = {};
    return {};
  }
  std::string_view s = b_.substr(0, n);
  b_.remove_prefix(n);
  return s;
}
uint32_t Fields::Attrs(uint64_t* size) {
  uint32_t flags = U32(), perms = 0;
  if (flags & kAttrSize) {
    uint64_t s = U64();
    if (size) *size = s;
  }
  if (flags & kAttrUidGid) U64();
  if (flags & kAttrPermissions) perms = U32();
  if (flags & kAttrTimes) U64();
  if (flags & kAttrExtended) {
    for (uint32_t n = U32(); n > 0 && ok_; --n) {
      Str();
      Str();
    }
  }
  return perms;
}

std::string Reply::Describe() const {
  if (type != kStatus) return "unexpected answer of type " + std::to_string(type);
  return (message.empty() ? std::string("error") : message) + " (SFTP status " + std::to_string(code) + ")";
}

struct Pipe::Slot {
  bool done = false;
  Reply reply;
  std::string error;  // the connection failed before the answer came
};

Result<std::shared_ptr<Pipe>> Pipe::Connect(const SftpLocation& loc) {
  std::shared_ptr<Pipe> p(new Pipe());
  p->where_ = "sftp://" + loc.user + "@" + loc.host + ":" + std::to_string(loc.port);
  p->stall_ms_ = loc.stall_seconds * 1000;
  PAMPA_RETURN_IF_ERROR(ConnectSsh(loc, &p->ssh_, /*start_sftp=*/false));
  PAMPA_RETURN_IF_ERROR(p->Handshake());
  p->wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_ < 0) return Status::Internal("eventfd failed");
  p->last_progress_ = MonotonicMs();
  p->io_ = std::thread([raw = p.get()] { raw->Loop(); });
  return p;
}

Status Pipe::Handshake() {
  auto unavailable = [&](const std::string& what) {
    return Status::Unavailable("SFTP is not available on " + where_ + " (" + what + ": " + ssh_.Error() + ")");
  };
  channel_ = ssh_channel_new(ssh_.ssh);
  if (!channel_ || ssh_channel_open_session(channel_) != SSH_OK) return unavailable("cannot open a channel");
  if (ssh_channel_request_subsystem(channel_, "sftp") != SSH_OK) return unavailable("no sftp subsystem");
  std::string init;
  AppendPacket(init, kInit, nullptr, Args().U32(3).bytes());
  if (ssh_channel_write(channel_, init.data(), init.size()) != static_cast<int>(init.size())) {
    return unavailable("cannot send the version");
  }
  // The server's version and its extensions, read within the session's timeout.
  std::string in;
  char buf[4096];
  while (in.size() < 4 || in.size() < 4 + static_cast<size_t>(Be32(in.data()))) {
    if (in.size() >= 4 && Be32(in.data()) > kMaxAnswer) return unavailable("bad version answer");
    int n = ssh_channel_read_timeout(channel_, buf, sizeof buf, 0, 15000);
    if (n <= 0) return unavailable("no version answer");
    in.append(buf, n);
  }
  uint32_t len = Be32(in.data());
  if (in.size() != 4 + static_cast<size_t>(len)) return unavailable("data after the version answer");
  if (len < 5 || static_cast<uint8_t>(in[4]) != kVersion) return unavailable("unexpected answer to the version");
  Fields g(std::string_view(in).substr(5, len - 1));
  uint32_t version = g.U32();
  if (version < 3) return unavailable("the server speaks SFTP version " + std::to_string(version));
  while (g.ok()) {
    std::string_view name = g.Str(), data = g.Str();
    if (g.ok() && name == "fsync@openssh.com" && data == "1") has_fsync_ = true;
  }
  return Status::Ok();
}

Pipe::~Pipe() {
  if (io_.joinable()) {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    uint64_t one = 1;
    (void)!write(wake_, &one, sizeof one);
    io_.join();
  }
  if (wake_ >= 0) close(wake_);
  // A failed connection (a stalled server among them) is cut first: closing
  // the channel politely would wait for the server to take what we sent.
  if (!Alive() && ssh_.ssh) shutdown(ssh_get_fd(ssh_.ssh), SHUT_RDWR);
  if (channel_) {
    ssh_channel_close(channel_);
    ssh_channel_free(channel_);
  }
}

Pipe::Ticket Pipe::Send(Type type, const Args& args, std::string_view tail) {
  auto slot = std::make_shared<Slot>();
  {
    MutexLock lock(&mu_);
    if (!dead_.empty()) {
      slot->done = true;
      slot->error = dead_;
      return slot;
    }
    uint32_t id = next_id_++;
    if (pending_.empty()) last_progress_ = MonotonicMs();  // the stall clock starts with the first request
    pending_.emplace(id, slot);
    AppendPacket(out_, type, &id, args.bytes(), tail);
  }
  uint64_t one = 1;
  (void)!write(wake_, &one, sizeof one);
  return slot;
}

Result<Reply> Pipe::Wait(const Ticket& t) {
  MutexLock lock(&mu_);
  lock.Wait(answered_, [&]() REQUIRES(mu_) { return t->done; });
  if (!t->error.empty()) return Status::Unavailable(t->error);
  return std::move(t->reply);
}

bool Pipe::Alive() const {
  MutexLock lock(&mu_);
  return dead_.empty();
}

size_t Pipe::InFlight() const {
  MutexLock lock(&mu_);
  return pending_.size();
}

void Pipe::Fail(const std::string& why) {
  MutexLock lock(&mu_);
  if (dead_.empty()) dead_ = where_ + ": " + why;
  for (auto& [id, slot] : pending_) {
    slot->done = true;
    slot->error = dead_;
  }
  pending_.clear();
  answered_.notify_all();
}

bool Pipe::Dispatch(std::string& in) {
  size_t at = 0;
  bool any = false;
  MutexLock lock(&mu_);
  while (in.size() - at >= 4) {
    uint32_t len = Be32(in.data() + at);
    if (len < 5 || len > kMaxAnswer) return false;
    if (in.size() - at < 4 + static_cast<size_t>(len)) break;
    auto type = static_cast<uint8_t>(in[at + 4]);
    uint32_t id = Be32(in.data() + at + 5);
    auto it = pending_.find(id);
    if (it == pending_.end()) return false;  // an answer to nothing we asked
    Reply& r = it->second->reply;
    r.type = type;
    r.body.assign(in, at + 9, len - 5);
    if (type == kStatus) {
      Fields f(r.body);
      r.code = f.U32();
      r.message = std::string(f.Str());
    }
    it->second->done = true;
    pending_.erase(it);
    at += 4 + len;
    any = true;
  }
  in.erase(0, at);
  if (any) answered_.notify_all();
  return true;
}

// Writes queued requests as far as the channel's window allows (so a write
// never waits for the server, which may itself wait for us to read) and reads
// every answer there is; sleeps in poll when neither moves.
void Pipe::Loop() {
  std::string sending, in;
  size_t sent = 0;
  std::string buf(kReceiveWindow, '\0');
  while (true) {
    bool moved = false;
    if (sent == sending.size()) {
      sending.clear();
      sent = 0;
      MutexLock lock(&mu_);
      if (stopping_) return;
      sending.swap(out_);
    }
    if (sent < sending.size()) {
      size_t n = std::min<size_t>({ssh_channel_window_size(channel_), sending.size() - sent, 1 << 20});
      if (n > 0) {
        int w = ssh_channel_write(channel_, sending.data() + sent, static_cast<uint32_t>(n));
        if (w < 0) return Fail(std::string("the connection failed: ") + ssh_.Error());
        sent += w;
        moved = w > 0;
      }
    }
    // Asking for more than the window holds makes libssh open the window that
    // far (its own default, 1.2 MB, allows 60 MB/s at a 20 ms round trip).
    int r = ssh_channel_read_timeout(channel_, buf.data(), static_cast<uint32_t>(buf.size()), 0, 0);
    if (r == SSH_EOF || (r == 0 && ssh_channel_is_eof(channel_))) return Fail("the server closed the SFTP channel");
    if (r < 0) return Fail(std::string("the connection failed: ") + ssh_.Error());
    if (r > 0) {
      in.append(buf.data(), r);
      if (!Dispatch(in)) return Fail("the server sent a malformed SFTP answer");
      moved = true;
    }
    int64_t now = MonotonicMs();
    if (moved) {
      last_progress_ = now;
      continue;
    }
    if (InFlight() > 0 && now - last_progress_ > stall_ms_) {
      return Fail("stopped answering (no data moved for " + std::to_string(stall_ms_ / 1000) +
                  " s); check the server and the network");
    }
    pollfd fds[2] = {{ssh_get_fd(ssh_.ssh), POLLIN, 0}, {wake_, POLLIN, 0}};
    if (poll(fds, 2, 500) > 0 && (fds[1].revents & POLLIN)) {
      uint64_t v;
      (void)!read(wake_, &v, sizeof v);
    }
    if (fds[0].revents & (POLLERR | POLLNVAL)) return Fail("the connection failed");
  }
}

}  // namespace pampa::sftp
