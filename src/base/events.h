// EventBus: every state change and task progress is published here; the API
// relays it to WebSocket subscribers. Thread-safe; callbacks run on the
// publisher's thread and must not block.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "base/mutex.h"

namespace pampa {

class EventBus {
 public:
  using Callback = std::function<void(const nlohmann::json&)>;
  int Subscribe(Callback cb) {
    MutexLock lock(&mu_);
    subs_[next_] = std::move(cb);
    return next_++;
  }
  void Unsubscribe(int id) {
    MutexLock lock(&mu_);
    subs_.erase(id);
  }
  // `event` has at least "type" ("vm", "task", ...).
  void Publish(const nlohmann::json& event) {
    MutexLock lock(&mu_);
    for (auto& [id, cb] : subs_) cb(event);
  }

 private:
  Mutex mu_;
  std::map<int, Callback> subs_ GUARDED_BY(mu_);
  int next_ GUARDED_BY(mu_) = 1;
};

}  // namespace pampa
