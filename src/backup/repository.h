// A backup repository: content-addressed chunks plus one manifest per backup,
// in any ObjectStore. Format: docs/formats/backup-repository.md. Thread-safe:
// many threads may PutChunk at once (the backup pipeline does).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "backup/chunk_codec.h"
#include "backup/manifest.h"
#include "backup/object_store.h"
#include "base/mutex.h"

namespace pampa {

// A repository's chunk size: a power of two from 64 KiB (the dirty-bitmap
// granularity, so chunks stay aligned with it) to 64 MiB. New repositories
// get 1 MiB (docs/design.md has the measurements); each repository records its
// own, so those made with 4 MiB before keep it.
constexpr uint64_t kDefaultChunkSize = 1 << 20;
inline bool ValidChunkSize(uint64_t n) { return n >= (64 << 10) && n <= (64 << 20) && (n & (n - 1)) == 0; }
// kInvalid, saying what is allowed, for a chunk size a new repository cannot have.
Status CheckChunkSize(uint64_t n);

struct RepoConfig {
  int version = 1;
  uint64_t chunk_size = kDefaultChunkSize;
  std::string id;
  std::string encryption = "aes-256-gcm";  // or "none"
  std::string key = "passphrase";          // encrypted: "passphrase" (keys/ objects) or "file"
  std::string key_check;                   // hex HMAC-SHA256(id_key, "pampa-key-check"): which key is right
  int zstd_level = 2;
};

// What unlocks an encrypted repository: a passphrase (the key is stored in
// the repository, wrapped with scrypt + AES-GCM) or a key file kept outside
// it (the repository alone is then useless to whoever takes it). Neither: no
// encryption.
struct RepoSecret {
  std::string passphrase;
  std::string key_file;  // absolute path; Init creates it (mode 600)
  bool empty() const { return passphrase.empty() && key_file.empty(); }
};

class Repository {
 public:
  // Creates a repository in an empty store. An empty secret means no
  // encryption (callers must have said --no-encryption). A bad chunk size
  // (CheckChunkSize) is refused before anything is written.
  static Result<std::unique_ptr<Repository>> Init(std::unique_ptr<ObjectStore> store, const RepoSecret& secret,
                                                  uint64_t chunk_size = kDefaultChunkSize);
  // Opens an existing one; a wrong passphrase or key file is kInvalid and touches nothing.
  static Result<std::unique_ptr<Repository>> Open(std::unique_ptr<ObjectStore> store, const RepoSecret& secret);

  // Wraps the key under a new passphrase: writes the new key object, runs
  // `commit` (both passphrases work meanwhile: callers record where the new
  // one lives), then removes the key object this repository was opened with.
  // When commit fails the new key object goes again and the old passphrase
  // stays. Chunks and manifests are untouched.
  Status ChangePassphrase(const std::string& new_passphrase, const std::function<Status()>& commit);

  const RepoConfig& config() const { return config_; }
  bool encrypted() const { return keys_.encrypted; }
  ObjectStore& store() { return *store_; }

  // The two halves of PutChunk, so the backup pipeline can time them apart.
  struct SealedChunk {
    std::string id;
    std::string_view object;  // in the caller's buffer; empty when the repository has the chunk already
  };
  // Names, compresses and encrypts a chunk into *buf (reused between calls).
  Result<SealedChunk> Seal(std::string_view plaintext, std::string* buf);
  // Uploads a sealed chunk (no-op when it was known); returns bytes written.
  // On a store with WriteBehindStreams(), the chunk is copied into a bounded
  // queue and uploaded by the repository's own threads while the caller goes
  // on (it waits only while the queue is full): call AwaitUploads before
  // writing a manifest that references it.
  Result<uint64_t> Upload(const SealedChunk& chunk);
  // Waits until none of ids (chunks given to Upload) is still being uploaded,
  // then Ok when every one of them is in the repository, or the error of the
  // first upload that failed. Chunks another backup was uploading count too:
  // a deduplicated chunk is only as good as that upload.
  Status AwaitUploads(const std::vector<std::string>& ids);
  ~Repository();

