#include "backup/disk_transfer.h"

#include <libnbd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

namespace pampa {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class Nbd {
 public:
  Nbd() : h_(nbd_create()) {}
  ~Nbd() {
    if (h_) nbd_close(h_);
  }
  Nbd(const Nbd&) = delete;
  Nbd& operator=(const Nbd&) = delete;

  Status Connect(const NbdTarget& t, const std::string& meta_context) {
    if (!h_) return Status::Internal("libnbd: cannot create a handle");
    nbd_set_export_name(h_, t.export_name.c_str());
    if (!meta_context.empty()) nbd_add_meta_context(h_, meta_context.c_str());
    nbd_add_meta_context(h_, LIBNBD_CONTEXT_BASE_ALLOCATION);
    if (nbd_connect_unix(h_, t.socket.c_str()) == -1) return Error("connecting to " + t.socket);
    return Status::Ok();
  }
  Status Error(const std::string& what) const {
    const char* e = nbd_get_error();
    return Status::Unavailable(what + ": " + (e ? e : "unknown NBD error"));
  }
  nbd_handle* get() { return h_; }

 private:
  nbd_handle* h_;
};

// Calls fn(offset, length, flags) for every extent of `context` in [0, size).
Status ForEachExtent(Nbd& nbd, const std::string& context, uint64_t size,
                     const std::function<void(uint64_t, uint64_t, uint32_t)>& fn) {
  uint64_t offset = 0;
  while (offset < size) {
    uint64_t count = std::min<uint64_t>(size - offset, 1ull << 30);
    uint64_t reached = offset;
    struct Ctx {
      const std::string* context;
      const std::function<void(uint64_t, uint64_t, uint32_t)>* fn;
      uint64_t* reached;
    } ctx{&context, &fn, &reached};
    nbd_extent_callback cb = {[](void* user, const char* meta, uint64_t off, uint32_t* entries, size_t n, int*) -> int {
                                auto* c = static_cast<Ctx*>(user);
                                if (*c->context != meta) return 0;
                                uint64_t pos = off;
                                for (size_t i = 0; i + 1 < n; i += 2) {
                                  (*c->fn)(pos, entries[i], entries[i + 1]);
                                  pos += entries[i];
                                }
                                *c->reached = pos;
                                return 0;
                              },
                              &ctx, nullptr};
    if (nbd_block_status(nbd.get(), count, offset, cb, 0) == -1) return nbd.Error("block status");
    if (reached <= offset)
      return Status::Internal("NBD server reported no extents at offset " + std::to_string(offset));
    offset = reached;
  }
  return Status::Ok();
}

bool AllZero(const std::string& s) {
  const char* p = s.data();
  size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

// A bounded queue between the reader and the workers.
template <typename T>
class Channel {
 public:
  explicit Channel(size_t capacity) : cap_(capacity) {}
  bool Push(T v) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < cap_ || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }
  std::optional<T> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> q_;
  size_t cap_;
  bool closed_ = false;
};

}  // namespace

