#include "backup/repos.h"

#include "backup/sftp_store.h"
#include "base/fs.h"
#include "base/units.h"

namespace pampa {

using json = nlohmann::json;

namespace {

Result<std::unique_ptr<ObjectStore>> OpenStore(const RepoInfo& info, CreateDir create) {
  const std::string& url = info.url;
  if (url.rfind("sftp://", 0) == 0) {
    PAMPA_ASSIGN_OR_RETURN(auto loc, ParseSftpUrl(url));
    loc.identity = info.ssh_key;
    loc.known_hosts = info.known_hosts;
    return OpenSftpObjectStore(loc, create);
  }
  std::string path = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
  if (path.empty() || path[0] != '/') {
    return Status::Invalid("repository URL '" + url + "' must be an absolute path (or sftp://user@host/path)");
  }
  return OpenLocalObjectStore(path, create);
}

Result<std::string> ReadPassphrase(const std::string& file, const std::string& repo) {
  auto read = ReadPrivateFile(file, "passphrase file");
  if (!read.ok()) return read.status().Context("repository '" + repo + "'");
  std::string text = std::move(*read);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.size() < 8) return Status::Invalid("the passphrase in " + file + " is shorter than 8 characters");
  return text;
}

}  // namespace

json RepoInfoToJson(const RepoInfo& i) {
  return {{"name", i.name},
          {"url", i.url},
          {"passphrase_file", i.passphrase_file},
          {"key_file", i.key_file},
          {"ssh_key", i.ssh_key},
          {"known_hosts", i.known_hosts},
          {"id", i.id}};
}

RepoInfo RepoInfoFromJson(const json& j) {
  if (!j.is_object()) return {};
  return RepoInfo{j.value("name", ""),     j.value("url", ""),     j.value("passphrase_file", ""),
                  j.value("key_file", ""), j.value("ssh_key", ""), j.value("known_hosts", ""),
                  j.value("id", "")};
}

namespace {

RepoInfo InfoFromJson(const std::string& text) { return RepoInfoFromJson(json::parse(text, nullptr, false)); }

Result<RepoSecret> Secret(const RepoInfo& info) {
  RepoSecret s;
  s.key_file = info.key_file;
  if (!info.passphrase_file.empty()) {
    PAMPA_ASSIGN_OR_RETURN(s.passphrase, ReadPassphrase(info.passphrase_file, info.name));
  }
  return s;
}

}  // namespace

Status Repos::Record(const RepoInfo& info, bool create) {
  std::string text = RepoInfoToJson(info).dump();
  return create ? store_.Create("repos/" + info.name, text) : store_.Put("repos/" + info.name, text);
}

Result<json> Repos::Add(const RepoInfo& in, bool no_encryption, uint64_t chunk_size) {
  PAMPA_RETURN_IF_ERROR(ValidateName("repository", in.name));
  if (store_.Get("repos/" + in.name)->has_value())
    return Status::Conflict("repository '" + in.name + "' already exists");
  int kinds = !in.passphrase_file.empty() + !in.key_file.empty() + no_encryption;
  if (kinds != 1) {
    return Status::Invalid(
        "give one of --passphrase-file FILE (the key is kept in the repository, wrapped by the passphrase), "
        "--key-file FILE (the key is kept in that file only) or --no-encryption");
  }
  if (!in.key_file.empty() && in.key_file.front() != '/') return Status::Invalid("the key file path must be absolute");
  if (chunk_size != 0) {  // checked before a directory or a connection is made
    PAMPA_RETURN_IF_ERROR(CheckChunkSize(chunk_size));
  }
  PAMPA_ASSIGN_OR_RETURN(auto secret, Secret(in));
  for (auto* f : {&in.ssh_key, &in.known_hosts}) {
    if (!f->empty() && (f->front() != '/' || !Exists(*f))) return Status::Invalid("file " + *f + " does not exist");
  }
  PAMPA_ASSIGN_OR_RETURN(auto store, OpenStore(in, CreateDir::kLastComponent));
  PAMPA_ASSIGN_OR_RETURN(bool exists, store->Exists("config"));
  std::unique_ptr<Repository> repo;
  if (exists) {
    PAMPA_ASSIGN_OR_RETURN(repo, Repository::Open(std::move(store), secret));
    if (!repo->encrypted() && !secret.empty())
      return Status::Invalid("the repository at " + in.url + " is not encrypted: use --no-encryption");
    if (chunk_size != 0 && chunk_size != repo->config().chunk_size) {
      return Status::Invalid("the repository at " + in.url + " already uses " +
                             std::to_string(repo->config().chunk_size) + "-byte chunks: leave out --chunk-size");
    }
  } else {
    PAMPA_ASSIGN_OR_RETURN(repo,
                           Repository::Init(std::move(store), secret, chunk_size ? chunk_size : kDefaultChunkSize));
  }
  RepoInfo recorded = in;
  recorded.id = repo->config().id;
  PAMPA_RETURN_IF_ERROR(Record(recorded, /*create=*/true));
  return json{{"name", in.name},    {"url", in.url},       {"encrypted", repo->encrypted()},
              {"created", !exists}, {"key", in.KeyKind()}, {"chunk_size", repo->config().chunk_size}};
}

