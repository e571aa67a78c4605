// ObjectStore over SFTP (libssh): sftp://user@host[:port]/absolute/path.
// Key authentication only; the server's host key must be in known_hosts.
// A few connections, each a pipelined SFTP client (sftp_pipe.h) that carries
// the requests of many callers at once.
#include "backup/sftp_store.h"

#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "backup/sftp_pipe.h"
#include "base/mutex.h"

namespace pampa {
namespace {

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 512 || name[0] == '/' || name.find("..") != std::string::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' || c == '.';
  });
}

// Every request of an object goes out at once where the protocol allows: a
// Put waits three round trips (open; writes, fsync and close; rename), a Get
// two (open; reads), however large the object, and a connection carries the
// requests of many callers at once.
class SftpObjectStore final : public ObjectStore {
 public:
  SftpObjectStore(SftpLocation loc, int connections)
      : loc_(std::move(loc)), connections_(connections), pipes_(connections) {}

  Status Init(CreateDir create) {
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    std::string where = loc_.path + " on " + loc_.host;
    PAMPA_ASSIGN_OR_RETURN(auto st, p->Call(sftp::kStat, sftp::Args().Str(loc_.path)));
    if (st.type == sftp::kAttrs) return Status::Ok();
    if (create == CreateDir::kNo) return MissingRepositoryDir(where);
    // Only the last component: a missing parent is an unmounted disk on the target.
    PAMPA_ASSIGN_OR_RETURN(auto made, p->Call(sftp::kMkdir, Mkdir(loc_.path)));
    if (!made.IsStatus(sftp::kOk)) {
      return Status::Unavailable("cannot create the repository directory " + where + ": " + made.Describe() +
                                 " (does its parent exist? is the backup disk mounted there?)");
    }
    return Status::Ok();
  }

  // Objects in flight: each waits its round trips (three for a Put, two for a
  // Get) whatever its size, and a backup of 1 MiB chunks makes ~1,400
  // objects of 315 KiB for 1.4 GiB of files: at a 20 ms round trip 16 in
  // flight took 5 s to upload them, 48 take a third of that.
  int WriteBehindStreams() const override { return kPerConnection * connections_; }
  int ReadStreams() const override { return kPerConnection * connections_; }

