#include "backup/nbd_export.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace pampa {
namespace {

// The NBD protocol's numbers (doc/proto.md of the NBD project).
constexpr uint64_t kNbdMagic = 0x4e42444d41474943;  // "NBDMAGIC"
constexpr uint64_t kIHaveOpt = 0x49484156454F5054;  // "IHAVEOPT"
constexpr uint64_t kOptReplyMagic = 0x0003e889045565a9;
constexpr uint32_t kRequestMagic = 0x25609513;
constexpr uint32_t kSimpleReplyMagic = 0x67446698;
constexpr uint16_t kFlagFixedNewstyle = 1, kFlagNoZeroes = 2;
constexpr uint16_t kTransHasFlags = 1, kTransReadOnly = 2, kTransCanMultiConn = 256;
enum : uint32_t { kOptExportName = 1, kOptAbort = 2, kOptList = 3, kOptInfo = 6, kOptGo = 7 };
enum : uint32_t { kRepAck = 1, kRepServer = 2, kRepInfo = 3 };
constexpr uint32_t kRepErrUnsup = 0x80000001, kRepErrInvalid = 0x80000003, kRepErrUnknown = 0x80000006;
enum : uint16_t { kInfoExport = 0, kInfoBlockSize = 3 };
enum : uint16_t { kCmdRead = 0, kCmdWrite = 1, kCmdDisc = 2, kCmdFlush = 3 };
constexpr uint32_t kEperm = 1, kEio = 5, kEinval = 22;
constexpr uint32_t kMaxRequest = 32 << 20;  // QEMU's own limit, advertised as the maximum block size
constexpr uint32_t kMaxOption = 64 << 10;

void Put16(std::string& s, uint16_t v) {
  for (int i = 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void Put32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void Put64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t Get(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool RecvAll(int fd, char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t r = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    off += static_cast<size_t>(r);
  }
  return true;
}

std::string OptionReply(uint32_t option, uint32_t type, const std::string& data = "") {
  std::string s;
  Put64(s, kOptReplyMagic);
  Put32(s, option);
  Put32(s, type);
  Put32(s, static_cast<uint32_t>(data.size()));
  return s + data;
}

std::string ReplyHeader(uint32_t error, uint64_t handle) {
  std::string s;
  Put32(s, kSimpleReplyMagic);
  Put32(s, error);
  Put64(s, handle);
  return s;
}

}  // namespace

// One client: its socket, read by its own thread, and written by a writer
// thread from a queue (workers finish reads in any order; replies carry the
// client's handle).
struct BackupNbdServer::Connection {
  explicit Connection(Fd f) : fd(std::move(f)) {}
  Fd fd;
  Mutex mu;
  std::condition_variable cv;
  std::deque<std::string> out GUARDED_BY(mu);
  bool closed GUARDED_BY(mu) = false;

  void Send(std::string data) {
    MutexLock lock(&mu);
    if (closed) return;
    out.push_back(std::move(data));
    cv.notify_one();
  }
  void WriteLoop() {
    MutexLock lock(&mu);
    for (;;) {
      lock.Wait(cv, [&]() REQUIRES(mu) { return closed || !out.empty(); });
      if (out.empty()) return;  // closed, everything sent
      std::string data = std::move(out.front());
      out.pop_front();
      lock.Unlock();
      bool ok = SendAll(fd.get(), data);
      lock.Lock();
      if (!ok) {
        closed = true;
        out.clear();
      }
    }
  }
  void Close() {
    MutexLock lock(&mu);
    closed = true;
    cv.notify_all();
  }
};

struct BackupNbdServer::Slot {
  bool done = false;
  std::shared_ptr<const std::string> data;  // set when fetched
  Status error = Status::Ok();
  std::list<std::pair<size_t, size_t>>::iterator lru;  // valid once data is set and cached
};

struct BackupNbdServer::Job {
  std::shared_ptr<Connection> conn;
  uint64_t handle = 0;
  size_t disk = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
};

BackupNbdServer::BackupNbdServer(std::shared_ptr<Repository> repo, const Manifest& manifest, NbdExportOptions options)
    : repo_(std::move(repo)), disks_(manifest.disks), chunk_size_(repo_->config().chunk_size), options_(options) {}

Result<std::unique_ptr<BackupNbdServer>> BackupNbdServer::Start(std::shared_ptr<Repository> repo,
                                                                const Manifest& manifest, const std::string& socket,
                                                                NbdExportOptions options) {
  const uint64_t chunk = repo->config().chunk_size;
  for (const auto& d : manifest.disks) {
    if (d.chunks.size() != (d.size + chunk - 1) / chunk) {
      return Status::Invalid("backup " + manifest.id + ": disk " + std::to_string(d.index) +
                             "'s chunk list does not match its size");
    }
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() >= sizeof(addr.sun_path)) return Status::Invalid("socket path too long: " + socket);
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Status::Internal(std::string("socket: ") + std::strerror(errno));
  unlink(socket.c_str());
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd.get(), 16) != 0) {
    return Status::Unavailable("cannot listen on " + socket + ": " + std::strerror(errno));
  }
  std::unique_ptr<BackupNbdServer> s(new BackupNbdServer(std::move(repo), manifest, options));
  s->listen_ = std::move(fd);
  {
    MutexLock lock(&s->mu_);
    for (int i = 0; i < std::max(1, options.workers); ++i) s->threads_.emplace_back([p = s.get()] { p->WorkerLoop(); });
  }
  s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

BackupNbdServer::~BackupNbdServer() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    work_.notify_all();
    for (auto& c : connections_) shutdown(c->fd.get(), SHUT_RDWR);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

BackupNbdServer::Stats BackupNbdServer::stats() {
  MutexLock lock(&mu_);
  return stats_;
}

void BackupNbdServer::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_.get(), POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    Fd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.get() < 0) continue;
    auto c = std::make_shared<Connection>(std::move(fd));
    MutexLock lock(&mu_);
    if (stopping_) break;
    connections_.push_back(c);
    threads_.emplace_back([this, c] { Serve(c); });
  }
}