  // Stores a chunk unless it is there already. Returns its id; *uploaded_bytes
  // gets the stored size when it was uploaded, 0 when deduplicated.
  Result<std::string> PutChunk(const std::string& plaintext, uint64_t* uploaded_bytes);
  // A chunk's plaintext, every check made (rehashed).
  Result<std::string> GetChunk(const std::string& id);
  // The restore path, in two steps it times apart: a chunk's stored object (a
  // missing one is kInvalid naming it), then its chunk_size plaintext bytes into
  // dst. Encrypted chunks are trusted on their GCM tag (which binds the id)
  // without rehashing.
  Result<std::string> FetchChunk(const std::string& id);
  Status OpenChunkObject(const std::string& id, std::string& object, char* dst);
  // Re-reads a chunk and checks it; Ok or a message naming the chunk.
  Status CheckChunk(const std::string& id);

  // Manifests are written last, atomically, and authenticated.
  Status WriteManifest(const Manifest& manifest);
  // kNotFound when absent; kInvalid when damaged, tampered with, or not a manifest.
  Result<Manifest> ReadManifest(const std::string& backup_id);
  Result<std::vector<std::string>> ListBackups();
  // Whether the backup's manifest exists (one round trip over SFTP).
  Result<bool> HasBackup(const std::string& backup_id);
  Status DeleteManifest(const std::string& backup_id);
  // Every chunk id present in the store.
  Result<std::vector<std::string>> ListChunks();
  Status DeleteChunk(const std::string& id);

  // Locks coordinate garbage collection with running backups ("locks/NAME",
  // holding the creation time). Stale after 24 h (a crashed pampad's).
  Status AddLock(const std::string& name);
  Status RemoveLock(const std::string& name);
  // Names of locks younger than 24 h; only those whose name starts with
  // prefix (only theirs are read: a read is two round trips over SFTP).
  Result<std::vector<std::string>> ActiveLocks(const std::string& prefix = "");
  // Re-reads which chunks exist (after waiting for a garbage collection).
  Status ReloadChunkIndex();

  static std::string ChunkObject(const std::string& id) { return "chunks/" + id.substr(0, 2) + "/" + id; }

 private:
  Repository(std::unique_ptr<ObjectStore> store, RepoConfig config, RepoKeys keys, std::string key_object)
      : store_(std::move(store)), config_(std::move(config)), keys_(keys), key_object_(std::move(key_object)) {}
  // Reads which chunks exist, once (the first Seal, Upload or AwaitUploads does).
  Status LoadChunkIndex();

  std::unique_ptr<ObjectStore> store_;
  RepoConfig config_;
  RepoKeys keys_;
  std::string key_object_;  // "keys/..." that the passphrase opened; empty otherwise
  // The write-behind uploader threads' loop.
  void UploadLoop();

  Mutex mu_;
  std::unordered_set<std::string> known_ GUARDED_BY(mu_);  // chunk ids known to exist
  bool index_loaded_ GUARDED_BY(mu_) = false;              // known_ holds the store's listing
  // Write-behind (stores with WriteBehindStreams): chunks waiting for an
  // uploader, chunks being uploaded (queued ones included), and why the last
  // upload of a chunk failed (until it is uploaded again).
  struct PendingUpload {
    std::string id;
    std::string object;
  };
  std::deque<PendingUpload> queue_ GUARDED_BY(mu_);
  uint64_t queued_bytes_ GUARDED_BY(mu_) = 0;
  std::unordered_set<std::string> in_flight_ GUARDED_BY(mu_);
  std::unordered_map<std::string, std::string> failed_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::condition_variable queued_;    // queue_ grew, or stopping_
  std::condition_variable uploaded_;  // queue_ shrank or in_flight_ changed
  // Started with the first write-behind upload; joined by the destructor.
  std::vector<std::thread> uploaders_ GUARDED_BY(mu_);
};

}  // namespace pampa
