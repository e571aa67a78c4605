// LocalLeases: etcd's leases for the stores that live in this process.
#include <algorithm>

#include "base/log.h"
#include "store/store_internal.h"

namespace pampa {

using Clock = std::chrono::steady_clock;

LocalLeases::LocalLeases(Store& store) : store_(store), expiry_([this] { ExpiryLoop(); }) {}

LocalLeases::~LocalLeases() { Stop(); }

void LocalLeases::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (expiry_.joinable()) expiry_.join();
}

Result<int64_t> LocalLeases::Grant(std::chrono::seconds ttl) {
  ttl = std::max(ttl, kMinLeaseTtl);
  MutexLock lock(&mu_);
  int64_t id = next_id_++;
  leases_[id] = Lease{ttl, Clock::now() + ttl, {}};
  cv_.notify_all();
  return id;
}

Status LocalLeases::KeepAlive(int64_t lease) {
  MutexLock lock(&mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end()) return Status::NotFound("lease " + std::to_string(lease) + " has ended");
  it->second.deadline = Clock::now() + it->second.ttl;
  return Status::Ok();
}

Status LocalLeases::Revoke(int64_t lease) {
  std::map<std::string, int64_t> keys;
  {
    MutexLock lock(&mu_);
    auto it = leases_.find(lease);
    if (it == leases_.end()) return Status::Ok();
    keys = std::move(it->second.keys);
    leases_.erase(it);
  }
  DeleteKeys(keys);
  return Status::Ok();
}

Status LocalLeases::Put(const std::string& key, const std::string& value, int64_t lease) {
  {
    MutexLock lock(&mu_);
    if (!leases_.count(lease)) return Status::NotFound("lease " + std::to_string(lease) + " has ended");
  }
  PAMPA_ASSIGN_OR_RETURN(int64_t revision, store_.Commit(Txn().Put(key, value)));
  bool ended;
  {
    MutexLock lock(&mu_);
    auto it = leases_.find(lease);
    ended = it == leases_.end();
    if (!ended) {
      for (auto& [id, l] : leases_) l.keys.erase(key);  // a key belongs to one lease
      it->second.keys[key] = revision;
    }
  }
  // The lease ended while the key was written: it goes as the lease's keys went.
  if (ended) DeleteKeys({{key, revision}});
  return Status::Ok();
}

void LocalLeases::DeleteKeys(const std::map<std::string, int64_t>& keys) {
  for (auto& [key, revision] : keys) {
    auto r = store_.Commit(Txn().IfModRevision(key, revision).Delete(key));
    if (!r.ok() && r.status().code() != ErrorCode::kConflict) {
      log::Warn("state store: key {} of an ended lease not deleted: {}", key, r.status().message());
    }
  }
}

void LocalLeases::ExpiryLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    auto now = Clock::now();
    auto next = now + std::chrono::seconds(1);
    std::vector<std::map<std::string, int64_t>> expired;
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.keys));
        it = leases_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    if (!expired.empty()) {
      lock.Unlock();
      for (auto& keys : expired) DeleteKeys(keys);
      lock.Lock();
      continue;
    }
    lock.WaitFor(cv_, next - now);
  }
}

}  // namespace pampa
