#include "backup/verify.h"

#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace pampa {

using json = nlohmann::json;

Result<json> VerifyRepository(Repository& repo, const std::string& backup_id, int workers,
                              const std::function<void(double)>& progress, const std::atomic<bool>* cancel) {
  std::vector<std::string> ids;
  if (backup_id.empty()) {
    PAMPA_ASSIGN_OR_RETURN(ids, repo.ListBackups());
  } else {
    ids = {backup_id};
  }
  json damaged_backups = json::array();
  std::map<std::string, std::set<std::string>> users;  // chunk -> backups using it
  for (auto& id : ids) {
    auto m = repo.ReadManifest(id);
    if (!m.ok()) {
      if (!backup_id.empty() && m.status().code() == ErrorCode::kNotFound) return m.status();
      damaged_backups.push_back({{"id", id}, {"reason", m.status().message()}});
      continue;
    }
    for (auto& d : m->disks) {
      for (auto& c : d.chunks) {
        if (c != kZeroChunk) users[c].insert(id);
      }
    }
  }
  std::vector<std::string> chunks;
  for (auto& [c, u] : users) chunks.push_back(c);
  std::atomic<size_t> next{0}, done{0};
  std::mutex mu;
  json damaged_chunks = json::array();
  std::set<std::string> bad_backups;
  std::vector<std::thread> threads;
  for (int w = 0; w < std::max(1, workers); ++w) {
    threads.emplace_back([&] {
      while (true) {
        size_t k = next++;
        if (k >= chunks.size() || (cancel && cancel->load())) return;
        Status st = repo.CheckChunk(chunks[k]);
        size_t d = ++done;
        std::lock_guard lock(mu);
        if (!st.ok()) {
          damaged_chunks.push_back({{"id", chunks[k]}, {"reason", st.message()}, {"backups", users[chunks[k]]}});
          bad_backups.insert(users[chunks[k]].begin(), users[chunks[k]].end());
        }
        if (progress && (d % 16 == 0 || d == chunks.size())) progress(double(d) / chunks.size());
      }
    });
  }
  for (auto& t : threads) t.join();
  if (cancel && cancel->load()) return Status::Cancelled("verify cancelled");
  for (auto& id : bad_backups)
    damaged_backups.push_back({{"id", id}, {"reason", "references damaged or missing chunks"}});
  return json{{"ok", damaged_backups.empty() && damaged_chunks.empty()},
              {"backups_checked", ids.size()},
              {"chunks_checked", chunks.size()},
              {"damaged_backups", damaged_backups},
              {"damaged_chunks", damaged_chunks}};
}

}  // namespace pampa