Result<std::vector<RepoInfo>> Repos::List() {
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("repos/"));
  std::vector<RepoInfo> out;
  for (auto& [k, v] : kvs) {
    out.push_back(InfoFromJson(v));
  }
  return out;
}

Result<RepoInfo> Repos::Get(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("repository", name));
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get("repos/" + name));
  if (!v) return Status::NotFound("repository '" + name + "' does not exist (see: pampa repo list)");
  return InfoFromJson(*v);
}

Status Repos::Remove(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(Get(name).status());
  PAMPA_ASSIGN_OR_RETURN(auto schedules, store_.List("schedules/"));
  for (auto& [key, value] : schedules) {
    auto s = nlohmann::json::parse(value, nullptr, false);
    if (!s.is_object() || s.value("repo", "") != name) continue;
    std::string id = key.substr(std::string("schedules/").size());
    return Status::Conflict("schedule " + id + " backs up into repository '" + name +
                            "': delete it first (pampa backup schedule delete " + id + ")");
  }
  PAMPA_RETURN_IF_ERROR(
      CommitResolved(store_, Txn().Delete("repos/" + name).DeletePrefix("backup-state/" + name + "/")).status());
  MutexLock lock(&mu_);
  open_.erase(name);
  return Status::Ok();
}

namespace {

// The repository at info.url is the one added as info.name, or an error that
// says what is there instead (an unmounted disk shows an empty directory, a
// different disk another repository).
Status CheckIdentity(const RepoInfo& info, const std::string& found_id) {
  if (info.id.empty() || info.id == found_id) return Status::Ok();
  return Status::Conflict("the repository at " + info.url + " is not '" + info.name + "' (its id is " + found_id +
                          ", '" + info.name + "' had " + info.id + "): is the right backup disk mounted?");
}

Result<std::unique_ptr<Repository>> OpenWithSecret(const RepoInfo& info, const RepoSecret& secret) {
  PAMPA_ASSIGN_OR_RETURN(auto store, OpenStore(info, CreateDir::kNo));
  PAMPA_ASSIGN_OR_RETURN(bool exists, store->Exists("config"));
  if (!exists) {
    return Status::NotFound("the repository directory " + store->Describe() +
                            " holds no repository: is the backup disk mounted?");
  }
  PAMPA_ASSIGN_OR_RETURN(auto repo, Repository::Open(std::move(store), secret));
  PAMPA_RETURN_IF_ERROR(CheckIdentity(info, repo->config().id));
  return repo;
}

}  // namespace

Result<std::unique_ptr<Repository>> OpenRepository(const RepoInfo& info) {
  PAMPA_ASSIGN_OR_RETURN(auto secret, Secret(info));
  return OpenWithSecret(info, secret);
}

Result<std::shared_ptr<Repository>> Repos::Open(const std::string& name, std::function<Status()>* deferred_check) {
  PAMPA_ASSIGN_OR_RETURN(auto info, Get(name));
  PAMPA_ASSIGN_OR_RETURN(auto secret, Secret(info));
  std::string key = Sha256Hex(info.url + "\n" + secret.passphrase + "\n" + secret.key_file);
  std::shared_ptr<Repository> cached;
  {
    MutexLock lock(&mu_);
    auto it = open_.find(name);
    if (it != open_.end() && it->second.first == key) cached = it->second.second;
  }
  if (cached) {
    // The disk under an open repository may have been unmounted or swapped
    // since: one small read (the config) before each use says so.
    auto check = [cached, info, name]() -> Status {
      auto config = cached->store().Get("config");
      if (!config.ok()) {
        if (config.status().code() == ErrorCode::kNotFound) {
          return Status::NotFound("the repository at " + info.url +
                                  " has no config any more: is the backup disk mounted?");
        }
        return config.status().Context("repository '" + name + "'");
      }
      auto found = nlohmann::json::parse(*config, nullptr, false);
      return CheckIdentity(info, found.is_object() ? found.value("id", "") : "");
    };
    if (deferred_check) {
      *deferred_check = std::move(check);
    } else {
      PAMPA_RETURN_IF_ERROR(check());
    }
    return cached;
  }
  PAMPA_ASSIGN_OR_RETURN(auto repo, OpenWithSecret(info, secret));
  std::shared_ptr<Repository> shared(std::move(repo));
  MutexLock lock(&mu_);
  open_[name] = {key, shared};
  return shared;
}

Status Repos::ChangePassphrase(const std::string& name, const std::string& new_file) {
  if (new_file.empty() || new_file.front() != '/') {
    return Status::Invalid("give the new passphrase file as an absolute path");
  }
  PAMPA_ASSIGN_OR_RETURN(auto info, Get(name));
  PAMPA_ASSIGN_OR_RETURN(auto pass, ReadPassphrase(new_file, name));
  PAMPA_ASSIGN_OR_RETURN(auto repo, Open(name));
  info.passphrase_file = new_file;
  PAMPA_RETURN_IF_ERROR(repo->ChangePassphrase(pass, [&] { return Record(info, /*create=*/false); }));
  MutexLock lock(&mu_);
  open_.erase(name);  // reopened (and re-derived) with the new file next time
  return Status::Ok();
}

}  // namespace pampa
