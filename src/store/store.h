// The state store: what the user asked for (VM specs, pools, networks) and
// records that must outlive pampad (task history). A small key/value interface
// so that the SQLite file (single host) and etcd (a cluster, later) are
// interchangeable. Keys are '/'-separated paths such as "vms/web"; values are
// JSON documents. Implementations are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace pampa {

class Store {
 public:
  virtual ~Store() = default;
  // The value at key, or nullopt when absent.
  virtual Result<std::optional<std::string>> Get(const std::string& key) = 0;
  // Creates or replaces; durable when it returns Ok.
  virtual Status Put(const std::string& key, const std::string& value) = 0;
  // Creates only: kConflict when the key exists. Atomic against concurrent callers.
  virtual Status Create(const std::string& key, const std::string& value) = 0;
  // Removes; Ok when the key did not exist.
  virtual Status Delete(const std::string& key) = 0;
  // All pairs whose key starts with prefix, ordered by key.
  virtual Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) = 0;
};

// Opens (creating when needed) the SQLite store at path.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);
// A store that lives in memory, for unit tests.
std::unique_ptr<Store> NewMemoryStore();

}  // namespace pampa
