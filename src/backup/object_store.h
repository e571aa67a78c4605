// Where a backup repository keeps its files: a flat namespace of named
// objects ("config", "chunks/ab/abcd...", "backups/ID"). Small interface, one
// conformance suite (object_store_test.cc) that every implementation passes:
// local directory (also an NFS or SSHFS mount), in-memory (tests); SFTP next.
// Implementations are thread-safe. Tests fail or stall chosen calls with
// FaultInjectingObjectStore (object_store_wrapper.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace pampa {

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Writes the whole object atomically: readers see the old object, or none,
  // or the new one, never a part. May be called again with the same name and
  // data (idempotent). Durable when it returns Ok. Callers never replace an
  // object with different content (SFTP v3 could not do that atomically).
  virtual Status Put(const std::string& name, std::string_view data) = 0;
  // Writes a new object, like Put, but under its own name from the start: a
  // reader may meet it empty or partial until it returns (over SFTP that
  // saves Put's rename, one round trip). Only for small objects whose readers
  // take a partial one for a missing one (a lock reads as stale). Callers
  // give it a name no object has (a random one).
  virtual Status Create(const std::string& name, std::string_view data) { return Put(name, data); }
  // kNotFound when absent.
  virtual Result<std::string> Get(const std::string& name) = 0;
  virtual Result<bool> Exists(const std::string& name) = 0;
  // Names under prefix (a "dir/" prefix lists that directory's tree), sorted.
  virtual Result<std::vector<std::string>> List(const std::string& prefix) = 0;
  // Ok when absent.
  virtual Status Delete(const std::string& name) = 0;
  // "local:/path" etc., for messages.
  virtual std::string Describe() const = 0;
  // How many Puts the repository should keep in flight on threads of its own
  // while the backup goes on (Repository::Upload): a store behind a network
  // link, where each Put waits several round trips, wants several; 0 (local
  // stores): Puts are made by the caller, one at a time.
  virtual int WriteBehindStreams() const { return 0; }
  // How many Gets a reader (a restore) should keep in flight: a store behind
  // a link wants more than there are cores to open what arrives; 0: no advice.
  virtual int ReadStreams() const { return 0; }
};

std::unique_ptr<ObjectStore> NewMemoryObjectStore();

// Whether opening a repository's location may create its directory. Only
// `repo add` of a new repository does, and only the last component: a missing
// parent is how an unmounted backup disk looks, and a directory made there
// would fill the root file system with the next backup.
enum class CreateDir { kNo, kLastComponent };
// The repository directory's own message when it is missing: NotFound,
// naming the likely cause.
Status MissingRepositoryDir(const std::string& where);
Result<std::unique_ptr<ObjectStore>> OpenLocalObjectStore(const std::string& dir, CreateDir create = CreateDir::kNo);

}  // namespace pampa
