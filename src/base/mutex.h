// Mutex and MutexLock: std::mutex and its RAII holder, annotated so that
// clang's thread-safety analysis (base/thread_annotations.h) checks every
// GUARDED_BY(mu_) field and REQUIRES(mu_) function against the locks held.
// A condition variable is waited on through the MutexLock that holds the
// mutex, which lends the std::mutex to a std::unique_lock for the wait only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "base/thread_annotations.h"

namespace pampa {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Takes the mutex only when it is free; true when it did.
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex from construction until destruction; Unlock() and Lock() let
// go of it and take it again in between (the destructor unlocks only when it
// is held).
//
// Wait and WaitFor release the mutex while blocked and hold it again when
// they return. Their predicate runs with the mutex held, which the analysis
// does not know inside a lambda: say so on the lambda,
//   lock.Wait(idle_, [&]() REQUIRES(mu_) { return active_ == 0; });
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_->Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    mu_->Unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }

  // Waits until pred() holds (at once when it does already).
  template <typename Predicate>
  void Wait(std::condition_variable& cv, Predicate pred) {
    Lent lent(mu_);
    cv.wait(lent.lock, std::move(pred));
  }
  // Waits until pred() holds or timeout has passed; returns pred().
  template <typename Rep, typename Period, typename Predicate>
  bool WaitFor(std::condition_variable& cv, const std::chrono::duration<Rep, Period>& timeout, Predicate pred) {
    Lent lent(mu_);
    return cv.wait_for(lent.lock, timeout, std::move(pred));
  }
  // Waits until cv is notified, timeout has passed, or a spurious wake-up.
  template <typename Rep, typename Period>
  std::cv_status WaitFor(std::condition_variable& cv, const std::chrono::duration<Rep, Period>& timeout) {
    Lent lent(mu_);
    return cv.wait_for(lent.lock, timeout);
  }

 private:
  // The held std::mutex in a std::unique_lock for one wait. The wait returns
  // (or throws, from pred) with it locked again; ownership then goes back to
  // the MutexLock without unlocking.
  struct Lent {
    explicit Lent(Mutex* mu) : lock(mu->mu_, std::adopt_lock) {}
    ~Lent() { lock.release(); }
    std::unique_lock<std::mutex> lock;
  };

  Mutex* const mu_;
  bool held_ = true;
};

// Lets long work (a schedule run, a restore drill) through one at a time
// without a mutex held across it: Enter waits until no one else is inside and
// returns a Pass; the next caller gets in when the Pass goes.
class OneAtATime {
 public:
  class Pass {
   public:
    explicit Pass(OneAtATime* gate) : gate_(gate) {}
    Pass(Pass&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)) {}
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    Pass& operator=(Pass&&) = delete;
    ~Pass() {
      if (gate_) gate_->Leave();
    }

   private:
    OneAtATime* gate_;
  };

  [[nodiscard]] Pass Enter() {
    MutexLock lock(&mu_);
    lock.Wait(left_, [&]() REQUIRES(mu_) { return !inside_; });
    inside_ = true;
    return Pass(this);
  }
  // Waits until no one is inside (for a destructor, once no one new can enter).
  void WaitIdle() {
    MutexLock lock(&mu_);
    lock.Wait(left_, [&]() REQUIRES(mu_) { return !inside_; });
  }

 private:
  void Leave() {
    {
      MutexLock lock(&mu_);
      inside_ = false;
    }
    left_.notify_all();
  }
  Mutex mu_;
  std::condition_variable left_;
  bool inside_ GUARDED_BY(mu_) = false;
};

}  // namespace pampa
