// The repositories pampad knows ("repos/NAME" in the state store) and opening
// them. A repository's passphrase or key stays in the file the administrator
// named (root-only), read at each use; pampad never stores it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "base/mutex.h"
#include "store/store.h"

namespace pampa {

struct RepoInfo {
  std::string name;
  std::string url;              // an absolute path (local, NFS or SSHFS mount); sftp:// later
  std::string passphrase_file;  // encrypted with a passphrase kept in this file (mode 600)
  std::string key_file;         // or: encrypted with the key kept in this file; neither: unencrypted
  std::string ssh_key;          // sftp: private key file (empty: root's default keys)
  std::string known_hosts;      // sftp: known_hosts file (empty: ~/.ssh/known_hosts)
  std::string id;               // the repository's config id, seen at repo add (empty: added before ids were kept)
  // How the repository is unlocked: "passphrase", "file" (key file) or "none".
  std::string KeyKind() const { return !key_file.empty() ? "file" : !passphrase_file.empty() ? "passphrase" : "none"; }
};

// A repository record's wire form ("repos/NAME" in the state store, and what a
// live restore's export server is handed).
nlohmann::json RepoInfoToJson(const RepoInfo& info);
RepoInfo RepoInfoFromJson(const nlohmann::json& j);

// Opens the repository a record names, reading its passphrase or key file,
// and checks that it is the one recorded (its config id): the work of
// Repos::Open without the cache, for a process of its own.
Result<std::unique_ptr<Repository>> OpenRepository(const RepoInfo& info);

class Repos {
 public:
  explicit Repos(Store& store) : store_(store) {}
  // Registers a repository, creating it when the location is empty.
  // Returns {"name", "url", "encrypted", "created"}.
  // chunk_size: for a new repository (0: kDefaultChunkSize); an existing one keeps its own.
  Result<nlohmann::json> Add(const RepoInfo& info, bool no_encryption, uint64_t chunk_size = 0);
  Result<std::vector<RepoInfo>> List();
  Result<RepoInfo> Get(const std::string& name);
  // Opens a registered repository (checks the passphrase or key file). An
  // open repository is kept, and checked at each use with one small read (its
  // config: is the backup disk still mounted, still this repository?); given
  // deferred_check, that read is left to the caller, to be made while it
  // prepares other work (empty when there is nothing to check).
  Result<std::shared_ptr<Repository>> Open(const std::string& name, std::function<Status()>* deferred_check = nullptr);
  // Re-wraps the repository key under the passphrase in new_file (mode 600)
  // and records new_file as the repository's passphrase file.
  Status ChangePassphrase(const std::string& name, const std::string& new_file);
  // Forgets a repository and where each VM's next incremental to it would
  // start; its data stays where it is (repo add finds it again). kConflict
  // while a schedule backs up into it.
  Status Remove(const std::string& name);

 private:
  Status Record(const RepoInfo& info, bool create);
  Store& store_;
  // Opened repositories, so the key derivation (scrypt, ~0.1 s and 32 MiB) runs
  // once per repository and passphrase, not per request.
  Mutex mu_;
  // name -> (secret hash, repo)
  std::map<std::string, std::pair<std::string, std::shared_ptr<Repository>>> open_ GUARDED_BY(mu_);
};

}  // namespace pampa
