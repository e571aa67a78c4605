// The delivery thread of a watch. It sleeps on the store's RevisionSignal
// until a revision at or past the next one it owes is committed, reads those
// changes from the store's history and calls back without holding any lock,
// so a callback may write to the store (and wake itself again).
#include <algorithm>
#include <thread>

#include "store/store_internal.h"

namespace pampa {

void RevisionSignal::Advance(int64_t revision) {
  {
    MutexLock lock(&mu_);
    // Writers may report out of order once they left the store's lock.
    revision_ = std::max(revision_, revision);
  }
  cv_.notify_all();
}

void RevisionSignal::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  cv_.notify_all();
  lock.Wait(cv_, [&]() REQUIRES(mu_) { return readers_ == 0; });
}

class StoreWatch final : public Watch {
 public:
  StoreWatch(std::shared_ptr<RevisionSignal> signal, std::string prefix, int64_t from, ReadChanges read,
             std::function<void(const WatchEvent&)> on_event)
      : signal_(std::move(signal)),
        prefix_(std::move(prefix)),
        next_(from),
        read_(std::move(read)),
        on_event_(std::move(on_event)) {
    thread_ = std::thread([this] { Run(); });
  }

  ~StoreWatch() override {
    {
      MutexLock lock(&signal_->mu_);
      stop_ = true;
    }
    signal_->cv_.notify_all();
    thread_.join();
  }

 private:
  // Revisions read per history query: bounds the memory a watcher far behind
  // uses, while one query per wake-up keeps an up-to-date watcher cheap.
  static constexpr int64_t kBatchRevisions = 1000;

  void Run() {
    for (;;) {
      int64_t to;
      {
        MutexLock lock(&signal_->mu_);
        lock.Wait(signal_->cv_,
                  [&]() REQUIRES(signal_->mu_) { return stop_ || signal_->closed_ || signal_->revision_ >= next_; });
        if (stop_) return;
        if (signal_->closed_) {
          lock.Unlock();
          Cancel(Status::Unavailable("the state store was closed"));
          return;
        }
        to = std::min(signal_->revision_, next_ + kBatchRevisions - 1);
        ++signal_->readers_;
      }
      auto events = read_(prefix_, next_, to);
      {
        MutexLock lock(&signal_->mu_);
        --signal_->readers_;
      }
      signal_->cv_.notify_all();  // Close() may be waiting for the last reader
      if (!events.ok()) {
        Cancel(events.status());
        return;
      }
      for (const WatchEvent& e : *events) {
        if (stop_requested()) return;
        on_event_(e);
      }
      next_ = to + 1;
    }
  }

  bool stop_requested() {
    MutexLock lock(&signal_->mu_);
    return stop_;
  }

  void Cancel(const Status& why) {
    if (stop_requested()) return;
    WatchEvent e;
    e.type = WatchEvent::Type::kCanceled;
    e.revision = next_;
    e.error = why;
    on_event_(e);
  }

  std::shared_ptr<RevisionSignal> signal_;
  const std::string prefix_;
  int64_t next_;  // the first revision not delivered yet; only the thread touches it
  ReadChanges read_;
  std::function<void(const WatchEvent&)> on_event_;
  bool stop_ GUARDED_BY(signal_->mu_) = false;
  std::thread thread_;
};

std::unique_ptr<Watch> StartWatch(std::shared_ptr<RevisionSignal> signal, std::string prefix, int64_t from,
                                  ReadChanges read, std::function<void(const WatchEvent&)> on_event) {
  return std::make_unique<StoreWatch>(std::move(signal), std::move(prefix), from, std::move(read), std::move(on_event));
}

}  // namespace pampa
