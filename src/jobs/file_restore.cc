#include "jobs/file_restore.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "backup/nbd_export.h"
#include "backup/tar_end.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"
#include "qemu/guest_agent.h"

namespace pampa {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kBootTimeout = 180s;  // TCG on a busy host: the appliance boots in ~10 s alone
constexpr auto kExecTimeout = 120s;  // a find in a large directory
constexpr auto kAgentWait = 60s;     // for a conversation with the agent to end
// GNU tar's record: -b 128 writes 64 KiB at a time to the port; the archive
// ends at a record boundary (TarEndFinder reads up to it).
constexpr int kTarBlocking = 128;
constexpr size_t kTarRecord = kTarBlocking * 512;
// How long a stream may stay silent before the appliance's tar is looked at.
constexpr auto kSilence = 2s;
const char kVolumesRoot[] = "/run/vols";
const char kFilesPort[] = "org.pampa.files.0";

// The components of a path in a backup; ".." is refused (the appliance would follow it out of the volume).
Result<std::vector<std::string>> Components(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream in(path);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return Status::Invalid("a path inside a backup cannot contain '..': " + path);
    if (part.find('\0') != std::string::npos) return Status::Invalid("a path cannot contain NUL bytes");
    parts.push_back(part);
  }
  return parts;
}

std::string Join(const std::vector<std::string>& parts, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += "/" + parts[i];
  return out;
}

std::string TypeName(char y) {
  switch (y) {
    case 'f':
      return "file";
    case 'd':
      return "dir";
    case 'l':
      return "symlink";
    default:
      return "other";
  }
}

}  // namespace

struct FileRestores::Session {
  std::string key, dir;
  std::string backup;
  size_t disk = 0;
  // Set once, by Boot, before ready; read-only afterwards.
  std::unique_ptr<BackupNbdServer> nbd;
  pid_t qemu = 0;
  std::vector<Volume> volumes;
  AgentChannel agent;  // one agent conversation at a time
  AgentChannel files;  // one tar stream at a time on the files port
  // Guarded by FileRestores::mu_.
  bool ready = false;
  Status boot_status;
  int users = 0;
  std::chrono::steady_clock::time_point last_used;

  std::string qga() const { return dir + "/qga.sock"; }
  std::string files_socket() const { return dir + "/files.sock"; }
  std::string console() const { return dir + "/console.log"; }
};

FileRestores::FileRestores(Options options, AccelProbe& accel) : options_(std::move(options)), accel_(accel) {
  CleanLeftovers();
  reaper_ = std::thread([this] { ReapLoop(); });
}

FileRestores::~FileRestores() {
  std::map<std::string, std::shared_ptr<Session>> sessions;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    sessions.swap(sessions_);
  }
  changed_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  for (auto& [key, s] : sessions) Stop(*s);
}

void FileRestores::CleanLeftovers() {
  std::error_code ec;
  std::string root = options_.run_dir + "/file-restore";
  for (auto& e : std::filesystem::directory_iterator(root, ec)) {
    auto pid = ReadFile(e.path().string() + "/qemu.pid");
    if (pid.ok()) StopProcess(std::atoi(pid->c_str()), e.path().string(), 5s);
    std::filesystem::remove_all(e.path(), ec);
  }
}

size_t FileRestores::Running() {
  MutexLock lock(&mu_);
  return sessions_.size();
}

void FileRestores::ReapLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    lock.WaitFor(changed_, 5s);
    std::vector<std::shared_ptr<Session>> idle;
    auto now = std::chrono::steady_clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      Session& s = *it->second;
      if (s.ready && s.users == 0 && now - s.last_used > options_.idle_timeout) {
        idle.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    if (idle.empty()) continue;
    lock.Unlock();
    for (auto& s : idle) {
      log::Info("file restore: stopping the idle appliance of backup {} (disk {})", s->backup, s->disk);
      Stop(*s);
    }
    lock.Lock();
  }
}

