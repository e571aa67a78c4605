// ObjectStore over SFTP (libssh): sftp://user@host[:port]/absolute/path.
// Key authentication only; the server's host key must be in known_hosts.
// libssh sessions are not thread-safe, so a small pool of connections serves
// concurrent callers (the backup pipeline uploads from several threads).
#include "backup/sftp_store.h"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"

namespace pampa {
namespace {

struct Conn : SshSession {
  // When the running operation last moved data (ms, MonotonicMs); 0 when idle.
  std::atomic<int64_t> last_progress{0};
  std::atomic<bool> cut{false};  // the watchdog shut the socket down
  void Progress() { last_progress = MonotonicMs(); }
};

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 512 || name[0] == '/' || name.find("..") != std::string::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' || c == '_' || c == '.';
  });
}

class SftpObjectStore final : public ObjectStore {
 public:
  SftpObjectStore(SftpLocation loc, int pool) : loc_(std::move(loc)), max_(pool) {
    watchdog_ = std::thread([this] { Watch(); });
  }
  ~SftpObjectStore() override {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    watch_cv_.notify_all();
    watchdog_.join();
  }

  Status Init(CreateDir create) {
    PAMPA_ASSIGN_OR_RETURN(auto conn, Connect());
    std::string where = loc_.path + " on " + loc_.host;
    sftp_attributes st = sftp_stat(conn->sftp, loc_.path.c_str());
    if (!st && create == CreateDir::kNo) return MissingRepositoryDir(where);
    if (!st) {
      // Only the last component: a missing parent is an unmounted disk on the target.
      if (sftp_mkdir(conn->sftp, loc_.path.c_str(), 0700) != 0) {
        return Status::Unavailable("cannot create the repository directory " + where + ": " + Error(*conn) +
                                   " (does its parent exist? is the backup disk mounted there?)");
      }
      st = sftp_stat(conn->sftp, loc_.path.c_str());
      if (!st) return Status::Unavailable("cannot create " + where + ": " + Error(*conn));
    }
    sftp_attributes_free(st);
    Release(std::move(conn));
    return Status::Ok();
  }

  // One uploader per connection: each Put waits for its round trips alone.
  int WriteBehindStreams() const override { return max_; }

  Status Put(const std::string& name, std::string_view data) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    return With([&](Conn& c) -> Status {
      std::string path = loc_.path + "/" + name;
      MakeParents(c, name);
      static std::atomic<uint64_t> seq{0};
      std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
      sftp_file f = sftp_open(c.sftp, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
      if (!f) return Status::Unavailable("sftp: cannot create " + tmp + ": " + Error(c));
      size_t off = 0;
      while (off < data.size()) {
        ssize_t n = sftp_write(f, data.data() + off, std::min<size_t>(data.size() - off, c.io_size));
        if (n <= 0) {
          Status st = Status::Unavailable("sftp: write to " + tmp + " failed: " + Error(c));
          sftp_close(f);
          sftp_unlink(c.sftp, tmp.c_str());
          return st;
        }
        off += n;
        c.Progress();
      }
      if (sftp_extension_supported(c.sftp, "fsync@openssh.com", "1")) sftp_fsync(f);
      sftp_close(f);
      if (sftp_rename(c.sftp, tmp.c_str(), path.c_str()) == 0) return Status::Ok();
      // SFTP v3 rename does not replace an existing file. Repository objects are
      // written once (chunks are content-addressed, manifests and locks have
      // unique names), so an existing target already holds this object.
      sftp_attributes existing = sftp_stat(c.sftp, path.c_str());
      if (existing) {
        bool same_size = existing->size == data.size();
        sftp_attributes_free(existing);
        sftp_unlink(c.sftp, tmp.c_str());
        if (same_size) return Status::Ok();
        return Status::Conflict("sftp: " + path + " exists with other content; SFTP cannot replace it atomically");
      }
      Status st = Status::Unavailable("sftp: cannot rename into " + path + ": " + Error(c));
      sftp_unlink(c.sftp, tmp.c_str());
      return st;
    });
  }

