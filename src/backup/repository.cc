#include "backup/repository.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "base/base64.h"
#include "base/fs.h"
#include "base/process.h"
#include "base/retry.h"

namespace pampa {
namespace {

// Sealed chunks waiting for an uploader (write-behind stores), at most.
constexpr uint64_t kMaxQueuedBytes = 64 << 20;

using json = nlohmann::json;

json ConfigJson(const RepoConfig& c) {
  json j = {{"format", "pampa-backup-repository"},
            {"version", c.version},
            {"id", c.id},
            {"chunk_size", c.chunk_size},
            {"chunk_hash", c.encryption == "none" ? "sha256" : "hmac-sha256"},
            {"compression", "zstd"},
            {"zstd_level", c.zstd_level},
            {"encryption", c.encryption}};
  if (c.encryption != "none") {
    j["key"] = c.key;
    j["key_check"] = c.key_check;
  }
  return j;
}

Result<RepoConfig> ConfigFromJson(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("format", "") != "pampa-backup-repository") {
    return Status::Invalid("this is not a Pampa backup repository (its config is not ours)");
  }
  RepoConfig c;
  c.version = j.value("version", 0);
  if (c.version != 1)
    return Status::Invalid("repository format version " + std::to_string(c.version) + " is not supported");
  c.id = j.value("id", "");
  c.chunk_size = j.value("chunk_size", 0ull);
  if (!ValidChunkSize(c.chunk_size)) return Status::Invalid("repository config has a bad chunk size");
  c.encryption = j.value("encryption", "");
  c.zstd_level = j.value("zstd_level", 3);
  if (c.encryption == "aes-256-gcm") {
    c.key = j.value("key", "");
    c.key_check = j.value("key_check", "");
    if (c.key != "passphrase" && c.key != "file") return Status::Invalid("repository config has an unknown key kind");
  } else if (c.encryption != "none") {
    return Status::Invalid("repository encryption '" + c.encryption + "' is not supported");
  }
  return c;
}

std::string KeyCheck(const RepoKeys& keys) { return HmacSha256Hex(keys.id_key, "pampa-key-check"); }

std::string RawKeys(const RepoKeys& keys) {
  std::string raw(reinterpret_cast<const char*>(keys.data_key.data()), 32);
  raw.append(reinterpret_cast<const char*>(keys.id_key.data()), 32);
  return raw;
}

RepoKeys KeysFromRaw(const std::string& raw) {
  RepoKeys keys;
  keys.encrypted = true;
  std::memcpy(keys.data_key.data(), raw.data(), 32);
  std::memcpy(keys.id_key.data(), raw.data() + 32, 32);
  return keys;
}

// A keys/ object: the keys wrapped under a passphrase.
Result<std::string> WrapKeys(const RepoKeys& keys, const std::string& passphrase) {
  KdfParams kdf;
  kdf.salt = RandomBytes(16);
  PAMPA_ASSIGN_OR_RETURN(auto kek, DeriveKey(passphrase, kdf));
  json j = {{"kdf", {{"name", "scrypt"}, {"n", kdf.n}, {"r", kdf.r}, {"p", kdf.p}, {"salt", ToBase64(kdf.salt)}}},
            {"wrapped_keys", ToBase64(Encrypt(kek, RawKeys(keys)))}};
  return j.dump(2) + "\n";
}

// The keys, when this passphrase unwraps this keys/ object.
std::optional<RepoKeys> UnwrapKeys(const std::string& text, const std::string& passphrase) {
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j["kdf"].is_object() || j["kdf"].value("name", "") != "scrypt") return std::nullopt;
  KdfParams kdf;
  kdf.n = j["kdf"].value("n", 0ull);
  kdf.r = j["kdf"].value("r", 0u);
  kdf.p = j["kdf"].value("p", 0u);
  auto salt = FromBase64(j["kdf"].value("salt", ""));
  auto wrapped = FromBase64(j.value("wrapped_keys", ""));
  // Refuse parameters that would make one derivation take minutes or gigabytes.
  if (!salt.ok() || !wrapped.ok() || kdf.n < 2 || kdf.n > (1u << 20) || kdf.r < 1 || kdf.r > 32 || kdf.p < 1 ||
      kdf.p > 16) {
    return std::nullopt;
  }
  kdf.salt = *salt;
  auto kek = DeriveKey(passphrase, kdf);
  if (!kek.ok()) return std::nullopt;
  auto raw = Decrypt(*kek, *wrapped);
  if (!raw.ok() || raw->size() != 64) return std::nullopt;
  return KeysFromRaw(*raw);
}