Result<std::shared_ptr<FileRestores::Session>> FileRestores::Acquire(const Source& src) {
  std::string key = src.repo_name + "\n" + src.backup + "\n" + std::to_string(src.disk);
  std::shared_ptr<Session> s;
  bool boot = false;
  {
    MutexLock lock(&mu_);
    if (stopping_) return Status::Unavailable("pampad is stopping");
    auto it = sessions_.find(key);
    if (it == sessions_.end()) {
      s = std::make_shared<Session>();
      s->key = key;
      s->dir = options_.run_dir + "/file-restore/" + std::to_string(getpid()) + "-" + std::to_string(++next_id_);
      s->backup = src.backup;
      s->disk = src.disk;
      sessions_[key] = s;
      boot = true;
    } else {
      s = it->second;
    }
    ++s->users;
  }
  if (boot) {
    Status st = Boot(*s, src);
    if (!st.ok()) Stop(*s);
    MutexLock lock(&mu_);
    s->boot_status = st;
    s->ready = true;
    s->last_used = std::chrono::steady_clock::now();
    if (!st.ok()) sessions_.erase(key);
  } else {
    MutexLock lock(&mu_);
    lock.Wait(changed_, [&]() REQUIRES(mu_) { return s->ready; });
  }
  changed_.notify_all();
  Status st;
  {
    MutexLock lock(&mu_);
    st = s->boot_status;
  }
  if (!st.ok()) {
    Release(s);
    return st;
  }
  // A handle: the session counts as in use while any copy of it lives.
  return std::shared_ptr<Session>(s.get(), [this, s](Session*) { Release(s); });
}

void FileRestores::Release(const std::shared_ptr<Session>& s) {
  MutexLock lock(&mu_);
  --s->users;
  s->last_used = std::chrono::steady_clock::now();
}

Status FileRestores::ApplianceReady() const {
  if (Exists(options_.kernel) && Exists(options_.initrd)) return Status::Ok();
  return Status::Unavailable("file restore needs the restore appliance (" + options_.initrd +
                             "), which is missing: build it with tools/mkguest (make guest) or pass --appliance DIR");
}

Status FileRestores::Boot(Session& s, const Source& src) {
  PAMPA_RETURN_IF_ERROR(ApplianceReady());
  PAMPA_ASSIGN_OR_RETURN(Manifest manifest, src.repository->ReadManifest(src.backup));
  if (src.disk >= manifest.disks.size()) {
    return Status::Invalid("backup " + src.backup + " has " + std::to_string(manifest.disks.size()) +
                           " disk(s): give --disk 0 to " + std::to_string(manifest.disks.size() - 1));
  }
  uint64_t need = (options_.memory_mib + 64) << 20;
  uint64_t avail = HostAvailableMemoryBytes();
  if (avail != 0 && avail < need) {
    return Status::Unavailable("the host has " + std::to_string(avail >> 20) +
                               " MiB available; the restore appliance " + "needs " + std::to_string(need >> 20) +
                               " MiB: free memory and try again");
  }
  PAMPA_RETURN_IF_ERROR(MakeDirs(s.dir, 0700));
  PAMPA_ASSIGN_OR_RETURN(s.nbd, BackupNbdServer::Start(src.repository, manifest, s.dir + "/nbd.sock"));
  std::string accel = accel_.Current().accel;
  std::string drive = "driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=" + s.dir +
                      "/nbd.sock,file.export=" + BackupNbdServer::ExportName(src.disk) +
                      ",if=virtio,snapshot=on,cache=unsafe";
  std::vector<std::string> argv = {"qemu-system-x86_64",
                                   "-name",
                                   "pampa-file-restore",
                                   "-nodefaults",
                                   "-no-user-config",
                                   "-machine",
                                   "q35,accel=" + accel,
                                   "-cpu",
                                   accel == "kvm" ? "host" : "qemu64",
                                   "-smp",
                                   "1",
                                   "-m",
                                   std::to_string(options_.memory_mib),
                                   "-display",
                                   "none",
                                   "-kernel",
                                   options_.kernel,
                                   "-initrd",
                                   options_.initrd,
                                   "-append",
                                   "console=ttyS0 quiet pampa.appliance",
                                   "-serial",
                                   "file:" + s.console(),
                                   "-drive",
                                   drive,
                                   "-chardev",
                                   "socket,id=qga,path=" + s.qga() + ",server=on,wait=off",
                                   "-chardev",
                                   "socket,id=files,path=" + s.files_socket() + ",server=on,wait=off",
                                   "-device",
                                   "virtio-serial-pci",
                                   "-device",
                                   "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
                                   "-device",
                                   std::string("virtserialport,chardev=files,name=") + kFilesPort,
                                   "-sandbox",
                                   "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"};
  PAMPA_ASSIGN_OR_RETURN(s.qemu, SpawnDetached(argv, s.dir + "/qemu.log"));
  PAMPA_RETURN_IF_ERROR(WriteFileAtomic(s.dir + "/qemu.pid", std::to_string(s.qemu), 0600));
  log::Info("file restore: booting the appliance for backup {} disk {} (pid {})", s.backup, s.disk, s.qemu);
  GuestAgent agent(s.qga());
  auto deadline = std::chrono::steady_clock::now() + kBootTimeout;
  while (!agent.Ping(1s).ok()) {
    if (!ProcessAlive(s.qemu, s.dir)) {
      std::string why = LastLogLine(s.dir + "/qemu.log", 400);
      return Status::Unavailable("the restore appliance stopped while booting: " +
                                 (why.empty() ? LastLogLine(s.console(), 400) : why));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("the restore appliance did not answer within " + std::to_string(kBootTimeout.count()) +
                                 " s; its console: " + LastLogLine(s.console(), 400));
    }
    std::this_thread::sleep_for(200ms);
  }
  PAMPA_ASSIGN_OR_RETURN(auto table, agent.Exec({"cat", "/run/vols.tsv"}, kExecTimeout));
  if (table.exit_code != 0) return Status::Internal("the restore appliance found no volumes: " + LastLine(table.err));
  std::stringstream in(table.out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream fields(line);
    std::string field;
    while (std::getline(fields, field, '\t')) f.push_back(field);
    if (f.size() != 4) continue;
    s.volumes.push_back({f[0], f[1], f[3], std::strtoull(f[2].c_str(), nullptr, 10)});
  }
  log::Info("file restore: backup {} disk {}: {} volume(s)", s.backup, s.disk, s.volumes.size());
  return Status::Ok();
}

