// Object stores that stand in front of another one, as LevelDB's EnvWrapper
// does for its Env: ObjectStoreWrapper forwards every call, and
// FaultInjectingObjectStore fails or slows chosen calls, so that unit tests
// reproduce a repository whose disk fills or whose SFTP link drops in the
// middle of a backup, without a real outage.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backup/object_store.h"
#include "base/mutex.h"

namespace pampa {

// Forwards every call to target. Owns it, because a Repository owns its
// ObjectStore: hand the wrapper to Repository::Init/Open and keep a raw
// pointer to steer it. Thread-safe as target is.
class ObjectStoreWrapper : public ObjectStore {
 public:
  explicit ObjectStoreWrapper(std::unique_ptr<ObjectStore> target) : target_(std::move(target)) {}
  ObjectStore& target() { return *target_; }

  Status Put(const std::string& name, std::string_view data) override { return target_->Put(name, data); }
  Status Create(const std::string& name, std::string_view data) override { return target_->Create(name, data); }
  Result<std::string> Get(const std::string& name) override { return target_->Get(name); }
  Result<bool> Exists(const std::string& name) override { return target_->Exists(name); }
  Result<std::vector<std::string>> List(const std::string& prefix) override { return target_->List(prefix); }
  Status Delete(const std::string& name) override { return target_->Delete(name); }
  std::string Describe() const override { return target_->Describe(); }
  int WriteBehindStreams() const override { return target_->WriteBehindStreams(); }
  int ReadStreams() const override { return target_->ReadStreams(); }

 private:
  std::unique_ptr<ObjectStore> target_;
};

// The calls a fault can hit.
enum class ObjectOp { kPut, kGet, kDelete };

struct ObjectStoreFault {
  ObjectOp op = ObjectOp::kPut;
  // The nth matching call from now fails (1: the next one).
  int nth = 1;
  // Only calls naming an object that starts with prefix match ("chunks/");
  // empty: every call of op matches.
  std::string prefix;
  // Put and Delete: false fails before the target is reached (nothing
  // changes); true lets the target apply the call, then reports kUnavailable
  // anyway, as when a connection drops after the server wrote the object.
  bool after_apply = false;
  // Every matching call after the nth fails too (the target stays down).
  bool persistent = false;
};

// Fails chosen calls with kUnavailable and a message containing "injected
// fault", or stalls every call; the rest reaches the target. Thread-safe.
class FaultInjectingObjectStore : public ObjectStoreWrapper {
 public:
  explicit FaultInjectingObjectStore(std::unique_ptr<ObjectStore> target) : ObjectStoreWrapper(std::move(target)) {}

  // Adds a fault; several may be pending, each counts on its own.
  void InjectFault(ObjectStoreFault fault);
  // Removes every fault and the stall.
  void Clear();
  // Every call sleeps this long before it is forwarded; zero: none.
  void SetStall(std::chrono::milliseconds stall);
  // Calls of op seen so far, failed ones included.
  int calls(ObjectOp op) const;
  // Makes the store ask for streams write-behind uploaders, as an SFTP store
  // does (0, the default: the target's own answer).
  void SetWriteBehind(int streams) { write_behind_ = streams; }
  int WriteBehindStreams() const override {
    return write_behind_ > 0 ? write_behind_.load() : ObjectStoreWrapper::WriteBehindStreams();
  }
  // Makes the store advise streams Gets in flight, as an SFTP store does.
  void SetReadStreams(int streams) { read_streams_ = streams; }
  int ReadStreams() const override {
    return read_streams_ > 0 ? read_streams_.load() : ObjectStoreWrapper::ReadStreams();
  }

  // Create counts and fails as a Put.
  Status Put(const std::string& name, std::string_view data) override;
  Status Create(const std::string& name, std::string_view data) override;
  Result<std::string> Get(const std::string& name) override;
  Result<bool> Exists(const std::string& name) override;
  Result<std::vector<std::string>> List(const std::string& prefix) override;
  Status Delete(const std::string& name) override;
  std::string Describe() const override { return "fault-injecting " + ObjectStoreWrapper::Describe(); }

 private:
  std::atomic<int> write_behind_{0};
  std::atomic<int> read_streams_{0};
  struct Pending {
    ObjectStoreFault fault;
    int seen = 0;
  };
  enum class Verdict { kPass, kFailBefore, kFailAfter };

  // A Put or Create: write() reaches the target unless the call fails before.
  Status Write(const std::string& name, const std::function<Status()>& write);
  // Stalls, counts the call and decides whether it fails.
  Verdict Admit(ObjectOp op, const std::string& name);
  void Stall() const;
  static Status Injected(const std::string& what);

  mutable Mutex mu_;
  std::vector<Pending> faults_ GUARDED_BY(mu_);
  std::chrono::milliseconds stall_ GUARDED_BY(mu_){0};
  int calls_[3] GUARDED_BY(mu_) = {0, 0, 0};  // by ObjectOp
};

}  // namespace pampa