Result<DiskBackupResult> BackupDisk(const NbdTarget& source, Repository& repo, const DiskBackupOptions& opt) {
  const uint64_t chunk = repo.config().chunk_size;
  Nbd nbd;
  std::string bitmap_ctx = opt.bitmap.empty() ? "" : "qemu:dirty-bitmap:" + opt.bitmap;
  PAMPA_RETURN_IF_ERROR(nbd.Connect(source, bitmap_ctx));
  int64_t size = nbd_get_size(nbd.get());
  if (size < 0) return nbd.Error("reading the disk size");
  DiskBackupResult res;
  res.size = static_cast<uint64_t>(size);
  size_t n = (res.size + chunk - 1) / chunk;
  res.chunks.assign(n, kZeroChunk);

  // Which chunks hold data (allocation), and which changed (dirty bitmap).
  std::vector<char> allocated(n, 0), dirty(n, 1);
  PAMPA_RETURN_IF_ERROR(
      ForEachExtent(nbd, LIBNBD_CONTEXT_BASE_ALLOCATION, res.size, [&](uint64_t off, uint64_t len, uint32_t flags) {
        if (flags & LIBNBD_STATE_ZERO) return;
        for (uint64_t c = off / chunk; c < n && c * chunk < off + len; ++c) allocated[c] = 1;
      }));
  res.incremental = !opt.bitmap.empty() && opt.previous && opt.previous->size() == n &&
                    nbd_can_meta_context(nbd.get(), bitmap_ctx.c_str()) == 1;
  if (res.incremental) {
    dirty.assign(n, 0);
    PAMPA_RETURN_IF_ERROR(ForEachExtent(nbd, bitmap_ctx, res.size, [&](uint64_t off, uint64_t len, uint32_t flags) {
      if (!(flags & 1)) return;  // bit 0: dirty
      for (uint64_t c = off / chunk; c < n && c * chunk < off + len; ++c) dirty[c] = 1;
    }));
  }
  std::vector<size_t> todo;
  for (size_t c = 0; c < n; ++c) {
    if (res.incremental && !dirty[c]) {
      res.chunks[c] = (*opt.previous)[c];
    } else if (allocated[c]) {
      todo.push_back(c);
    }  // else: a hole, stays kZeroChunk without reading
  }
  uint64_t total = 0;
  for (size_t c : todo) total += std::min<uint64_t>(chunk, res.size - c * chunk);

  struct Item {
    size_t index;
    std::string data;
  };
  Channel<Item> channel(static_cast<size_t>(opt.workers) * 2);
  std::mutex mu;  // guards res counters and first_error
  Status first_error = Status::Ok();
  uint64_t done = 0;
  std::vector<std::thread> workers;
  for (int w = 0; w < std::max(1, opt.workers); ++w) {
    workers.emplace_back([&] {
      while (auto item = channel.Pop()) {
        size_t len = item->data.size();
        std::string id = kZeroChunk;
        double seal = 0, upload = 0;
        uint64_t up = 0;
        Status st = Status::Ok();
        if (!AllZero(item->data)) {
          if (len < chunk) item->data.resize(chunk, '\0');  // the last chunk is padded: same id as a full one
          auto t0 = Clock::now();
          auto sealed = repo.Seal(item->data);
          seal = Since(t0);
          if (sealed.ok()) {
            t0 = Clock::now();
            auto u = repo.Upload(*sealed);
            upload = Since(t0);
            if (u.ok()) {
              up = *u;
              id = sealed->id;
            } else {
              st = u.status();
            }
          } else {
            st = sealed.status();
          }
        }
        std::lock_guard lock(mu);
        if (!st.ok()) {
          if (first_error.ok()) first_error = st;
          channel.Close();
          continue;
        }
        res.chunks[item->index] = id;
        res.bytes_uploaded += up;
        res.chunks_uploaded += up > 0;
        res.times.seal += seal;
        res.times.upload += upload;
        done += len;
        if (opt.progress) opt.progress(done, total);
      }
    });
  }
  for (size_t c : todo) {
    if (opt.cancel && opt.cancel->load()) {
      std::lock_guard lock(mu);
      if (first_error.ok()) first_error = Status::Invalid("backup cancelled");
      break;
    }
    uint64_t len = std::min<uint64_t>(chunk, res.size - c * chunk);
    std::string buf(len, '\0');
    auto t0 = Clock::now();
    if (nbd_pread(nbd.get(), buf.data(), len, c * chunk, 0) == -1) {
      std::lock_guard lock(mu);
      if (first_error.ok()) first_error = nbd.Error("reading the disk at offset " + std::to_string(c * chunk));
      break;
    }
    res.times.read += Since(t0);
    res.bytes_read += len;
    if (!channel.Push({c, std::move(buf)})) break;
  }
  channel.Close();
  for (auto& t : workers) t.join();
  nbd_shutdown(nbd.get(), 0);
  if (!first_error.ok()) return first_error;
  return res;
}

Status RestoreDisk(Repository& repo, const std::vector<std::string>& chunks, uint64_t size, const NbdTarget& target,
                   int workers, const std::function<void(uint64_t, uint64_t)>& progress,
                   const std::atomic<bool>* cancel) {
  const uint64_t chunk = repo.config().chunk_size;
  if (chunks.size() != (size + chunk - 1) / chunk)
    return Status::Invalid("manifest chunk list does not match the disk size");
  std::vector<size_t> todo;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i] != kZeroChunk) todo.push_back(i);
  }
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first_error = Status::Ok();
  uint64_t done = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < std::max(1, workers); ++w) {
    threads.emplace_back([&] {
      Nbd nbd;
      Status st = nbd.Connect(target, "");
      while (st.ok()) {
        size_t k = next++;
        if (k >= todo.size()) break;
        if (cancel && cancel->load()) {
          st = Status::Invalid("restore cancelled");
          break;
        }
        {
          std::lock_guard lock(mu);
          if (!first_error.ok()) break;
        }
        size_t i = todo[k];
        auto data = repo.GetChunk(chunks[i]);
        if (!data.ok()) {
          st = data.status();
          break;
        }
        uint64_t len = std::min<uint64_t>(chunk, size - i * chunk);
        if (nbd_pwrite(nbd.get(), data->data(), len, i * chunk, 0) == -1) {
          st = nbd.Error("writing the restored disk");
          break;
        }
        std::lock_guard lock(mu);
        done += len;
        if (progress) progress(done, 0);
      }
      if (st.ok() && nbd_flush(nbd.get(), 0) == -1) st = nbd.Error("flushing the restored disk");
      nbd_shutdown(nbd.get(), 0);
      std::lock_guard lock(mu);
      if (!st.ok() && first_error.ok()) first_error = st;
    });
  }
  for (auto& t : threads) t.join();
  return first_error;
}

}  // namespace pampa
