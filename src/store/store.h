// The state store: what the user asked for (VM specs, pools, networks) and
// records that must outlive pampad (task history). A small key/value interface
// with the shape of etcd's v3 API, so that the SQLite file (single host) and
// etcd (a pool of hosts, later) are interchangeable and pass one conformance
// suite (store_test.cc). Keys are '/'-separated paths such as "vms/web";
// values are JSON documents.
//
// Revisions: the store counts successful write transactions. Each one (a Put,
// a Create, a Delete that removed something, a Commit that changed something)
// takes the next revision, starting from 1; a fresh store is at revision 0.
// Every key remembers the revision that created it and the one that last
// changed it, which is what compare-and-swap and Txn compares check, and the
// store keeps the changes of recent revisions so that a watcher can resume
// from a revision it saw (see WatchPrefix, Compact).
//
// Thread-safety: every call of a Store may be made from any thread at the same
// time; each call is atomic against the others.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace pampa {

// A value with the revisions that created and last changed its key.
struct Versioned {
  std::string value;
  int64_t mod_revision = 0;
  int64_t create_revision = 0;
};

// Pairs under a prefix, and the store revision they were read at: watching
// from revision + 1 afterwards misses nothing and repeats nothing.
struct VersionedList {
  int64_t revision = 0;
  std::vector<std::pair<std::string, Versioned>> items;  // ordered by key
};

// One condition of a Txn, checked against the current state of one key.
struct Compare {
  enum class Kind {
    kAbsent,       // the key does not exist
    kExists,       // the key exists
    kModRevision,  // the key's mod_revision equals mod_revision (0: the key does not exist)
    kValue,        // the key exists and holds value
  };
  Kind kind = Kind::kAbsent;
  std::string key;
  int64_t mod_revision = 0;
  std::string value;
};

// One change of a Txn.
struct Op {
  enum class Kind {
    kPut,           // create or replace key with value
    kDelete,        // remove key (nothing when absent)
    kDeletePrefix,  // remove every key starting with key (a non-empty prefix)
  };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;
};

// A multi-key transaction: the ops are applied together iff every compare
// holds. Read as a sentence:
//   store.Commit(Txn().IfAbsent("vms/a").Put("vms/a", spec).Delete("drafts/a"))
// As in etcd, a key may be written by at most one op: a Put's key must not be
// Put again, Deleted or fall under a DeletePrefix of the same Txn (deletes may
// overlap each other). Commit refuses other Txns with kInvalid.
struct Txn {
  std::vector<Compare> compares;
  std::vector<Op> ops;

  Txn& IfAbsent(std::string key);
  Txn& IfExists(std::string key);
  Txn& IfModRevision(std::string key, int64_t mod_revision);
  Txn& IfValue(std::string key, std::string value);
  Txn& Put(std::string key, std::string value);
  Txn& Delete(std::string key);
  Txn& DeletePrefix(std::string prefix);
};

// A change seen by a watch.
struct WatchEvent {
  enum class Type {
    kPut,     // key now holds value (created or replaced)
    kDelete,  // key was removed; value is empty
    // Delivery stopped for good and no event follows; error says why: the
    // watcher fell further behind than the history the store keeps (kConflict:
    // re-list and watch again), or the store failed or was closed. revision is
    // the first revision not delivered.
    kCanceled,
  };
  Type type = Type::kPut;
  std::string key;
  std::string value;
  int64_t revision = 0;
  Status error;
};

// A running watch (see Store::WatchPrefix). Destroying it stops delivery:
// when the destructor returns, no callback is running and none will run.
// REQUIRES: not destroyed from inside its own callback (that would wait for
// itself).
class Watch {
 public:
  virtual ~Watch() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // The value at key, or nullopt when absent.
  virtual Result<std::optional<std::string>> Get(const std::string& key) = 0;
  // Creates or replaces; durable when it returns Ok.
  virtual Status Put(const std::string& key, const std::string& value) = 0;
  // Creates only: kConflict when the key exists. Atomic against concurrent
  // callers: of several Creates of one key, exactly one returns Ok.
  virtual Status Create(const std::string& key, const std::string& value) = 0;
  // Removes; Ok when the key did not exist (and then the revision stays).
  virtual Status Delete(const std::string& key) = 0;
  // All pairs whose key starts with prefix, ordered by key.
  virtual Result<std::vector<std::pair<std::string, std::string>>> List(const std::string& prefix) = 0;

  // The revision of the last write (0 for a store never written).
  virtual Result<int64_t> Revision() = 0;
  // The value at key with its revisions, or nullopt when absent.
  virtual Result<std::optional<Versioned>> GetVersioned(const std::string& key) = 0;
  // List with revisions, read at one revision (returned with the items).
  virtual Result<VersionedList> ListVersioned(const std::string& prefix) = 0;