std::string NewKeyObject() { return "keys/" + ToHex(RandomBytes(8)); }

// A key file: {"format":"pampa-repository-key","repository":ID,"keys":base64(data_key || id_key)}.
Status WriteKeyFile(const std::string& path, const std::string& repo_id, const RepoKeys& keys) {
  if (path.empty() || path[0] != '/') return Status::Invalid("the key file path must be absolute");
  if (Exists(path)) {
    return Status::Conflict("key file " + path +
                            " exists; a new repository gets a new key file (pick a path that does not exist)");
  }
  json j = {{"format", "pampa-repository-key"}, {"repository", repo_id}, {"keys", ToBase64(RawKeys(keys))}};
  return WriteFileAtomic(path, j.dump(2) + "\n", 0600);
}

Result<RepoKeys> ReadKeyFile(const std::string& path, const RepoConfig& c) {
  PAMPA_ASSIGN_OR_RETURN(auto text, ReadPrivateFile(path, "key file"));
  auto j = json::parse(text, nullptr, false);
  auto raw = FromBase64(j.is_object() ? j.value("keys", "") : "");
  if (!j.is_object() || j.value("format", "") != "pampa-repository-key" || !raw.ok() || raw->size() != 64) {
    return Status::Invalid(path + " is not a Pampa repository key file");
  }
  RepoKeys keys = KeysFromRaw(*raw);
  if (j.value("repository", "") != c.id || KeyCheck(keys) != c.key_check) {
    return Status::Invalid("key file " + path + " belongs to another repository (nothing was changed)");
  }
  return keys;
}

}  // namespace

Status CheckChunkSize(uint64_t n) {
  if (ValidChunkSize(n)) return Status::Ok();
  return Status::Invalid("the chunk size must be a power of two from 64K to 64M (default 4M): " + std::to_string(n) +
                         " bytes is not");
}

Result<std::unique_ptr<Repository>> Repository::Init(std::unique_ptr<ObjectStore> store, const RepoSecret& secret,
                                                     uint64_t chunk_size) {
  PAMPA_RETURN_IF_ERROR(CheckChunkSize(chunk_size));
  PAMPA_ASSIGN_OR_RETURN(bool exists, store->Exists("config"));
  if (exists) return Status::Conflict("a repository already exists at " + store->Describe());
  PAMPA_ASSIGN_OR_RETURN(auto existing, store->List(""));
  if (!existing.empty()) {
    return Status::Invalid(store->Describe() + " is not empty and holds no repository; use an empty directory");
  }
  RepoConfig c;
  c.id = ToHex(RandomBytes(16));
  c.chunk_size = chunk_size;
  RepoKeys keys;
  std::string key_object;
  if (secret.empty()) {
    c.encryption = "none";
  } else {
    keys = RepoKeys::Generate();
    c.key_check = KeyCheck(keys);
    if (!secret.key_file.empty()) {
      c.key = "file";
      PAMPA_RETURN_IF_ERROR(WriteKeyFile(secret.key_file, c.id, keys));
    } else {
      key_object = NewKeyObject();
      PAMPA_ASSIGN_OR_RETURN(auto wrapped, WrapKeys(keys, secret.passphrase));
      PAMPA_RETURN_IF_ERROR(store->Put(key_object, wrapped));
    }
  }
  // The config last: until it exists, this is not a repository.
  Status st = store->Put("config", ConfigJson(c).dump(2) + "\n");
  if (!st.ok()) {
    if (c.key == "file" && c.encryption != "none") unlink(secret.key_file.c_str());
    return st;
  }
  return std::unique_ptr<Repository>(new Repository(std::move(store), c, keys, key_object));
}

