#include "backup/repos.h"

#include <sys/stat.h>

#include "backup/sftp_store.h"
#include "base/fs.h"
#include "base/units.h"

namespace pampa {

using json = nlohmann::json;

Result<std::unique_ptr<ObjectStore>> Repos::OpenStore(const RepoInfo& info) {
  const std::string& url = info.url;
  if (url.rfind("sftp://", 0) == 0) {
    PAMPA_ASSIGN_OR_RETURN(auto loc, ParseSftpUrl(url));
    loc.identity = info.ssh_key;
    loc.known_hosts = info.known_hosts;
    return OpenSftpObjectStore(loc);
  }
  std::string path = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
  if (path.empty() || path[0] != '/') {
    return Status::Invalid("repository URL '" + url + "' must be an absolute path (or sftp://user@host/path)");
  }
  return OpenLocalObjectStore(path);
}

Result<std::string> Repos::Passphrase(const RepoInfo& info) {
  if (info.passphrase_file.empty()) return std::string();
  struct stat st;
  if (::stat(info.passphrase_file.c_str(), &st) != 0) {
    return Status::Invalid("passphrase file " + info.passphrase_file + " of repository '" + info.name + "' is missing");
  }
  if (st.st_mode & 0077) {
    return Status::Invalid("passphrase file " + info.passphrase_file + " is readable by others; chmod 600 it first");
  }
  PAMPA_ASSIGN_OR_RETURN(auto text, ReadFile(info.passphrase_file));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.size() < 8)
    return Status::Invalid("the passphrase in " + info.passphrase_file + " is shorter than 8 characters");
  return text;
}

Result<json> Repos::Add(const RepoInfo& in, bool no_encryption) {
  PAMPA_RETURN_IF_ERROR(ValidateName("repository", in.name));
  if (store_.Get("repos/" + in.name)->has_value())
    return Status::Conflict("repository '" + in.name + "' already exists");
  if (no_encryption == !in.passphrase_file.empty()) {
    return Status::Invalid("give --passphrase-file FILE to encrypt the repository, or --no-encryption");
  }
  PAMPA_ASSIGN_OR_RETURN(auto pass, Passphrase(in));
  for (auto* f : {&in.ssh_key, &in.known_hosts}) {
    if (!f->empty() && (f->front() != '/' || !Exists(*f))) return Status::Invalid("file " + *f + " does not exist");
  }
  PAMPA_ASSIGN_OR_RETURN(auto store, OpenStore(in));
  PAMPA_ASSIGN_OR_RETURN(bool exists, store->Exists("config"));
  bool encrypted;
  if (exists) {
    PAMPA_ASSIGN_OR_RETURN(auto repo, Repository::Open(std::move(store), pass));
    encrypted = repo->encrypted();
    if (!encrypted && !pass.empty())
      return Status::Invalid("the repository at " + in.url + " is not encrypted: use --no-encryption");
  } else {
    PAMPA_ASSIGN_OR_RETURN(auto repo, Repository::Init(std::move(store), pass));
    encrypted = repo->encrypted();
  }
  json rec = {{"name", in.name},
              {"url", in.url},
              {"passphrase_file", in.passphrase_file},
              {"ssh_key", in.ssh_key},
              {"known_hosts", in.known_hosts}};
  PAMPA_RETURN_IF_ERROR(store_.Create("repos/" + in.name, rec.dump()));
  return json{{"name", in.name}, {"url", in.url}, {"encrypted", encrypted}, {"created", !exists}};
}

Result<std::vector<RepoInfo>> Repos::List() {
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("repos/"));
  std::vector<RepoInfo> out;
  for (auto& [k, v] : kvs) {
    auto j = json::parse(v, nullptr, false);
    out.push_back({j.value("name", ""), j.value("url", ""), j.value("passphrase_file", ""), j.value("ssh_key", ""),
                   j.value("known_hosts", "")});
  }
  return out;
}

Result<RepoInfo> Repos::Get(const std::string& name) {
  PAMPA_RETURN_IF_ERROR(ValidateName("repository", name));
  PAMPA_ASSIGN_OR_RETURN(auto v, store_.Get("repos/" + name));
  if (!v) return Status::NotFound("repository '" + name + "' does not exist (see: pampa repo list)");
  auto j = json::parse(*v, nullptr, false);
  return RepoInfo{j.value("name", ""), j.value("url", ""), j.value("passphrase_file", ""), j.value("ssh_key", ""),
                  j.value("known_hosts", "")};
}

Result<std::shared_ptr<Repository>> Repos::Open(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto info, Get(name));
  PAMPA_ASSIGN_OR_RETURN(auto pass, Passphrase(info));
  std::string key = Sha256Hex(info.url + "\n" + pass);
  {
    std::lock_guard lock(mu_);
    auto it = open_.find(name);
    if (it != open_.end() && it->second.first == key) return it->second.second;
  }
  PAMPA_ASSIGN_OR_RETURN(auto store, OpenStore(info));
  PAMPA_ASSIGN_OR_RETURN(auto repo, Repository::Open(std::move(store), pass));
  std::shared_ptr<Repository> shared(std::move(repo));
  std::lock_guard lock(mu_);
  open_[name] = {key, shared};
  return shared;
}

}  // namespace pampa
