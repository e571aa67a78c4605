#include "backup/object_store_wrapper.h"

#include <thread>

namespace pampa {

void FaultInjectingObjectStore::InjectFault(ObjectStoreFault fault) {
  MutexLock lock(&mu_);
  faults_.push_back({std::move(fault)});
}

void FaultInjectingObjectStore::Clear() {
  MutexLock lock(&mu_);
  faults_.clear();
  stall_ = std::chrono::milliseconds(0);
}

void FaultInjectingObjectStore::SetStall(std::chrono::milliseconds stall) {
  MutexLock lock(&mu_);
  stall_ = stall;
}

int FaultInjectingObjectStore::calls(ObjectOp op) const {
  MutexLock lock(&mu_);
  return calls_[static_cast<int>(op)];
}

void FaultInjectingObjectStore::Stall() const {
  std::chrono::milliseconds stall;
  {
    MutexLock lock(&mu_);
    stall = stall_;
  }
  // Outside mu_: stalled calls of several threads overlap, as on a slow link.
  if (stall.count() > 0) std::this_thread::sleep_for(stall);
}

FaultInjectingObjectStore::Verdict FaultInjectingObjectStore::Admit(ObjectOp op, const std::string& name) {
  Stall();
  MutexLock lock(&mu_);
  ++calls_[static_cast<int>(op)];
  Verdict verdict = Verdict::kPass;
  for (Pending& p : faults_) {
    if (p.fault.op != op || !name.starts_with(p.fault.prefix)) continue;
    ++p.seen;
    if (p.seen != p.fault.nth && !(p.fault.persistent && p.seen > p.fault.nth)) continue;
    if (!p.fault.after_apply || op == ObjectOp::kGet) {
      verdict = Verdict::kFailBefore;
    } else if (verdict == Verdict::kPass) {
      verdict = Verdict::kFailAfter;
    }
  }
  return verdict;
}

Status FaultInjectingObjectStore::Injected(const std::string& what) {
  return Status::Unavailable("repository storage unavailable (injected fault): " + what);
}

Status FaultInjectingObjectStore::Write(const std::string& name, const std::function<Status()>& write) {
  Verdict v = Admit(ObjectOp::kPut, name);
  if (v == Verdict::kFailBefore) return Injected(name + " was not written");
  PAMPA_RETURN_IF_ERROR(write());
  if (v == Verdict::kFailAfter) return Injected(name + " was written, but the reply was lost");
  return Status::Ok();
}

Status FaultInjectingObjectStore::Put(const std::string& name, std::string_view data) {
  return Write(name, [&] { return ObjectStoreWrapper::Put(name, data); });
}

Status FaultInjectingObjectStore::Create(const std::string& name, std::string_view data) {
  return Write(name, [&] { return ObjectStoreWrapper::Create(name, data); });
}

Result<std::string> FaultInjectingObjectStore::Get(const std::string& name) {
  if (Admit(ObjectOp::kGet, name) != Verdict::kPass) return Injected(name + " could not be read");
  return ObjectStoreWrapper::Get(name);
}

Result<bool> FaultInjectingObjectStore::Exists(const std::string& name) {
  Stall();
  return ObjectStoreWrapper::Exists(name);
}

Result<std::vector<std::string>> FaultInjectingObjectStore::List(const std::string& prefix) {
  Stall();
  return ObjectStoreWrapper::List(prefix);
}

Status FaultInjectingObjectStore::Delete(const std::string& name) {
  Verdict v = Admit(ObjectOp::kDelete, name);
  if (v == Verdict::kFailBefore) return Injected(name + " was not deleted");
  PAMPA_RETURN_IF_ERROR(ObjectStoreWrapper::Delete(name));
  if (v == Verdict::kFailAfter) return Injected(name + " was deleted, but the reply was lost");
  return Status::Ok();
}

}  // namespace pampa
