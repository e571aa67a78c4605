// Verification: re-reads every chunk a backup references and checks manifests.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "backup/repository.h"

namespace pampa {

// Checks one backup (backup_id) or all. Returns {"ok", "backups_checked",
// "chunks_checked", "damaged_backups": [{"id", "reason"}], "damaged_chunks":
// [{"id", "reason", "backups": [...]}]}; an error only when the check itself
// could not run.
Result<nlohmann::json> VerifyRepository(Repository& repo, const std::string& backup_id, int workers,
                                        const std::function<void(double)>& progress, const std::atomic<bool>* cancel);

}  // namespace pampa