Result<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<ObjectStore> store, const RepoSecret& secret) {
  auto text = store->Get("config");
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound) {
      return Status::NotFound("no repository at " + store->Describe() + " (create one with: pampa repo add)");
    }
    return text.status();
  }
  PAMPA_ASSIGN_OR_RETURN(auto c, ConfigFromJson(*text));
  RepoKeys keys;
  std::string key_object;
  if (c.encryption != "none" && c.key == "file") {
    if (secret.key_file.empty()) {
      return Status::Invalid("the repository's key is kept in a key file, not in the repository: give --key-file");
    }
    PAMPA_ASSIGN_OR_RETURN(keys, ReadKeyFile(secret.key_file, c));
  } else if (c.encryption != "none") {
    if (secret.passphrase.empty()) {
      return Status::Invalid("the repository is encrypted with a passphrase: give --passphrase-file");
    }
    PAMPA_ASSIGN_OR_RETURN(auto names, store->List("keys/"));
    for (auto& name : names) {
      auto wrapped = store->Get(name);
      if (!wrapped.ok()) continue;
      if (auto k = UnwrapKeys(*wrapped, secret.passphrase); k && KeyCheck(*k) == c.key_check) {
        keys = *k;
        key_object = name;
        break;
      }
    }
    if (key_object.empty()) {
      return Status::Invalid("wrong passphrase: the repository key could not be unlocked (nothing was changed)");
    }
  }
  // The chunk index is read at the first write: a restore (or a live
  // restore's export) needs only the manifest and the chunks it names, and
  // listing chunks/ costs a round trip per directory over SFTP (~23 s over
  // a 20 ms link for a 1 GiB backup).
  return std::unique_ptr<Repository>(new Repository(std::move(store), c, keys, key_object));
}

Status Repository::ChangePassphrase(const std::string& new_passphrase, const std::function<Status()>& commit) {
  if (!keys_.encrypted || config_.key != "passphrase") {
    return Status::Invalid("the repository has no passphrase to change (" +
                           std::string(keys_.encrypted ? "its key is in a key file" : "it is not encrypted") + ")");
  }
  PAMPA_ASSIGN_OR_RETURN(auto wrapped, WrapKeys(keys_, new_passphrase));
  std::string next = NewKeyObject();
  PAMPA_RETURN_IF_ERROR(store_->Put(next, wrapped));
  if (Status st = commit(); !st.ok()) {
    (void)store_->Delete(next);
    return st;
  }
  PAMPA_RETURN_IF_ERROR(store_->Delete(key_object_));
  key_object_ = next;
  return Status::Ok();
}

namespace {

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string BootId() {
  auto id = ReadFile("/proc/sys/kernel/random/boot_id");
  return id.ok() ? *id : "";
}

}  // namespace

Status Repository::AddLock(const std::string& name) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  json lock = {{"created", now.count()}, {"host", HostName()}, {"pid", getpid()}, {"boot", BootId()}};
  // Created in place, a round trip sooner than a Put over SFTP: a lock read
  // while it is written does not parse and counts as stale (ActiveLocks), as
  // a lock a crash left half written should. Backups and GCs each look for
  // the other's lock only once their own is whole, so one of the two always
  // sees the other's (docs/design.md, repository locks).
  Status st = store_->Create("locks/" + name, lock.dump());
  // A Put reported failed may have landed all the same: a lock left behind
  // would hold off garbage collection for as long as this pampad runs.
  if (!st.ok()) (void)RemoveLock(name);
  return st;
}

Status Repository::RemoveLock(const std::string& name) {
  return RetryIdempotent([&] { return store_->Delete("locks/" + name); })
      .Context("removing the repository lock " + name);
}

Result<std::vector<std::string>> Repository::ActiveLocks(const std::string& prefix) {
  PAMPA_ASSIGN_OR_RETURN(auto names, store_->List("locks/" + prefix));
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  std::vector<std::string> out;
  for (auto& n : names) {
    auto text = store_->Get(n);
    if (!text.ok()) continue;
    auto j = json::parse(*text, nullptr, false);
    int64_t created = j.is_object() ? j.value("created", int64_t{0}) : 0;
    if (now.count() - created >= 24ll * 3600 * 1000) continue;
    // A lock of a process on this host that is gone (pampad killed, host rebooted) is stale.
    if (j.is_object() && j.value("host", "") == HostName() &&
        (j.value("boot", "") != BootId() || !ProcessAlive(j.value("pid", 0), ""))) {
      continue;
    }
    out.push_back(n.substr(6));
  }
  return out;
}

Status Repository::ReloadChunkIndex() {
  {
    MutexLock lock(&mu_);
    known_.clear();
    index_loaded_ = false;
  }
  return LoadChunkIndex();
}