  // Puts value iff key's mod_revision is still expected_mod_revision (0: iff
  // key is absent). kConflict, and nothing written, when it is not:
  // "<key> changed since revision N (now M): re-read and retry". Durable when Ok.
  virtual Status CompareAndPut(const std::string& key, const std::string& value, int64_t expected_mod_revision);
  // Deletes key iff its mod_revision is still expected_mod_revision; kConflict
  // as CompareAndPut. Ok and nothing changes for expected 0 and an absent key.
  virtual Status CompareAndDelete(const std::string& key, int64_t expected_mod_revision);

  // Applies txn.ops atomically iff every one of txn.compares holds, and
  // returns the store's revision after it: a new one when something changed,
  // the current one when nothing did (all ops deleted absent keys). All or
  // nothing, also when the process or the host dies during the call; durable
  // when Ok. kConflict naming the first compare that failed (nothing changed);
  // kInvalid for an empty key or prefix, or a key written by two ops.
  virtual Result<int64_t> Commit(const Txn& txn) = 0;

  // Calls on_event for every change of a key starting with prefix made at
  // revision from_revision or later (0: from the next write on), in revision
  // order (by key within one revision), each change once. Events from before
  // the call are replayed from the history the store keeps. Delivery runs on
  // a thread the watch owns, never inside a writer's call, so on_event may
  // call the store; while on_event runs, later events of this watch wait.
  // kConflict when from_revision is older than that history: "revision N was
  // compacted (oldest kept: M): re-list and watch from the current revision".
  // REQUIRES: every Watch is destroyed before its Store.
  virtual Result<std::unique_ptr<Watch>> WatchPrefix(const std::string& prefix, int64_t from_revision,
                                                     std::function<void(const WatchEvent&)> on_event) = 0;

  // Forgets the changes of revisions older than revision (keys and their
  // current values stay): watching from them fails from then on. Ok when they
  // were forgotten already; kInvalid for a revision after the current one.
  // Stores also compact on their own, keeping the last
  // StoreOptions::history_revisions revisions.
  virtual Status Compact(int64_t revision) = 0;

  // Leases, as etcd's: keys that exist only while their holder keeps a lease
  // alive (a host's liveness record, an HA lock). A lease lives ttl (at least
  // 2 s, rounded up to whole seconds) after it was granted or last kept
  // alive; when it expires or is revoked, the keys put with it are deleted,
  // each a write like any other (watchers see the deletes). A key written
  // again without the lease leaves it. Memory and SQLite stores keep leases
  // in the process: they end with it (SQLite: the keys of a lease the process
  // held when it died stay until deleted).
  virtual Result<int64_t> GrantLease(std::chrono::seconds ttl) = 0;
  // Renews lease for another ttl; kNotFound when it has expired or was revoked.
  virtual Status KeepAlive(int64_t lease) = 0;
  // Ends lease now and deletes its keys; Ok when it has ended already.
  virtual Status RevokeLease(int64_t lease) = 0;
  // Put with key attached to lease; kNotFound when the lease has ended.
  virtual Status PutWithLease(const std::string& key, const std::string& value, int64_t lease) = 0;
};

// Commit for callers that must know whether txn took effect. A Commit that
// fails with anything but kConflict or kInvalid may have been applied all the
// same (etcd answers a timeout after its commit; a disk reports an error after
// the write reached it). CommitResolved then reads txn's keys back: when every
// op's effect is there (each Put key holds its value, each Delete key and
// prefix is empty), the txn counts as applied and its revision (the Put keys'
// mod_revision; the current revision for a txn that only deletes) is
// returned. When the effects are surely absent and txn has compares (so a
// late-landing first copy cannot apply twice), it is committed once more and
// that answer resolved the same way; otherwise, or when the read-back fails
// too, the Commit's error. Sound when txn puts at least one value nobody else writes (a spec carrying
// its uuid, an intent), or only deletes (then the wanted state is there).
Result<int64_t> CommitResolved(Store& store, const Txn& txn);

struct StoreOptions {
  // Revisions of change history kept for watchers that resume. A host writes
  // tens to hundreds of revisions a day and a record is a few hundred bytes
  // to a few KB, so 10000 covers weeks of disconnection in tens of MB at most.
  int64_t history_revisions = 10000;
  // TLS to etcd (a pool with certificates): PEM file paths; all empty: plain HTTP.
  struct Tls {
    std::string ca, cert, key;
  } tls;
};

// Opens (creating when needed) the SQLite store at path. A state file written
// before revisions existed is upgraded in place: its keys become revision 1.
// One process opens a file at a time (watches see only this process's writes).
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, const StoreOptions& options);
// The store of a pool of hosts: etcd v3 at endpoints ("HOST:PORT,HOST:PORT"),
// keys under namespace ns (ending in '/'). Fails when no endpoint answers.
// With options.tls, over HTTPS with that client certificate, and etcd's
// certificate must come from options.tls.ca and name the endpoint's host;
// kUnauthorized when either side refuses the other's certificate.
Result<std::unique_ptr<Store>> OpenEtcdStore(const std::string& endpoints, const std::string& ns,
                                             const StoreOptions& options = {});
// A store that lives in memory, for unit tests.
std::unique_ptr<Store> NewMemoryStore();
std::unique_ptr<Store> NewMemoryStore(const StoreOptions& options);

}  // namespace pampa