  Result<std::string> Get(const std::string& name) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    std::string out;
    Status st = With([&](Conn& c) -> Status {
      std::string path = loc_.path + "/" + name;
      sftp_file f = sftp_open(c.sftp, path.c_str(), O_RDONLY, 0);
      if (!f) {
        if (sftp_get_error(c.sftp) == SSH_FX_NO_SUCH_FILE)
          return Status::NotFound("no object " + name + " in " + Describe());
        return Status::Unavailable("sftp: cannot open " + path + ": " + Error(c));
      }
      // Objects never change once written: ask for every piece at once (one
      // round trip, not one per piece), then collect the answers in order.
      sftp_attributes attrs = sftp_fstat(f);
      uint64_t size = attrs ? attrs->size : 0;
      if (attrs) sftp_attributes_free(attrs);
      out.resize(size);
      std::vector<int> ids;
      for (uint64_t off = 0; off < size; off += c.io_size) {
        int id = sftp_async_read_begin(f, static_cast<uint32_t>(std::min<uint64_t>(c.io_size, size - off)));
        if (id < 0) break;
        ids.push_back(id);
      }
      uint64_t got = 0;  // bytes in place from the start, with no short answer before
      for (size_t k = 0; k < ids.size(); ++k) {
        uint64_t off = k * c.io_size, want = std::min<uint64_t>(c.io_size, size - off);
        int n = sftp_async_read(f, out.data() + off, static_cast<uint32_t>(want), static_cast<uint32_t>(ids[k]));
        if (n < 0) {
          sftp_close(f);
          return Status::Unavailable("sftp: read of " + path + " failed: " + Error(c));
        }
        if (got == off && static_cast<uint64_t>(n) == want) got += n;
        c.Progress();
      }
      // Short answers (or requests not sent): the rest piece by piece, to the real end.
      if (got != size) {
        out.resize(got);
        sftp_seek64(f, got);
        while (true) {
          size_t at = out.size();
          out.resize(at + c.io_size);
          ssize_t n = sftp_read(f, out.data() + at, c.io_size);
          if (n < 0) {
            sftp_close(f);
            return Status::Unavailable("sftp: read of " + path + " failed: " + Error(c));
          }
          out.resize(at + n);
          if (n == 0) break;
          c.Progress();
        }
      }
      sftp_close(f);
      return Status::Ok();
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<bool> Exists(const std::string& name) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    bool exists = false;
    Status st = With([&](Conn& c) -> Status {
      sftp_attributes a = sftp_stat(c.sftp, (loc_.path + "/" + name).c_str());
      exists = a != nullptr;
      if (a) sftp_attributes_free(a);
      return Status::Ok();
    });
    if (!st.ok()) return st;
    return exists;
  }

  Result<std::vector<std::string>> List(const std::string& prefix) override {
    std::vector<std::string> out;
    std::string base = prefix.substr(0, prefix.rfind('/') == std::string::npos ? 0 : prefix.rfind('/') + 1);
    Status st = With([&](Conn& c) -> Status {
      std::function<void(const std::string&)> walk = [&](const std::string& rel) {
        std::string dir = loc_.path + (rel.empty() ? "" : "/" + rel);
        sftp_dir d = sftp_opendir(c.sftp, dir.c_str());
        if (!d) return;
        while (sftp_attributes a = sftp_readdir(c.sftp, d)) {
          std::string n = a->name;
          bool is_dir = a->type == SSH_FILEXFER_TYPE_DIRECTORY;
          sftp_attributes_free(a);
          if (n == "." || n == "..") continue;
          std::string child = rel.empty() ? n : rel + "/" + n;
          if (is_dir)
            walk(child);
          else if (child.find(".tmp-") == std::string::npos && child.rfind(prefix, 0) == 0)
            out.push_back(child);
        }
        sftp_closedir(d);
      };
      walk(base.empty() ? "" : base.substr(0, base.size() - 1));
      return Status::Ok();
    });
    if (!st.ok()) return st;
    std::sort(out.begin(), out.end());
    return out;
  }

  Status Delete(const std::string& name) override {
    if (!ValidName(name)) return Status::Invalid("invalid repository object name '" + name + "'");
    return With([&](Conn& c) -> Status {
      if (sftp_unlink(c.sftp, (loc_.path + "/" + name).c_str()) != 0 && sftp_get_error(c.sftp) != SSH_FX_NO_SUCH_FILE) {
        return Status::Unavailable("sftp: cannot delete " + name + ": " + Error(c));
      }
      return Status::Ok();
    });
  }

  std::string Describe() const override {
    return "sftp://" + loc_.user + "@" + loc_.host + ":" + std::to_string(loc_.port) + loc_.path;
  }

  Result<std::unique_ptr<Conn>> Connect() {
    auto c = std::make_unique<Conn>();
    PAMPA_RETURN_IF_ERROR(ConnectSsh(loc_, c.get()));
    return c;
  }

 private:
  static std::string Error(Conn& c) { return ssh_get_error(c.ssh); }

  void MakeParents(Conn& c, const std::string& name) {
    auto slash = name.rfind('/');
    if (slash == std::string::npos) return;
    std::string dir = name.substr(0, slash);
    {
      MutexLock lock(&dirs_mu_);
      if (std::find(dirs_.begin(), dirs_.end(), dir) != dirs_.end()) return;
    }
    std::string path;
    for (size_t i = 0; i <= dir.size(); ++i) {
      if (i == dir.size() || dir[i] == '/') sftp_mkdir(c.sftp, (loc_.path + "/" + dir.substr(0, i)).c_str(), 0700);
    }
    MutexLock lock(&dirs_mu_);
    dirs_.push_back(dir);
  }

  // Runs fn on a pooled connection; a failed connection is dropped, not reused.
  Status With(const std::function<Status(Conn&)>& fn) {
    std::unique_ptr<Conn> c;
    {
      MutexLock lock(&mu_);
      lock.Wait(cv_, [&]() REQUIRES(mu_) { return !free_.empty() || open_ < max_; });
      if (!free_.empty()) {
        c = std::move(free_.back());
        free_.pop_back();
      } else {
        ++open_;
      }
    }
    if (!c) {
      auto made = Connect();
      if (!made.ok()) {
        MutexLock lock(&mu_);
        --open_;
        cv_.notify_one();
        return made.status();
      }
      c = std::move(*made);
    }
    c->Progress();
    {
      MutexLock lock(&mu_);
      busy_.push_back(c.get());
    }
    Status st = fn(*c);
    {
      MutexLock lock(&mu_);
      busy_.erase(std::find(busy_.begin(), busy_.end(), c.get()));
      c->last_progress = 0;
    }
    if (c->cut) {
      st = Status::Unavailable(Describe() + " stopped answering (no data moved for " +
                               std::to_string(loc_.stall_seconds) + " s); check the server and the network");
    }
    if (st.code() == ErrorCode::kUnavailable) {
      MutexLock lock(&mu_);
      --open_;
      cv_.notify_one();
      return st;
    }
    Release(std::move(c));
    return st;
  }

  // Cuts the socket of an operation that moved no data for stall_seconds:
  // the blocked libssh call then fails, and With() drops the connection.
  void Watch() {
    MutexLock lock(&mu_);
    while (!stopping_) {
      lock.WaitFor(watch_cv_, std::chrono::milliseconds(500));
      int64_t now = MonotonicMs();
      for (Conn* c : busy_) {
        int64_t last = c->last_progress;
        if (last == 0 || c->cut || now - last < loc_.stall_seconds * 1000ll) continue;
        c->cut = true;
        shutdown(ssh_get_fd(c->ssh), SHUT_RDWR);
      }
    }
  }

  void Release(std::unique_ptr<Conn> c) {
    MutexLock lock(&mu_);
    free_.push_back(std::move(c));
    cv_.notify_one();
  }

  SftpLocation loc_;
  int max_;
  Mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> free_ GUARDED_BY(mu_);
  int open_ GUARDED_BY(mu_) = 1;             // connections in existence (Init's counts)
  std::vector<Conn*> busy_ GUARDED_BY(mu_);  // connections running an operation
  bool stopping_ GUARDED_BY(mu_) = false;
  std::condition_variable watch_cv_;
  std::thread watchdog_;
  Mutex dirs_mu_;
  std::vector<std::string> dirs_ GUARDED_BY(dirs_mu_);
};

}  // namespace

SshSession::~SshSession() {
  if (sftp) sftp_free(sftp);
  if (ssh) {
    ssh_disconnect(ssh);
    ssh_free(ssh);
  }
}

Status ConnectSsh(const SftpLocation& loc, SshSession* c) {
  c->ssh = ssh_new();
  if (!c->ssh) return Status::Internal("libssh: cannot create a session");
  int port = loc.port;
  long timeout = 15;
  ssh_options_set(c->ssh, SSH_OPTIONS_HOST, loc.host.c_str());
  ssh_options_set(c->ssh, SSH_OPTIONS_USER, loc.user.c_str());
  ssh_options_set(c->ssh, SSH_OPTIONS_PORT, &port);
  ssh_options_set(c->ssh, SSH_OPTIONS_TIMEOUT, &timeout);
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
  c->sftp = sftp_new(c->ssh);
  if (!c->sftp || sftp_init(c->sftp) != SSH_OK) return Status::Unavailable("SFTP is not available on " + where);
  const char* banner = ssh_get_serverbanner(c->ssh);
  if (banner && std::string(banner).find("OpenSSH") != std::string::npos) c->io_size = 255 << 10;
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