Status Repository::LoadChunkIndex() {
  {
    MutexLock lock(&mu_);
    if (index_loaded_) return Status::Ok();
  }
  // Listed with no lock held; two first writers may both list (and merge the same ids).
  PAMPA_ASSIGN_OR_RETURN(auto ids, ListChunks());
  MutexLock lock(&mu_);
  known_.insert(ids.begin(), ids.end());
  index_loaded_ = true;
  return Status::Ok();
}

Result<std::vector<std::string>> Repository::ListChunks() {
  PAMPA_ASSIGN_OR_RETURN(auto names, store_->List("chunks/"));
  std::vector<std::string> ids;
  ids.reserve(names.size());
  for (auto& n : names) ids.push_back(n.substr(n.rfind('/') + 1));
  return ids;
}

Result<Repository::SealedChunk> Repository::Seal(std::string_view plaintext, std::string* buf) {
  PAMPA_RETURN_IF_ERROR(LoadChunkIndex());
  SealedChunk c;
  c.id = ChunkId(keys_, plaintext);
  {
    MutexLock lock(&mu_);
    // Deduplicated (or being uploaded by another worker): not even compressed.
    if (known_.count(c.id) || in_flight_.count(c.id)) return c;
  }
  c.object = SealChunk(keys_, c.id, plaintext, config_.zstd_level, buf);
  return c;
}

Result<uint64_t> Repository::Upload(const SealedChunk& chunk) {
  if (chunk.object.empty()) return uint64_t{0};
  PAMPA_RETURN_IF_ERROR(LoadChunkIndex());
  int streams = store_->WriteBehindStreams();
  {
    MutexLock lock(&mu_);
    if (known_.count(chunk.id) || in_flight_.count(chunk.id)) return uint64_t{0};  // another worker was faster
    if (streams > 0) {
      // Twice as many chunks queued as uploaders, each finding the next one
      // ready, and at most 64 MiB of them (or one).
      size_t limit = 2 * static_cast<size_t>(streams);
      lock.Wait(uploaded_, [&]() REQUIRES(mu_) {
        return queue_.empty() || (queue_.size() < limit && queued_bytes_ + chunk.object.size() <= kMaxQueuedBytes);
      });
      if (known_.count(chunk.id) || in_flight_.count(chunk.id)) return uint64_t{0};
      while (uploaders_.size() < static_cast<size_t>(streams)) uploaders_.emplace_back([this] { UploadLoop(); });
      in_flight_.insert(chunk.id);
      failed_.erase(chunk.id);
      queue_.push_back({chunk.id, std::string(chunk.object)});
      queued_bytes_ += chunk.object.size();
    }
  }
  if (streams > 0) {
    queued_.notify_one();
    return uint64_t{chunk.object.size()};
  }
  PAMPA_RETURN_IF_ERROR(store_->Put(ChunkObject(chunk.id), chunk.object));
  MutexLock lock(&mu_);
  known_.insert(chunk.id);
  return uint64_t{chunk.object.size()};
}

void Repository::UploadLoop() {
  while (true) {
    PendingUpload next;
    {
      MutexLock lock(&mu_);
      lock.Wait(queued_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to upload
      next = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= next.object.size();
    }
    uploaded_.notify_all();  // room in the queue
    Status st = store_->Put(ChunkObject(next.id), next.object);
    {
      MutexLock lock(&mu_);
      in_flight_.erase(next.id);
      if (st.ok()) {
        known_.insert(next.id);
      } else {
        failed_[next.id] = st.message();
      }
    }
    uploaded_.notify_all();
  }
}

Status Repository::AwaitUploads(const std::vector<std::string>& ids) {
  PAMPA_RETURN_IF_ERROR(LoadChunkIndex());
  MutexLock lock(&mu_);
  lock.Wait(uploaded_, [&]() REQUIRES(mu_) {
    for (const std::string& id : ids) {
      if (in_flight_.count(id) > 0) return false;
    }
    return true;
  });
  for (const std::string& id : ids) {
    if (id == kZeroChunk || known_.count(id)) continue;
    auto failed = failed_.find(id);
    return Status::Unavailable("chunk " + id + " could not be uploaded: " +
                               (failed != failed_.end() ? failed->second : "the upload did not happen"));
  }
  return Status::Ok();
}

Repository::~Repository() {
  std::vector<std::thread> uploaders;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    uploaders.swap(uploaders_);
  }
  queued_.notify_all();
  for (auto& t : uploaders) t.join();  // each ends once the queue is empty
}