  Status Put(const std::string& name, std::string_view data) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    std::string path = Path(name);
    static std::atomic<uint64_t> seq{0};
    std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
    PAMPA_RETURN_IF_ERROR(WriteNewFile(*p, name, tmp, data));
    PAMPA_ASSIGN_OR_RETURN(auto renamed, p->Call(sftp::kRename, sftp::Args().Str(tmp).Str(path)));
    if (renamed.IsStatus(sftp::kOk)) return Status::Ok();
    // SFTP v3 rename does not replace an existing file. Repository objects are
    // written once (chunks are content-addressed, manifests and locks have
    // unique names), so an existing target already holds this object.
    PAMPA_ASSIGN_OR_RETURN(auto existing, p->Call(sftp::kStat, sftp::Args().Str(path)));
    p->Send(sftp::kRemove, sftp::Args().Str(tmp));
    if (existing.type == sftp::kAttrs) {
      uint64_t size = 0;
      sftp::Fields(existing.body).Attrs(&size);
      if (size == data.size()) return Status::Ok();
      return Status::Conflict("sftp: " + path + " exists with other content; SFTP cannot replace it atomically");
    }
    return Status::Unavailable("sftp: cannot rename into " + path + ": " + renamed.Describe());
  }

  // Two round trips: the open, then the writes, the fsync and the close.
  Status Create(const std::string& name, std::string_view data) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    std::string path = Path(name);
    return WriteNewFile(*p, name, path, data);
  }

  Result<std::string> Get(const std::string& name) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    std::string path = Path(name);
    PAMPA_ASSIGN_OR_RETURN(auto opened, p->Call(sftp::kOpen, sftp::Args().Str(path).U32(sftp::kOpenRead).U32(0)));
    if (opened.IsStatus(sftp::kNoSuchFile)) return Status::NotFound("no object " + name + " in " + Describe());
    if (opened.type != sftp::kHandle) {
      return Status::Unavailable("sftp: cannot open " + path + ": " + opened.Describe());
    }
    std::string handle(sftp::Fields(opened.body).Str());
    // Objects never change once written: ask at once for as much as the
    // largest object read so far (reads past the end answer "end of file"),
    // then for twice as much again while every answer came back full. The
    // object's size comes with the first reads: a short answer followed by
    // "end of file" does not say where the object ends (a server may answer
    // short anywhere), and finding out cost every small object a third round
    // trip.
    std::string out;
    uint64_t batch = std::max<uint64_t>(size_hint_, p->io_size());
    sftp::Pipe::Ticket stat = p->Send(sftp::kFstat, sftp::Args().Str(handle));
    std::optional<uint64_t> size;
    Status st;
    bool end = false;
    while (st.ok() && !end) {
      uint64_t from = out.size();
      std::vector<std::pair<uint64_t, sftp::Pipe::Ticket>> reads;
      for (uint64_t off = from; off < from + batch; off += p->io_size()) {
        auto len = static_cast<uint32_t>(std::min<uint64_t>(p->io_size(), from + batch - off));
        reads.emplace_back(off, p->Send(sftp::kRead, sftp::Args().Str(handle).U64(off).U32(len)));
      }
      if (stat) {
        auto attrs = p->Wait(stat);
        stat = nullptr;
        if (!attrs.ok()) st = attrs.status();
        if (attrs.ok() && attrs->type == sftp::kAttrs) {
          uint64_t n = std::numeric_limits<uint64_t>::max();  // kept when the answer has no size: read to the end
          sftp::Fields f(attrs->body);
          f.Attrs(&n);
          if (f.ok() && n != std::numeric_limits<uint64_t>::max()) size = n;
        }
      }
      bool whole = true;  // every answer so far came back full: the next one continues out
      for (auto& [off, ticket] : reads) {
        auto r = p->Wait(ticket);
        if (!r.ok() && st.ok()) st = r.status();
        if (!r.ok() || !st.ok() || !whole) continue;
        if (r->IsStatus(sftp::kEof)) {
          end = true;
          whole = false;
        } else if (r->type == sftp::kData) {
          std::string_view got = sftp::Fields(r->body).Str();
          out.append(got);
          // A short answer before the end is legal: the next batch goes on from there.
          whole = got.size() == std::min<uint64_t>(p->io_size(), from + batch - off);
        } else {
          st = Status::Unavailable("sftp: read of " + path + " failed: " + r->Describe());
        }
      }
      if (size && out.size() >= *size) end = true;
      batch *= 2;
    }
    p->Send(sftp::kClose, sftp::Args().Str(handle));
    if (!st.ok()) return st;
    size_t hint = size_hint_;
    while (out.size() + 1 > hint && !size_hint_.compare_exchange_weak(hint, out.size() + 1)) {
    }
    return out;
  }

  Result<bool> Exists(const std::string& name) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    PAMPA_ASSIGN_OR_RETURN(auto r, p->Call(sftp::kStat, sftp::Args().Str(Path(name))));
    if (r.type == sftp::kAttrs) return true;
    if (r.IsStatus(sftp::kNoSuchFile)) return false;
    return Status::Unavailable("sftp: cannot look up " + name + " in " + Describe() + ": " + r.Describe());
  }

  // Walks the tree a level at a time, every directory of a level at once.
  Result<std::vector<std::string>> List(const std::string& prefix) override {
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    std::vector<std::string> out;
    auto slash = prefix.rfind('/');
    std::vector<std::string> level = {slash == std::string::npos ? "" : prefix.substr(0, slash)};
    while (!level.empty()) {
      std::vector<std::pair<std::string, sftp::Pipe::Ticket>> opening;
      for (const std::string& rel : level) {
        opening.emplace_back(rel, p->Send(sftp::kOpendir, sftp::Args().Str(rel.empty() ? loc_.path : Path(rel))));
      }
      std::vector<std::pair<std::string, std::string>> open;  // (directory, handle)
      for (auto& [rel, ticket] : opening) {
        PAMPA_ASSIGN_OR_RETURN(auto r, p->Wait(ticket));
        if (r.type == sftp::kHandle) open.emplace_back(rel, std::string(sftp::Fields(r.body).Str()));
      }
      std::vector<std::string> next;
      auto take = [&](const std::string& rel, const sftp::Reply& r) {
        sftp::Fields f(r.body);
        for (uint32_t n = f.U32(); n > 0 && f.ok(); --n) {
          std::string entry(f.Str());
          f.Str();  // the long name
          uint32_t mode = f.Attrs();
          if (!f.ok() || entry == "." || entry == "..") continue;
          std::string child = rel.empty() ? entry : rel + "/" + entry;
          if (S_ISDIR(mode)) {
            next.push_back(child);
          } else if (child.find(".tmp-") == std::string::npos && child.rfind(prefix, 0) == 0) {
            out.push_back(child);
          }
        }
      };
      while (!open.empty()) {
        // Two reads in flight a directory: for most directories the second
        // answers "end" in the round trip that brings the first's entries.
        std::vector<std::array<sftp::Pipe::Ticket, 2>> reading;
        for (auto& dir : open) {
          auto args = sftp::Args().Str(dir.second);
          reading.push_back({p->Send(sftp::kReaddir, args), p->Send(sftp::kReaddir, args)});
        }
        std::vector<std::pair<std::string, std::string>> still;
        for (size_t i = 0; i < open.size(); ++i) {
          bool more = true;
          for (auto& ticket : reading[i]) {
            PAMPA_ASSIGN_OR_RETURN(auto r, p->Wait(ticket));
            if (!more) continue;  // an answer after the end
            if (r.type != sftp::kName) {
              more = false;
              continue;
            }
            take(open[i].first, r);
          }
          if (more) {
            still.push_back(open[i]);
          } else {
            p->Send(sftp::kClose, sftp::Args().Str(open[i].second));
          }
        }
        open.swap(still);
      }
      level.swap(next);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  Status Delete(const std::string& name) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    PAMPA_ASSIGN_OR_RETURN(auto p, Pipe());
    PAMPA_ASSIGN_OR_RETURN(auto r, p->Call(sftp::kRemove, sftp::Args().Str(Path(name))));
    if (r.IsStatus(sftp::kOk) || r.IsStatus(sftp::kNoSuchFile)) return Status::Ok();
    return Status::Unavailable("sftp: cannot delete " + name + ": " + r.Describe());
  }

  std::string Describe() const override {
    return "sftp://" + loc_.user + "@" + loc_.host + ":" + std::to_string(loc_.port) + loc_.path;
  }

 private:
  std::string Path(const std::string& name) const { return loc_.path + "/" + name; }
  static sftp::Args Mkdir(const std::string& path) {
    return sftp::Args().Str(path).U32(sftp::kAttrPermissions).U32(0700);
  }

  // Asks for every level of name's directory at once, unless it was made
  // before (*dir: that directory); returns the requests, answered by Made.
  std::vector<sftp::Pipe::Ticket> MakeParents(sftp::Pipe& p, const std::string& name, std::string* dir) {
    auto slash = name.rfind('/');
    if (slash == std::string::npos) return {};
    *dir = name.substr(0, slash);
    {
      MutexLock lock(&dirs_mu_);
      if (dirs_.count(*dir)) return {};
    }
    std::vector<sftp::Pipe::Ticket> made;
    for (size_t i = 0; i <= dir->size(); ++i) {
      if (i == dir->size() || (*dir)[i] == '/') made.push_back(p.Send(sftp::kMkdir, Mkdir(Path(dir->substr(0, i)))));
    }
    return made;
  }
  // Creates the file at path (which must not exist; name's directories are
  // made as needed) holding data, durable: the open, then the writes, the
  // fsync and the close in one go. A file left half written is removed.
  Status WriteNewFile(sftp::Pipe& p, const std::string& name, const std::string& path, std::string_view data) {
    auto create = sftp::Args()
                      .Str(path)
                      .U32(sftp::kOpenWrite | sftp::kOpenCreate | sftp::kOpenExclusive)
                      .U32(sftp::kAttrPermissions)
                      .U32(0600);
    // A new directory and the file in it in one round trip: sftp-server
    // carries requests out in order. A server that does not is asked again.
    std::string dir;
    std::vector<sftp::Pipe::Ticket> made = MakeParents(p, name, &dir);
    auto opening = p.Send(sftp::kOpen, create);
    Status parents = made.empty() ? Status::Ok() : Made(p, dir, made);
    PAMPA_ASSIGN_OR_RETURN(auto opened, p.Wait(opening));
    PAMPA_RETURN_IF_ERROR(parents);
    if (!made.empty() && opened.IsStatus(sftp::kNoSuchFile)) {
      PAMPA_ASSIGN_OR_RETURN(opened, p.Call(sftp::kOpen, create));
    }
    if (opened.type != sftp::kHandle) {
      return Status::Unavailable("sftp: cannot create " + path + ": " + opened.Describe());
    }
    std::string handle(sftp::Fields(opened.body).Str());
    // The writes, the fsync and the close in one go; what comes next (Put's
    // rename) only once all of them succeeded (the server would carry out a
    // rename sent with them even after a failed write, and put a part of the
    // object in place).
    std::vector<sftp::Pipe::Ticket> steps;
    for (size_t off = 0; off < data.size(); off += p.io_size()) {
      std::string_view piece = data.substr(off, p.io_size());  // a string: its length, then its bytes
      steps.push_back(p.Send(sftp::kWrite, sftp::Args().Str(handle).U64(off).U32(piece.size()), piece));
    }
    if (p.has_fsync()) steps.push_back(p.Send(sftp::kExtended, sftp::Args().Str("fsync@openssh.com").Str(handle)));
    steps.push_back(p.Send(sftp::kClose, sftp::Args().Str(handle)));
    Status failed;
    for (const auto& step : steps) {
      auto r = p.Wait(step);
      if (!failed.ok()) continue;
      if (!r.ok()) {
        failed = r.status();
      } else if (!r->IsStatus(sftp::kOk)) {
        failed = Status::Unavailable("sftp: write to " + path + " failed: " + r->Describe());
      }
    }
    if (!failed.ok()) p.Send(sftp::kRemove, sftp::Args().Str(path));
    return failed;
  }

  // Those that exist answer with an error, ignored.
  Status Made(sftp::Pipe& p, const std::string& dir, const std::vector<sftp::Pipe::Ticket>& made) {
    Status st;
    for (const auto& t : made) {
      if (auto r = p.Wait(t); !r.ok() && st.ok()) st = r.status();
    }
    if (!st.ok()) return st;
    MutexLock lock(&dirs_mu_);
    dirs_.insert(dir);
    return Status::Ok();
  }

  // The least busy connection, or a new one while every open one is busy and
  // there is room for more. A failed connection is replaced on next use.
  Result<std::shared_ptr<sftp::Pipe>> Pipe() {
    size_t slot = 0;
    {
      MutexLock lock(&mu_);
      while (true) {
        std::shared_ptr<sftp::Pipe> best;
        size_t best_load = 0;
        bool room = false;
        for (size_t i = 0; i < pipes_.size(); ++i) {
          const auto& p = pipes_[i];
          if (p && p->Alive()) {
            size_t load = p->InFlight();
            if (!best || load < best_load) {
              best = p;
              best_load = load;
            }
          } else if (!room && !connecting_.count(i)) {
            slot = i;
            room = true;
          }
        }
        if (best && (best_load == 0 || !room)) return best;
        if (room) break;
        lock.Wait(connected_, [&]() REQUIRES(mu_) { return connecting_.empty(); });
      }
      connecting_.insert(slot);
    }
    auto made = sftp::Pipe::Connect(loc_);
    std::shared_ptr<sftp::Pipe> failed;  // the one replaced, closed with no lock held
    MutexLock lock(&mu_);
    connecting_.erase(slot);
    connected_.notify_all();
    if (!made.ok()) return made.status();
    failed = std::exchange(pipes_[slot], *made);
    lock.Unlock();
    return *made;
  }

  static constexpr int kPerConnection = 12;
  SftpLocation loc_;
  const int connections_;
  std::atomic<uint64_t> size_hint_{(1 << 20) + (4 << 10)};  // a 1 MiB chunk and its envelope
  Mutex mu_;
  std::condition_variable connected_;
  std::vector<std::shared_ptr<sftp::Pipe>> pipes_ GUARDED_BY(mu_);
  std::set<size_t> connecting_ GUARDED_BY(mu_);
  Mutex dirs_mu_;
  std::set<std::string> dirs_ GUARDED_BY(dirs_mu_);
};

}  // namespace

