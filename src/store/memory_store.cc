#include <map>
#include <mutex>

#include "store/store.h"

namespace pampa {
namespace {

class MemoryStore final : public Store {
 public:
  Result<std::optional<std::string>> Get(const std::string& key) override {
    std::lock_guard lock(mu_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Status Put(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu_);
    data_[key] = value;
    return Status::Ok();
  }
  Status Create(const std::string& key, const std::string& value) override {
    std::lock_guard lock(mu_);
    if (!data_.emplace(key, value).second) return Status::Conflict(key + " already exists");
    return Status::Ok();
  }
  Status Delete(const std::string& key) override {
    std::lock_guard lock(mu_);
    data_.erase(key);
    return Status::Ok();
  }
  Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) override {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.rfind(prefix, 0) == 0; ++it) {
      out.emplace_back(it->first, it->second);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> data_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace pampa