Result<std::string> Repository::PutChunk(const std::string& plaintext, uint64_t* uploaded_bytes) {
  std::string buf;
  PAMPA_ASSIGN_OR_RETURN(auto sealed, Seal(plaintext, &buf));
  PAMPA_ASSIGN_OR_RETURN(*uploaded_bytes, Upload(sealed));
  return sealed.id;
}

namespace {

Status ValidChunkId(const std::string& id) {
  if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::Invalid("bad chunk id '" + id + "'");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> Repository::FetchChunk(const std::string& id) {
  PAMPA_RETURN_IF_ERROR(ValidChunkId(id));
  auto object = store_->Get(ChunkObject(id));
  if (!object.ok() && object.status().code() == ErrorCode::kNotFound) {
    return Status::Invalid("chunk " + id + " is missing");
  }
  return object;
}

Result<std::string> Repository::GetChunk(const std::string& id) {
  if (id == kZeroChunk) return std::string(config_.chunk_size, '\0');
  PAMPA_ASSIGN_OR_RETURN(auto object, FetchChunk(id));
  return OpenChunk(keys_, id, std::move(object));
}

Status Repository::OpenChunkObject(const std::string& id, std::string& object, char* dst) {
  return OpenChunkInto(keys_, id, object, dst, config_.chunk_size, ChunkCheck::kTag);
}

Status Repository::CheckChunk(const std::string& id) { return GetChunk(id).status(); }

Status Repository::DeleteChunk(const std::string& id) {
  {
    MutexLock lock(&mu_);
    known_.erase(id);
  }
  return store_->Delete(ChunkObject(id));
}

namespace {
std::string ManifestObject(const std::string& backup_id) { return "backups/" + backup_id; }
}  // namespace

Status Repository::WriteManifest(const Manifest& manifest) {
  const std::string& id = manifest.id;
  if (id.empty()) return Status::Internal("manifest without id");
  std::string body = manifest.ToJson().dump();
  json envelope = {{"version", 1}};
  if (keys_.encrypted) {
    envelope["body"] = ToBase64(Encrypt(keys_.data_key, body));
    envelope["mac"] = HmacSha256Hex(keys_.id_key, body);
  } else {
    envelope["body"] = body;
    envelope["sha256"] = Sha256Hex(body);  // detects damage, not deliberate tampering
  }
  return store_->Put(ManifestObject(id), envelope.dump());
}

Result<Manifest> Repository::ReadManifest(const std::string& backup_id) {
  auto text = store_->Get(ManifestObject(backup_id));
  if (!text.ok()) {
    if (text.status().code() == ErrorCode::kNotFound)
      return Status::NotFound("backup " + backup_id + " does not exist");
    return text.status();
  }
  auto env = json::parse(*text, nullptr, false);
  if (!env.is_object() || !env.contains("body"))
    return Status::Invalid("manifest of backup " + backup_id + " is damaged");
  std::string body;
  if (keys_.encrypted) {
    auto sealed = FromBase64(env.value("body", ""));
    if (!sealed.ok()) return Status::Invalid("manifest of backup " + backup_id + " is damaged");
    auto plain = Decrypt(keys_.data_key, *sealed);
    if (!plain.ok() || HmacSha256Hex(keys_.id_key, *plain) != env.value("mac", "")) {
      return Status::Invalid("manifest of backup " + backup_id + " failed authentication (tampered or damaged)");
    }
    body = *plain;
  } else {
    body = env.value("body", "");
    if (Sha256Hex(body) != env.value("sha256", "")) {
      return Status::Invalid("manifest of backup " + backup_id + " is damaged (checksum mismatch)");
    }
  }
  auto j = json::parse(body, nullptr, false);
  if (!j.is_object() || j.value("id", "") != backup_id) {
    return Status::Invalid("manifest of backup " + backup_id + " is damaged");
  }
  return Manifest::FromJson(j);
}

Result<std::vector<std::string>> Repository::ListBackups() {
  PAMPA_ASSIGN_OR_RETURN(auto names, store_->List("backups/"));
  std::vector<std::string> ids;
  for (auto& n : names) ids.push_back(n.substr(8));
  return ids;
}

Result<bool> Repository::HasBackup(const std::string& backup_id) { return store_->Exists(ManifestObject(backup_id)); }

Status Repository::DeleteManifest(const std::string& backup_id) { return store_->Delete(ManifestObject(backup_id)); }

}  // namespace pampa