SshSession::~SshSession() {
  if (sftp) sftp_free(sftp);
  if (ssh) {
    ssh_disconnect(ssh);
    ssh_free(ssh);
  }
}

Status ConnectSsh(const SftpLocation& loc, SshSession* c, bool start_sftp) {
  c->ssh = ssh_new();
  if (!c->ssh) return Status::Internal("libssh: cannot create a session");
  int port = loc.port;
  long timeout = 15;
  ssh_options_set(c->ssh, SSH_OPTIONS_HOST, loc.host.c_str());
  ssh_options_set(c->ssh, SSH_OPTIONS_USER, loc.user.c_str());
  ssh_options_set(c->ssh, SSH_OPTIONS_PORT, &port);
  ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &timeout);
  // Requests are small and many: Nagle's algorithm would hold each one back
  // until the previous packet's (delayed) acknowledgement.
  int nodelay = 1;
  ssh_options_set(c->ssh, SSH_OPTIONS_NODELAY, &nodelay);
  // AES-GCM first: with AES-NI on both ends it costs a fraction of chacha20's CPU.
  const char* ciphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr";
  ssh_options_set(c->ssh, SSH_OPTIONS_CIPHERS_C_S, ciphers);
  ssh_options_set(c->ssh, SSH_OPTIONS_CIPHERS_S_C, ciphers);
  if (!loc.known_hosts.empty()) ssh_options_set(c->ssh, SSH_OPTIONS_KNOWNHOSTS, loc.known_hosts.c_str());
  std::string where = loc.user + "@" + loc.host + ":" + std::to_string(loc.port);
  if (ssh_connect(c->ssh) != SSH_OK) return Status::Unavailable("cannot connect to " + where + ": " + c->Error());
  switch (ssh_session_is_known_server(c->ssh)) {
    case SSH_KNOWN_HOSTS_OK:
      break;
    case SSH_KNOWN_HOSTS_CHANGED:
      return Status::Invalid("the host key of " + loc.host +
                             " CHANGED since it was recorded in known_hosts: refusing "
                             "(possible man-in-the-middle; check and update known_hosts)");
    default:
      return Status::Invalid("the host key of " + loc.host + " is not in known_hosts (" +
                             (loc.known_hosts.empty() ? std::string("~/.ssh/known_hosts") : loc.known_hosts) +
                             "); add it, e.g. ssh-keyscan -p " + std::to_string(loc.port) + " " + loc.host);
  }
  int auth = SSH_AUTH_DENIED;
  if (!loc.identity.empty()) {
    ssh_key key = nullptr;
    if (ssh_pki_import_privkey_file(loc.identity.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK) {
      return Status::Invalid("cannot read the SSH key " + loc.identity);
    }
    auth = ssh_userauth_publickey(c->ssh, nullptr, key);
    ssh_key_free(key);
  } else {
    auth = ssh_userauth_publickey_auto(c->ssh, nullptr, nullptr);
  }
  if (auth != SSH_AUTH_SUCCESS) {
    return Status::Invalid("SSH key authentication to " + where +
                           " failed (is the public key in the server's "
                           "authorized_keys?)");
  }
  const char* banner = ssh_get_serverbanner(c->ssh);
  if (banner && std::string(banner).find("OpenSSH") != std::string::npos) c->io_size = 255 << 10;
  if (!start_sftp) return Status::Ok();
  c->sftp = sftp_new(c->ssh);
  if (!c->sftp || sftp_init(c->sftp) != SSH_OK) return Status::Unavailable("SFTP is not available on " + where);
  return Status::Ok();
}