void FileRestores::Stop(Session& s) {
  if (s.qemu > 0) StopProcess(s.qemu, s.dir, 5s);
  s.nbd.reset();
  std::error_code ec;
  std::filesystem::remove_all(s.dir, ec);
}

void FileRestores::Discard(const std::shared_ptr<Session>& s) {
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(s->key);
    if (it != sessions_.end() && it->second == s) sessions_.erase(it);
  }
  Stop(*s);
}

Result<std::string> FileRestores::GuestPath(const Session& s, const std::string& path) const {
  PAMPA_ASSIGN_OR_RETURN(auto parts, Components(path));
  for (const Volume& v : s.volumes) {
    PAMPA_ASSIGN_OR_RETURN(auto vparts, Components(v.name));
    // The path is inside the volume, or a directory above it (the VG of an LV).
    size_t n = std::min(parts.size(), vparts.size());
    if (n == 0 || !std::equal(vparts.begin(), vparts.begin() + n, parts.begin())) continue;
    if (v.state != "mounted" && parts.size() >= vparts.size()) {
      return Status::Unavailable("volume " + v.name + " (" + v.fs + ") cannot be read: " + v.state);
    }
    return kVolumesRoot + Join(parts);
  }
  std::string names;
  for (const Volume& v : s.volumes) names += (names.empty() ? "" : ", ") + v.name + " (" + v.fs + ")";
  return Status::NotFound("no volume '" + (parts.empty() ? std::string() : parts[0]) + "' on disk " +
                          std::to_string(s.disk) + " of backup " + s.backup + "; it has " +
                          (names.empty() ? "no file system the appliance can read" : names));
}

Result<std::vector<std::string>> FileRestores::Find(Session& s, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"find"};
  argv.insert(argv.end(), args.begin(), args.end());
  PAMPA_ASSIGN_OR_RETURN(auto lease, s.agent.Claim("a listing", kAgentWait));
  PAMPA_ASSIGN_OR_RETURN(auto r, GuestAgent(s.qga()).Exec(argv, kExecTimeout));
  if (r.exit_code != 0) {
    std::string why = LastLine(r.err);
    // find: '/run/vols/part1/x': No such file or directory
    auto at = why.find(kVolumesRoot);
    if (at != std::string::npos) why = why.substr(at + sizeof kVolumesRoot - 1);
    if (why.find("No such file or directory") != std::string::npos) {
      auto quote = why.find('\'');
      return Status::NotFound("no such file or directory in backup " + s.backup + ": " +
                              (quote == std::string::npos ? why : why.substr(0, quote)));
    }
    return Status::Unavailable("listing in the restore appliance failed: " + why);
  }
  if (r.out_truncated) return Status::Unavailable("the listing is too long for the guest agent (over 16 MiB)");
  std::vector<std::string> fields;
  size_t at = 0;
  while (at < r.out.size()) {
    auto end = r.out.find('\0', at);
    if (end == std::string::npos) break;
    fields.push_back(r.out.substr(at, end - at));
    at = end + 1;
  }
  return fields;
}