std::optional<size_t> BackupNbdServer::Negotiate(Connection& c) {
  int fd = c.fd.get();
  std::string hello;
  Put64(hello, kNbdMagic);
  Put64(hello, kIHaveOpt);
  Put16(hello, kFlagFixedNewstyle | kFlagNoZeroes);
  char buf[16];
  if (!SendAll(fd, hello) || !RecvAll(fd, buf, 4)) return std::nullopt;
  bool no_zeroes = Get(buf, 4) & kFlagNoZeroes;
  const uint16_t flags = kTransHasFlags | kTransReadOnly | kTransCanMultiConn;
  auto find = [&](const std::string& name) -> std::optional<size_t> {
    for (size_t i = 0; i < disks_.size(); ++i) {
      if (name == ExportName(i) || (name.empty() && i == 0)) return i;
    }
    return std::nullopt;
  };
  for (;;) {
    if (!RecvAll(fd, buf, 16) || Get(buf, 8) != kIHaveOpt) return std::nullopt;
    uint32_t option = static_cast<uint32_t>(Get(buf + 8, 4)), len = static_cast<uint32_t>(Get(buf + 12, 4));
    if (len > kMaxOption) return std::nullopt;
    std::string data(len, '\0');
    if (!RecvAll(fd, data.data(), len)) return std::nullopt;
    switch (option) {
      case kOptExportName: {
        auto disk = find(data);
        if (!disk) return std::nullopt;  // the protocol's only answer: hang up
        std::string reply;
        Put64(reply, disks_[*disk].size);
        Put16(reply, flags);
        if (!no_zeroes) reply.append(124, '\0');
        if (!SendAll(fd, reply)) return std::nullopt;
        return disk;
      }
      case kOptAbort:
        SendAll(fd, OptionReply(option, kRepAck));
        return std::nullopt;
      case kOptList: {
        bool ok = true;
        for (size_t i = 0; i < disks_.size() && ok; ++i) {
          std::string entry;
          Put32(entry, static_cast<uint32_t>(ExportName(i).size()));
          ok = SendAll(fd, OptionReply(option, kRepServer, entry + ExportName(i)));
        }
        if (!ok || !SendAll(fd, OptionReply(option, kRepAck))) return std::nullopt;
        break;
      }
      case kOptInfo:
      case kOptGo: {
        uint32_t name_len = len >= 4 ? static_cast<uint32_t>(Get(data.data(), 4)) : 0;
        if (len < 6 || name_len > len - 6 || 4 + name_len + 2 + 2 * Get(data.data() + 4 + name_len, 2) != len) {
          if (!SendAll(fd, OptionReply(option, kRepErrInvalid))) return std::nullopt;
          break;
        }
        std::string name = data.substr(4, name_len);
        auto disk = find(name);
        if (!disk) {
          if (!SendAll(fd, OptionReply(option, kRepErrUnknown, "no export '" + name + "' in this backup")))
            return std::nullopt;
          break;
        }
        bool block_size = false;
        for (size_t i = 4 + name_len + 2; i + 2 <= len; i += 2) block_size |= Get(data.data() + i, 2) == kInfoBlockSize;
        std::string info;
        Put16(info, kInfoExport);
        Put64(info, disks_[*disk].size);
        Put16(info, flags);
        std::string replies = OptionReply(option, kRepInfo, info);
        if (block_size) {
          std::string sizes;
          Put16(sizes, kInfoBlockSize);
          Put32(sizes, 1);
          Put32(sizes, 4096);
          Put32(sizes, kMaxRequest);
          replies += OptionReply(option, kRepInfo, sizes);
        }
        if (!SendAll(fd, replies + OptionReply(option, kRepAck))) return std::nullopt;
        if (option == kOptGo) return disk;
        break;
      }
      default:  // structured replies, meta contexts, TLS: simple replies serve QEMU and libnbd
        if (!SendAll(fd, OptionReply(option, kRepErrUnsup))) return std::nullopt;
    }
  }
}