Result<SftpLocation> ParseSftpUrl(const std::string& url) {
  auto bad = [&] {
    return Status::Invalid("invalid SFTP URL '" + url + "': use sftp://user@host[:port]/absolute/path");
  };
  if (url.rfind("sftp://", 0) != 0) return bad();
  std::string rest = url.substr(7);
  auto at = rest.find('@');
  auto slash = rest.find('/');
  if (at == std::string::npos || slash == std::string::npos || at > slash || at == 0) return bad();
  SftpLocation loc;
  loc.user = rest.substr(0, at);
  std::string hostport = rest.substr(at + 1, slash - at - 1);
  loc.path = rest.substr(slash);
  while (loc.path.size() > 1 && loc.path.back() == '/') loc.path.pop_back();
  auto colon = hostport.rfind(':');
  if (colon != std::string::npos) {
    try {
      loc.port = std::stoi(hostport.substr(colon + 1));
    } catch (...) {
      return bad();
    }
    hostport = hostport.substr(0, colon);
  }
  loc.host = hostport;
  if (loc.host.empty() || loc.port <= 0 || loc.port > 65535 || loc.path.size() < 2) return bad();
  for (auto& s : {loc.user, loc.host}) {
    if (s.find_first_of(" \t\n/;") != std::string::npos) return bad();
  }
  return loc;
}

Result<std::unique_ptr<ObjectStore>> OpenSftpObjectStore(const SftpLocation& loc, CreateDir create, int connections) {
  auto store = std::make_unique<SftpObjectStore>(loc, std::max(1, connections));
  PAMPA_RETURN_IF_ERROR(store->Init(create));
  return std::unique_ptr<ObjectStore>(std::move(store));
}

}  // namespace pampa