Result<json> FileRestores::List(const Source& src, const std::string& path) {
  PAMPA_ASSIGN_OR_RETURN(auto s, Acquire(src));
  PAMPA_ASSIGN_OR_RETURN(auto parts, Components(path));
  json entries = json::array();
  if (parts.empty()) {
    for (const Volume& v : s->volumes) {
      entries.push_back({{"name", v.name}, {"type", "volume"}, {"fs", v.fs}, {"size", v.size}, {"state", v.state}});
    }
  } else {
    PAMPA_ASSIGN_OR_RETURN(std::string guest, GuestPath(*s, path));
    // One record per entry, NUL-separated (names may hold any byte but NUL and '/');
    // depth 0 is the path itself: a file lists as itself.
    PAMPA_ASSIGN_OR_RETURN(auto f,
                           Find(*s, {guest, "-maxdepth", "1", "-printf", "%y\\0%m\\0%s\\0%T@\\0%U\\0%G\\0%P\\0%l\\0"}));
    constexpr size_t kFields = 8;
    bool is_dir = f.size() >= kFields && f[0] == "d";
    for (size_t i = 0; i + kFields <= f.size(); i += kFields) {
      bool self = f[i + 6].empty();
      if (self && is_dir) continue;
      json e = {{"name", self ? parts.back() : f[i + 6]},
                {"type", TypeName(f[i].empty() ? '?' : f[i][0])},
                {"size", std::strtoull(f[i + 2].c_str(), nullptr, 10)},
                {"mode", f[i + 1]},
                {"mtime", static_cast<int64_t>(std::strtod(f[i + 3].c_str(), nullptr))},
                {"uid", std::strtoll(f[i + 4].c_str(), nullptr, 10)},
                {"gid", std::strtoll(f[i + 5].c_str(), nullptr, 10)}};
      if (f[i] == "l") e["target"] = f[i + 7];
      entries.push_back(std::move(e));
    }
  }
  return json{{"backup", src.backup},
              {"disk", src.disk},
              {"path", Join(parts).empty() ? "/" : Join(parts)},
              {"entries", entries}};
}

Result<FileRestores::Extraction> FileRestores::Extract(const Source& src, const std::vector<std::string>& paths) {
  if (paths.empty()) return Status::Invalid("name at least one path to extract");
  PAMPA_ASSIGN_OR_RETURN(auto s, Acquire(src));
  std::vector<std::string> tar_args, guest_paths;
  std::map<std::string, std::string> names;  // last component -> the path it comes from
  for (const std::string& p : paths) {
    PAMPA_ASSIGN_OR_RETURN(auto parts, Components(p));
    if (parts.empty()) return Status::Invalid("name a volume or a path inside one, not the whole disk");
    PAMPA_ASSIGN_OR_RETURN(std::string guest, GuestPath(*s, p));
    auto [it, fresh] = names.emplace(parts.back(), p);
    if (!fresh) {
      return Status::Invalid("'" + it->second + "' and '" + p + "' would both extract as '" + parts.back() +
                             "': extract them one at a time");
    }
    guest_paths.push_back(guest);
    // From its parent directory; "./NAME": a name that starts with '-' stays a name.
    std::vector<std::string> parent(parts.begin(), parts.end() - 1);
    tar_args.insert(tar_args.end(), {"-C", kVolumesRoot + Join(parent), "./" + parts.back()});
  }
  std::vector<std::string> check = guest_paths;
  // Every path exists, and how much they hold (for the client's progress).
  check.insert(check.end(), {"-type", "f", "-printf", "%s\\0"});
  PAMPA_ASSIGN_OR_RETURN(auto sizes, Find(*s, check));
  uint64_t bytes = 0;
  for (const std::string& size : sizes) bytes += std::strtoull(size.c_str(), nullptr, 10);
  // A stream holds one of the API's worker threads while it runs: only a few at once.
  {
    MutexLock lock(&mu_);
    if (streams_ >= kMaxStreams) {
      return Status::Busy(std::to_string(kMaxStreams) + " extractions are running; try again when one has ended");
    }
    ++streams_;
  }
  std::shared_ptr<void> slot(nullptr, [this](void*) {
    MutexLock lock(&mu_);
    --streams_;
  });
  // The handle keeps the appliance in use, and the slot counts the stream,
  // until the stream has run (or is dropped unrun).
  return Extraction{[this, s, slot, tar_args](const Sink& sink) { return StreamTar(s, tar_args, sink); }, bytes};
}