void BackupNbdServer::Serve(const std::shared_ptr<Connection>& c) {
  std::optional<size_t> disk = Negotiate(*c);
  std::thread writer;
  if (disk) writer = std::thread([c] { c->WriteLoop(); });
  int fd = c->fd.get();
  char req[28];
  while (disk && !stopping_ && RecvAll(fd, req, sizeof(req))) {
    if (Get(req, 4) != kRequestMagic) break;
    uint16_t type = static_cast<uint16_t>(Get(req + 6, 2));
    uint64_t handle = Get(req + 8, 8), offset = Get(req + 16, 8);
    uint32_t length = static_cast<uint32_t>(Get(req + 24, 4));
    if (type == kCmdDisc) break;
    if (type == kCmdRead) {
      uint64_t size = disks_[*disk].size;
      if (length > kMaxRequest || offset > size || length > size - offset) {
        c->Send(ReplyHeader(kEinval, handle));
        continue;
      }
      auto job = std::make_shared<Job>(Job{c, handle, *disk, offset, length});
      MutexLock lock(&mu_);
      demand_.push_back(std::move(job));
      ++stats_.requests;
      work_.notify_one();
    } else if (type == kCmdWrite) {
      std::string sink(std::min(length, kMaxRequest), '\0');  // the payload follows; read it to stay in step
      uint32_t left = length;
      bool ok = true;
      while (left > 0 && ok) {
        uint32_t n = std::min<uint32_t>(left, static_cast<uint32_t>(sink.size()));
        ok = RecvAll(fd, sink.data(), n);
        left -= n;
      }
      if (!ok) break;
      c->Send(ReplyHeader(kEperm, handle));
    } else if (type == kCmdFlush) {
      c->Send(ReplyHeader(0, handle));  // nothing is ever written
    } else {
      c->Send(ReplyHeader(kEinval, handle));
    }
  }
  c->Close();
  if (writer.joinable()) writer.join();
  MutexLock lock(&mu_);
  std::erase(connections_, c);
}