Status FileRestores::StreamTar(const std::shared_ptr<Session>& s, const std::vector<std::string>& tar_args,
                               const Sink& sink) {
  PAMPA_ASSIGN_OR_RETURN(auto stream_lease, s->files.Claim("another extraction", kAgentWait));
  PAMPA_ASSIGN_OR_RETURN(Fd port, ConnectUnix(s->files_socket(), 0ms));
  std::vector<std::string> argv = {"tar",
                                   "--format=gnu",
                                   "--numeric-owner",
                                   "-b",
                                   std::to_string(kTarBlocking),
                                   "-c",
                                   "-f",
                                   std::string("/dev/virtio-ports/") + kFilesPort};
  argv.insert(argv.end(), tar_args.begin(), tar_args.end());
  int64_t pid = -1;
  {
    PAMPA_ASSIGN_OR_RETURN(auto lease, s->agent.Claim("an extraction", kAgentWait));
    PAMPA_ASSIGN_OR_RETURN(pid, GuestAgent(s->qga()).ExecStart(argv));
  }
  // The tar's exit, once it has one.
  auto exited = [&]() -> Result<std::optional<ExecResult>> {
    PAMPA_ASSIGN_OR_RETURN(auto lease, s->agent.Claim("an extraction", kAgentWait));
    return GuestAgent(s->qga()).ExecStatus(pid);
  };
  TarEndFinder end(kTarRecord);
  std::string buf(256 << 10, '\0');
  auto quiet_since = std::chrono::steady_clock::now();
  Status failed;
  while (!end.done()) {
    pollfd p{port.get(), POLLIN, 0};
    int ready = poll(&p, 1, 500);
    if (ready > 0) {
      ssize_t n = read(port.get(), buf.data(), buf.size());
      if (n <= 0) {
        failed = Status::Unavailable("the restore appliance closed its files port");
        break;
      }
      quiet_since = std::chrono::steady_clock::now();
      auto used = end.Feed(std::string_view(buf.data(), static_cast<size_t>(n)));
      if (!used.ok()) {
        failed = used.status().Context("reading the appliance's archive");
        break;
      }
      if (Status st = sink(std::string_view(buf.data(), *used)); !st.ok()) {
        failed = st;
        break;
      }
      continue;
    }
    if (std::chrono::steady_clock::now() - quiet_since < kSilence) continue;
    auto r = exited();
    if (!r.ok()) {
      failed = r.status();
      break;
    }
    // A tar that ended without its archive said why; one still running is working on a large file.
    if (r->has_value() && std::chrono::steady_clock::now() - quiet_since > 3 * kSilence) {
      failed = Status::Unavailable("tar in the restore appliance stopped: " + LastLine((*r)->err));
      break;
    }
  }
  if (!failed.ok()) {
    // Its tar may still be writing to the port: this appliance cannot serve another stream.
    stream_lease.Release();
    Discard(s);
    return failed;
  }
  for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
    PAMPA_ASSIGN_OR_RETURN(auto r, exited());
    if (!r.has_value()) {
      std::this_thread::sleep_for(100ms);
      continue;
    }
    // tar read what it could and padded the rest: an error, never a quiet hole in a file.
    if (r->exit_code != 0) {
      return Status::Unavailable("some files could not be read from the backup (tar: " + LastLine(r->err) +
                                 "); what was extracted may be incomplete");
    }
    return Status::Ok();
  }
  return Status::Unavailable("tar in the restore appliance did not finish after its archive ended");
}

}  // namespace pampa