void BackupNbdServer::WorkerLoop() {
  // Read-ahead leaves at least two workers free for demand reads.
  const int max_ahead = std::max(1, options_.workers - 2);
  MutexLock lock(&mu_);
  for (;;) {
    lock.Wait(work_, [&]() REQUIRES(mu_) {
      return stopping_ || !demand_.empty() || (!ahead_.empty() && ahead_busy_ < max_ahead);
    });
    if (stopping_) return;
    if (!demand_.empty()) {
      auto job = std::move(demand_.front());
      demand_.pop_front();
      lock.Unlock();
      std::string reply = ReplyHeader(0, job->handle);
      reply.resize(reply.size() + job->length);
      Status st = ReadDisk(job->disk, job->offset, job->length, reply.data() + 16);
      if (!st.ok()) reply = ReplyHeader(kEio, job->handle);
      job->conn->Send(std::move(reply));
      if (st.ok() && job->length > 0) ReadAhead(job->disk, (job->offset + job->length - 1) / chunk_size_);
      lock.Lock();
      if (st.ok()) {
        stats_.bytes_served += job->length;
      } else {
        ++stats_.errors;
        stats_.last_error = st.message();
        log::Error("nbd export: a read of disk {} at {} failed: {}", job->disk, job->offset, st.message());
      }
    } else {
      auto [disk, index] = ahead_.front();
      ahead_.pop_front();
      ++ahead_busy_;
      lock.Unlock();
      (void)Chunk(disk, index);  // a failure is reported to whoever asks for it
      lock.Lock();
      --ahead_busy_;
    }
  }
}

Status BackupNbdServer::ReadDisk(size_t disk, uint64_t offset, uint32_t len, char* out) {
  const ManifestDisk& d = disks_[disk];
  uint64_t end = offset + len;
  while (offset < end) {
    size_t index = offset / chunk_size_;
    uint64_t in_chunk = offset - index * chunk_size_;
    uint64_t n = std::min(end - offset, chunk_size_ - in_chunk);
    if (d.chunks[index] == kZeroChunk) {
      std::memset(out, 0, n);
    } else {
      PAMPA_ASSIGN_OR_RETURN(auto data, Chunk(disk, index));
      std::memcpy(out, data->data() + in_chunk, n);
    }
    out += n;
    offset += n;
  }
  return Status::Ok();
}

Result<std::shared_ptr<const std::string>> BackupNbdServer::Chunk(size_t disk, size_t index) {
  const std::pair key{disk, index};
  std::shared_ptr<Slot> slot;
  {
    MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      slot = it->second;
      lock.Wait(fetched_, [&]() REQUIRES(mu_) { return slot->done; });
      if (!slot->data) return slot->error;
      if (cache_.count(key) && cache_[key] == slot) lru_.splice(lru_.end(), lru_, slot->lru);
      return slot->data;
    }
    slot = std::make_shared<Slot>();
    cache_[key] = slot;
  }
  const std::string& id = disks_[disk].chunks[index];
  auto data = std::make_shared<std::string>(chunk_size_, '\0');
  Status st = Status::Ok();
  auto object = repo_->FetchChunk(id);
  if (!object.ok()) {
    st = object.status();
  } else {
    st = repo_->OpenChunkObject(id, *object, data->data());
  }
  if (!st.ok()) st = st.Context("disk " + std::to_string(disk) + " chunk " + std::to_string(index));
  MutexLock lock(&mu_);
  slot->done = true;
  if (st.ok()) {
    slot->data = data;
    slot->lru = lru_.insert(lru_.end(), key);
    cached_bytes_ += chunk_size_;
    ++stats_.chunks_fetched;
    Evict();
  } else {
    slot->error = st;
    cache_.erase(key);  // the next reader tries again (a store may come back)
  }
  fetched_.notify_all();
  if (!st.ok()) return st;
  return std::shared_ptr<const std::string>(data);
}

void BackupNbdServer::ReadAhead(size_t disk, size_t after) {
  const auto& chunks = disks_[disk].chunks;
  const size_t cap = static_cast<size_t>(options_.workers * options_.readahead);
  MutexLock lock(&mu_);
  for (size_t i = after + 1; i < chunks.size() && i <= after + static_cast<size_t>(options_.readahead); ++i) {
    std::pair key{disk, i};
    if (chunks[i] == kZeroChunk || cache_.count(key)) continue;
    if (std::find(ahead_.begin(), ahead_.end(), key) != ahead_.end()) continue;
    if (ahead_.size() >= cap) ahead_.pop_front();  // the oldest guess matters least
    ahead_.push_back(key);
  }
  work_.notify_all();
}

void BackupNbdServer::Evict() {
  while (cached_bytes_ > options_.cache_bytes && !lru_.empty()) {
    cache_.erase(lru_.front());
    lru_.pop_front();
    cached_bytes_ -= chunk_size_;
  }
}

}  // namespace pampa
