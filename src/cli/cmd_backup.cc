// pampa repo ... and pampa backup ...
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>

#include "base/fs.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace pampa::cli {
namespace {

using json = nlohmann::json;

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.')
      out.push_back(static_cast<char>(c));
    else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Where extracted files go: a new tar file, stdout, or GNU tar unpacking into
// a directory (it refuses members with '..' and keeps symlinks from leading
// its writes out of the directory), started at the first byte so that an
// error answer never reaches it.
class ExtractTarget {
 public:
  static Result<std::unique_ptr<ExtractTarget>> Open(const std::string& dir, const std::string& tar_file) {
    signal(SIGPIPE, SIG_IGN);  // a reader that stops is an EPIPE, said as such
    auto t = std::unique_ptr<ExtractTarget>(new ExtractTarget());
    if (tar_file == "-") {
      if (isatty(STDOUT_FILENO)) return Status::Invalid("--tar - writes an archive: redirect it to a file or a pipe");
      t->fd_ = Fd(dup(STDOUT_FILENO));
    } else if (!tar_file.empty()) {
      t->fd_ = Fd(open(tar_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (t->fd_.get() < 0) {
        return Status::Invalid("cannot create " + tar_file + ": " + std::strerror(errno) +
                               (errno == EEXIST ? " (give a new file name)" : ""));
      }
      t->file_ = tar_file;
    } else {
      struct stat st {};
      if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return Status::Invalid("--to " + dir + ": no such directory (create it first)");
      }
      t->dir_ = dir;
    }
    return t;
  }
  ExtractTarget(const ExtractTarget&) = delete;
  ExtractTarget& operator=(const ExtractTarget&) = delete;
  ~ExtractTarget() { (void)Finish(false); }

  Status Write(std::string_view piece) {
    if (fd_.get() < 0 && !dir_.empty()) PAMPA_RETURN_IF_ERROR(StartTar());
    while (!piece.empty()) {
      ssize_t n = write(fd_.get(), piece.data(), piece.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return Status::Unavailable(tar_ > 0 ? "tar stopped unpacking (see its message above)"
                                            : std::string("cannot write: ") + std::strerror(errno));
      }
      piece.remove_prefix(static_cast<size_t>(n));
    }
    return Status::Ok();
  }
  // Ends the output; complete says whether the whole archive came (a partial tar file is removed).
  Status Finish(bool complete) {
    fd_.Reset();
    if (!complete && !file_.empty()) unlink(file_.c_str());
    file_.clear();
    if (tar_ <= 0) return Status::Ok();
    int st = 0;
    while (waitpid(tar_, &st, 0) < 0 && errno == EINTR) {
    }
    tar_ = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return Status::Unavailable("tar could not unpack everything (above)");
    return Status::Ok();
  }

 private:
  ExtractTarget() = default;
  Status StartTar() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + std::strerror(errno));
    Fd read_end(fds[0]), write_end(fds[1]);
    std::vector<std::string> argv = {"tar", "-x", "-f", "-", "-C", dir_};
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) return Status::Internal(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      dup2(read_end.get(), STDIN_FILENO);  // the copy loses close-on-exec; the originals close at exec
      signal(SIGPIPE, SIG_DFL);
      execvp(cargv[0], cargv.data());
      dprintf(STDERR_FILENO, "pampa: cannot run tar: %s\n", std::strerror(errno));
      _exit(127);
    }
    tar_ = pid;
    fd_ = std::move(write_end);
    return Status::Ok();
  }

  Fd fd_;
  pid_t tar_ = 0;
  std::string file_, dir_;
};

void PrintBackupResult(const json& r) {
  auto& st = r["stages"];
  std::cout << "backup " << r.value("id", "") << " of " << r.value("vm", "") << ": "
            << (r.value("incremental", false) ? "incremental" : "full") << ", read "
            << HumanSize(r.value("bytes_read", 0ull)) << " of " << HumanSize(r.value("size", 0ull)) << ", uploaded "
            << HumanSize(r.value("bytes_uploaded", 0ull)) << " in "
            << static_cast<int>(r.value("seconds", 0.0) * 10) / 10.0 << " s\n";
  for (auto stage : {"read", "compress_encrypt", "upload"}) {
    std::cout << "  " << stage << ": " << static_cast<int>(st[stage].value("mib_per_s", 0.0)) << " MiB/s\n";
  }
  std::cout << "  " << r.value("consistency", "") << "\n";
  for (auto& n : r["notes"]) std::cout << "  note: " << n.get<std::string>() << "\n";
  std::cout << "slowest stage: " << r.value("slowest_stage", "") << "\n";
}

}  // namespace

void AddBackupCommands(CLI::App& app, Globals& g) {
  auto repo = app.add_subcommand("repo", "backup repositories");
  repo->require_subcommand(1);
  {
    struct Opts {
      std::string name, url, pass_file, key_file, ssh_key, known_hosts, chunk_size;
      bool no_enc = false;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = repo->add_subcommand("add", "register a repository (initialised when the location is empty)");
    cmd->add_option("name", o->name, "repository name")->required();
    cmd->add_option("--url", o->url, "a directory (local, NFS or SSHFS mount) or sftp://user@host[:port]/path")
        ->required();
    cmd->add_option("--ssh-key", o->ssh_key, "sftp: private key file (default: root's keys and ssh-agent)");
    cmd->add_option("--known-hosts", o->known_hosts, "sftp: known_hosts file (default: ~/.ssh/known_hosts)");
    cmd->add_option("--passphrase-file", o->pass_file,
                    "file holding the passphrase (mode 600); the key is stored in the repository, wrapped by it");
    cmd->add_option("--key-file", o->key_file,
                    "the key is kept in this file only (created with a new repository, mode 600): back it up");
    cmd->add_flag("--no-encryption", o->no_enc, "store chunks unencrypted (anyone with the files reads the data)");
    cmd->add_option("--chunk-size", o->chunk_size,
                    "a new repository's chunk size, a power of two from 64K to 64M (default 1M): backups read whole "
                    "chunks, so smaller ones read less for scattered writes, and make more objects");
    Bind(cmd, g, [&g, o] {
      std::string url = o->url.rfind("sftp://", 0) == 0 ? o->url : AbsolutePath(o->url);
      json body = {{"name", o->name}, {"url", url}, {"no_encryption", o->no_enc}};
      if (!o->ssh_key.empty()) body["ssh_key"] = AbsolutePath(o->ssh_key);
      if (!o->known_hosts.empty()) body["known_hosts"] = AbsolutePath(o->known_hosts);
      if (!o->pass_file.empty()) body["passphrase_file"] = AbsolutePath(o->pass_file);
      if (!o->key_file.empty()) body["key_file"] = AbsolutePath(o->key_file);
      if (!o->chunk_size.empty()) body["chunk_size"] = o->chunk_size;
      auto r = g.client().Call("POST", "/api/v1/repos", body);
      if (!r.ok()) return PrintError(r.status().message());
      if (o->no_enc) std::cerr << "WARNING: repository '" << o->name << "' is NOT encrypted\n";
      if (!o->key_file.empty() && r->value("created", false)) {
        std::cerr << "IMPORTANT: the key of repository '" << o->name << "' exists only in " << AbsolutePath(o->key_file)
                  << ". Without it no backup can be restored: copy it somewhere safe, away from the repository.\n";
      }
      std::cout << (r->value("created", false) ? "created" : "registered existing") << " repository " << o->name
                << " at " << r->value("url", "") << (r->value("encrypted", false) ? " (encrypted)" : " (unencrypted)")
                << "\n";
      return 0;
    });
  }
  {
    struct Opts {
      std::string name, file;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = repo->add_subcommand("passphrase", "change a repository's passphrase (the data is not re-encrypted)");
    cmd->add_option("name", o->name, "repository name")->required();
    cmd->add_option("--new-passphrase-file", o->file, "file holding the new passphrase (mode 600)")->required();
    Bind(cmd, g, [&g, o] {
      auto r = g.client().Call("POST", "/api/v1/repos/" + o->name + "/passphrase",
                               {{"passphrase_file", AbsolutePath(o->file)}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "repository " << o->name << " now opens with the passphrase in " << AbsolutePath(o->file)
                << "; the old passphrase no longer works\n";
      return 0;
    });
  }
  AddDeleteCommand(repo, g, "remove", "forget a repository (its backups stay where they are)", "repository name",
                   "/api/v1/repos/", [](const std::string& name) {
                     return "forgot repository " + name + " (its data stays; pampa repo add finds it again)";
                   });
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = repo->add_subcommand("list", "list repositories");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      return GetAndShow(g, "/api/v1/repos", *as_json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (auto& x : r)
          rows.push_back({x.value("name", ""), x.value("url", ""),
                          x.value("encrypted", false) ? "yes (" + x.value("key", "") + ")" : "NO"});
        PrintTable({"NAME", "URL", "ENCRYPTED"}, rows);
      });
    });
  }

  auto backup = app.add_subcommand("backup", "hot, incremental, deduplicated backups");
  backup->require_subcommand(1);
  {
    auto vm = std::make_shared<std::string>();
    auto repo_name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto async = std::make_shared<bool>(false);
    auto cmd = backup->add_subcommand("run", "back up a VM (running, paused or stopped)");
    cmd->add_option("vm", *vm, "VM name")->required();
    cmd->add_option("--repo", *repo_name, "repository name")->required();
    cmd->add_flag("--json", *as_json, "print the result as JSON");
    cmd->add_flag("--async", *async, "print the task id and return at once");
    Bind(cmd, g, [&g, vm, repo_name, as_json, async] {
      auto r = g.client().Call("POST", "/api/v1/vms/" + *vm + "/backup", {{"repo", *repo_name}});
      if (!r.ok()) return PrintError(r.status().message());
      if (*async) return FinishTask(g, (*r)["task"], true, "");
      auto t = g.client().WaitTask((*r)["task"], *as_json);
      if (!t.ok()) return PrintError(t.status().message());
      if (*as_json)
        PrintJson((*t)["result"]);
      else
        PrintBackupResult((*t)["result"]);
      return 0;
    });
  }
  {
    auto repo_name = std::make_shared<std::string>();
    auto vm = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = backup->add_subcommand("list", "list backups");
    cmd->add_option("--repo", *repo_name, "only this repository");
    cmd->add_option("--vm", *vm, "only this VM");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, repo_name, vm, as_json] {
      std::string q;
      if (!repo_name->empty()) q += "repo=" + UrlEncode(*repo_name);
      if (!vm->empty()) q += std::string(q.empty() ? "" : "&") + "vm=" + UrlEncode(*vm);
      return GetAndShow(g, "/api/v1/backups" + (q.empty() ? "" : "?" + q), *as_json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (auto& b : r) {
          if (b.contains("unreachable")) {
            std::cerr << "warning: repository " << b.value("repo", "")
                      << " is not listed: " << b.value("unreachable", "") << "\n";
            continue;
          }
          rows.push_back({b.value("id", ""), b.value("repo", ""), b.value("vm", ""),
                          FormatTime(b.value("created", int64_t{0})),
                          b.contains("error")             ? "DAMAGED"
                          : b.value("incremental", false) ? "incremental"
                                                          : "full",
                          HumanSize(b.value("size", 0ull)), HumanSize(b.value("bytes_uploaded", 0ull))});
        }
        PrintTable({"ID", "REPO", "VM", "CREATED", "KIND", "SIZE", "UPLOADED"}, rows);
      });
    });
  }
  {
    auto id = std::make_shared<std::string>();
    auto repo_name = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = backup->add_subcommand("show", "show one backup");
    cmd->add_option("id", *id, "backup id")->required();
    cmd->add_option("--repo", *repo_name, "repository name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, id, repo_name, as_json] {
      return GetAndShow(g, "/api/v1/repos/" + *repo_name + "/backups/" + *id, *as_json, [&](const json& r) {
        std::cout << "id:          " << r.value("id", "") << "\nvm:          " << r.value("vm", "")
                  << "\ncreated:     " << FormatTime(r.value("created", int64_t{0})) << "\nkind:        "
                  << (r.value("incremental", false) ? "incremental (parent " + r.value("parent", "") + ")" : "full")
                  << "\nconsistency: " << r.value("consistency", "")
                  << "\nread:        " << HumanSize(r.value("bytes_read", 0ull))
                  << "\nuploaded:    " << HumanSize(r.value("bytes_uploaded", 0ull)) << "\n";
        for (auto& d : r["disks"]) {
          std::cout << "disk:        " << d.value("volume", "") << " " << HumanSize(d.value("size", 0ull)) << " ("
                    << d.value("data_chunks", 0) << " of " << d.value("chunks", 0) << " chunks hold data)\n";
        }
      });
    });
  }
  {
    struct Opts {
      std::string id, repo, as, pool, bwlimit;
      bool in_place = false, discard_snapshots = false, live = false, async = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = backup->add_subcommand("restore", "restore a backup as a new VM, or over the stopped original");
    cmd->add_flag("--live", o->live,
                  "start the new VM at once, its disks read from the backup while they are copied in the background");
    cmd->add_option("--bwlimit", o->bwlimit, "with --live: limit the background copy to SIZE per second (e.g. 50M)");
    cmd->add_option("id", o->id, "backup id")->required();
    cmd->add_option("--repo", o->repo, "repository name")->required();
    cmd->add_option("--as", o->as, "name of the new VM");
    cmd->add_option("--pool", o->pool, "pool for the new VM's disks (default: default)");
    cmd->add_flag("--in-place", o->in_place, "overwrite the disks of the (stopped) original VM");
    cmd->add_flag("--discard-snapshots", o->discard_snapshots,
                  "with --in-place: let the restore discard the VM's snapshots (refused otherwise)");
    cmd->add_flag("--async", o->async, "print the task id and return at once");
    cmd->add_flag("--json", o->json, "print the result as JSON (vm, backup, seconds, stages)");
    Bind(cmd, g, [&g, o] {
      json body = {{"in_place", o->in_place}};
      if (o->discard_snapshots) body["discard_snapshots"] = true;
      if (!o->as.empty()) body["as"] = o->as;
      if (!o->pool.empty()) body["pool"] = o->pool;
      if (o->live) body["live"] = true;
      if (!o->bwlimit.empty()) body["bwlimit"] = o->bwlimit;
      auto r = g.client().Call("POST", "/api/v1/repos/" + o->repo + "/backups/" + o->id + "/restore", body);
      if (!r.ok()) return PrintError(r.status().message());
      if (o->async) return FinishTask(g, (*r)["task"], true, "");
      auto t = g.client().WaitTask((*r)["task"], o->json);
      if (!t.ok()) return PrintError(t.status().message());
      auto& res = (*t)["result"];
      if (o->json) {
        std::cout << res.dump(2) << "\n";
        return 0;
      }
      double secs = static_cast<int>(res.value("seconds", 0.0) * 10) / 10.0;
      if (res.value("live", false)) {
        std::cout << "vm " << res.value("vm", "") << " runs from backup " << o->id << " (started in " << secs
                  << " s); its disks are being copied in the background: pampa task show " << res.value("copy_task", "")
                  << "\n";
        return 0;
      }
      std::cout << "restored " << o->id << " as vm " << res.value("vm", "") << " in " << secs << " s\n";
      return 0;
    });
  }
  {
    struct Opts {
      std::string id, repo, path = "/";
      int disk = 0;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = backup->add_subcommand("files", "list a directory inside a backup, without restoring it");
    cmd->add_option("id", o->id, "backup id")->required();
    cmd->add_option("path", o->path, "a path in the backup: / lists the disk's file systems (part1, VG/LV, ...)");
    cmd->add_option("--repo", o->repo, "repository name")->required();
    cmd->add_option("--disk", o->disk, "the backup's disk, from 0")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--json", o->json, "print JSON");
    Bind(cmd, g, [&g, o] {
      std::string url = "/api/v1/repos/" + UrlEncode(o->repo) + "/backups/" + UrlEncode(o->id) +
                        "/files?disk=" + std::to_string(o->disk) + "&path=" + UrlEncode(o->path);
      // The first look at a backup boots its restore appliance.
      g.client().WithTimeout(std::max(RequestTimeout(), std::chrono::seconds(300)));
      return GetAndShow(g, url, o->json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        bool volumes = false;
        for (auto& e : r["entries"]) {
          std::string type = e.value("type", "");
          if (type == "volume") {
            volumes = true;
            rows.push_back(
                {e.value("name", ""), e.value("fs", ""), HumanSize(e.value("size", 0ull)), e.value("state", "")});
            continue;
          }
          std::string name = e.value("name", "") + (type == "dir" ? "/" : "");
          if (type == "symlink") name += " -> " + e.value("target", "");
          rows.push_back({type, e.value("mode", ""), type == "file" ? HumanSize(e.value("size", 0ull)) : "",
                          FormatTime(e.value("mtime", int64_t{0}) * 1000), name});
        }
        if (volumes)
          PrintTable({"VOLUME", "FS", "SIZE", "STATE"}, rows);
        else
          PrintTable({"TYPE", "MODE", "SIZE", "MODIFIED", "NAME"}, rows);
      });
    });
  }
  {
    struct Opts {
      std::string id, repo, to, tar;
      std::vector<std::string> paths;
      int disk = 0;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = backup->add_subcommand(
        "extract", "copy files and directories out of a backup (modes, owners and times kept) without restoring it");
    cmd->add_option("id", o->id, "backup id")->required();
    cmd->add_option("paths", o->paths, "paths in the backup, e.g. /part1/etc/hosts (see backup files)")->required();
    cmd->add_option("--repo", o->repo, "repository name")->required();
    cmd->add_option("--disk", o->disk, "the backup's disk, from 0")->check(CLI::NonNegativeNumber);
    auto to = cmd->add_option("--to", o->to, "an existing directory to put them in, each under its own name");
    auto tar = cmd->add_option("--tar", o->tar, "write one tar archive to FILE (a new file) or - (stdout)");
    to->excludes(tar);
    Bind(cmd, g, [&g, o] {
      if (o->to.empty() && o->tar.empty()) return PrintError("say where the files go: --to DIR or --tar FILE|-");
      std::string url = "/api/v1/repos/" + UrlEncode(o->repo) + "/backups/" + UrlEncode(o->id) + "/extract";
      json body = {{"paths", o->paths}, {"disk", o->disk}};
      g.client().WithTimeout(std::max(RequestTimeout(), std::chrono::seconds(300)));
      auto out = ExtractTarget::Open(o->to, o->tar);
      if (!out.ok()) return PrintError(out.status().message());
      uint64_t bytes = 0;
      std::map<std::string, std::string> headers;
      ProgressBar bar(false);  // on stderr, and only on a terminal
      Status st = g.client().Download(
          "POST", url, body,
          [&](std::string_view piece) {
            bytes += piece.size();
            uint64_t total = std::strtoull(headers["Pampa-File-Bytes"].c_str(), nullptr, 10);
            bar.Update(total > 0 ? std::min(0.99, static_cast<double>(bytes) / static_cast<double>(total)) : 0,
                       "extracting " + HumanSize(bytes) + (total > 0 ? " of " + HumanSize(total) : ""));
            return (*out)->Write(piece);
          },
          &headers);
      bar.Finish();
      Status closed = (*out)->Finish(st.ok());
      if (!st.ok()) return PrintError(st.message() + (bytes > 0 ? " (what was written may be incomplete)" : ""));
      if (!closed.ok()) return PrintError(closed.message());
      if (!o->to.empty()) {
        std::cout << "extracted " << o->paths.size() << " path(s) from backup " << o->id << " to " << o->to << " ("
                  << HumanSize(bytes) << " of archive)\n";
      } else if (o->tar != "-") {
        std::cout << "wrote " << o->tar << " (" << HumanSize(bytes) << ")\n";
      }
      return 0;
    });
  }
  auto sched = backup->add_subcommand("schedule", "daily backups run by pampad");
  sched->require_subcommand(1);
  {
    struct Opts {
      std::vector<std::string> vms;
      std::string repo, daily;
      int last = 0, days = 0, weeks = 0, months = 0, years = 0;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = sched->add_subcommand("add", "back up VMs every day at HH:MM, then apply retention");
    cmd->add_option("vms", o->vms, "VM names")->required();
    cmd->add_option("--repo", o->repo, "repository name")->required();
    cmd->add_option("--daily", o->daily, "local time, HH:MM")->required();
    cmd->add_option("--keep-last", o->last, "retention: keep the N newest backups");
    cmd->add_option("--keep-daily", o->days, "retention: newest of each of the last N days");
    cmd->add_option("--keep-weekly", o->weeks, "retention: ... N weeks");
    cmd->add_option("--keep-monthly", o->months, "retention: ... N months");
    cmd->add_option("--keep-yearly", o->years, "retention: ... N years");
    Bind(cmd, g, [&g, o] {
      json keep = {{"keep_last", o->last},
                   {"keep_daily", o->days},
                   {"keep_weekly", o->weeks},
                   {"keep_monthly", o->months},
                   {"keep_yearly", o->years}};
      auto r = g.client().Call("POST", "/api/v1/schedules",
                               {{"vms", o->vms}, {"repo", o->repo}, {"daily", o->daily}, {"keep", keep}});
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "schedule " << r->value("id", "") << ": daily at " << o->daily << ", next run "
                << FormatTime(r->value("next_run", int64_t{0})) << "\n";
      return 0;
    });
  }
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = sched->add_subcommand("list", "list schedules with their last result");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      return GetAndShow(g, "/api/v1/schedules", *as_json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (auto& s : r) {
          std::string vms;
          for (auto& v : s["vms"]) vms += (vms.empty() ? "" : ",") + v.get<std::string>();
          int64_t last = s.value("last_run", int64_t{0});
          rows.push_back({s.value("id", ""), vms, s.value("repo", ""), s.value("daily", ""),
                          last ? FormatTime(last) : "never",
                          s.value("last_result", "").empty() ? "-" : s.value("last_result", ""),
                          FormatTime(s.value("next_run", int64_t{0}))});
        }
        PrintTable({"ID", "VMS", "REPO", "DAILY", "LAST RUN", "LAST RESULT", "NEXT RUN"}, rows);
      });
    });
  }
  for (auto [verb, help] : {std::pair{"delete", "delete a schedule"}, {"run", "run a schedule now"}}) {
    auto id = std::make_shared<std::string>();
    std::string v = verb;
    auto cmd = sched->add_subcommand(verb, help);
    cmd->add_option("id", *id, "schedule id")->required();
    Bind(cmd, g, [&g, id, v] {
      if (v == "delete") {
        auto r = g.client().Call("DELETE", "/api/v1/schedules/" + *id);
        if (!r.ok()) return PrintError(r.status().message());
        std::cout << "deleted schedule " << *id << "\n";
        return 0;
      }
      auto r = g.client().Call("POST", "/api/v1/schedules/" + *id + "/run", json::object());
      if (!r.ok()) return PrintError(r.status().message());
      auto t = g.client().WaitTask((*r)["task"]);
      if (!t.ok()) return PrintError(t.status().message());
      const json& res = (*t)["result"];
      std::cout << "schedule " << *id << " ran\n";
      const json backups = res.value("backups", json::array()), removed = res.value("removed", json::object());
      for (auto& b : backups) std::cout << "backed up: " << b.get<std::string>() << "\n";
      for (auto& [vm, gone] : removed.items()) {
        std::cout << "retention removed " << gone.size() << " backup(s) of " << vm;
        const char* sep = ": ";
        for (auto& b : gone) {
          std::cout << sep << b.get<std::string>();
          sep = ", ";
        }
        std::cout << "\n";
      }
      return 0;
    });
  }
  auto drill = backup->add_subcommand(
      "drill", "restore drills: live-restore a VM's latest backup to a scratch VM, check it, time it");
  drill->require_subcommand(1);
  {
    struct Opts {
      std::string vm, repo, check, timeout;
      std::vector<std::string> weekly;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = drill->add_subcommand("add", "drill a VM's latest backup every week");
    cmd->add_option("vm", o->vm, "the VM whose backups to drill")->required();
    cmd->add_option("--repo", o->repo, "repository name")->required();
    cmd->add_option("--weekly", o->weekly, "DAY HH:MM: weekday (mon..sun) and local time")->expected(2)->required();
    cmd->add_option("--check", o->check,
                    "command run in the guest with /bin/sh -c; exit 0 = healthy (default: the agent answers)");
    cmd->add_option("--timeout", o->timeout, "from the start to healthy, e.g. 10m (default)");
    Bind(cmd, g, [&g, o] {
      json body = {{"vm", o->vm}, {"repo", o->repo}, {"day", o->weekly.at(0)}, {"time", o->weekly.at(1)}};
      if (!o->check.empty()) body["check"] = o->check;
      if (!o->timeout.empty()) body["timeout"] = o->timeout;
      auto r = g.client().Call("POST", "/api/v1/drills", body);
      if (!r.ok()) return PrintError(r.status().message());
      std::cout << "drill " << r->value("id", "") << ": " << o->vm << " every " << r->value("day", "") << " at "
                << r->value("time", "") << ", next run " << FormatTime(r->value("next_run", int64_t{0})) << "\n";
      return 0;
    });
  }
  {
    auto as_json = std::make_shared<bool>(false);
    auto cmd = drill->add_subcommand("list", "list drills with their last result and recovery time");
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, as_json] {
      return GetAndShow(g, "/api/v1/drills", *as_json, [&](const json& r) {
        std::vector<std::vector<std::string>> rows;
        for (auto& d : r) {
          int64_t last = d.value("last_run", int64_t{0});
          std::string recovery = "-";
          if (d.contains("last_recovery_seconds")) {
            recovery = std::to_string(static_cast<int>(d["last_recovery_seconds"].get<double>() * 10) / 10.0);
            recovery = recovery.substr(0, recovery.find('.') + 2) + " s";
          }
          rows.push_back({d.value("id", ""), d.value("vm", ""), d.value("repo", ""),
                          d.value("day", "") + " " + d.value("time", ""), last ? FormatTime(last) : "never",
                          d.value("last_result", "").empty() ? "-" : d.value("last_result", ""), recovery,
                          FormatTime(d.value("next_run", int64_t{0}))});
        }
        PrintTable({"ID", "VM", "REPO", "WEEKLY", "LAST RUN", "LAST RESULT", "RECOVERY", "NEXT RUN"}, rows);
      });
    });
  }
  for (auto [verb, help] : {std::pair{"remove", "remove a drill"}, {"run", "run a drill now and wait for it"}}) {
    auto id = std::make_shared<std::string>();
    std::string v = verb;
    auto cmd = drill->add_subcommand(verb, help);
    cmd->add_option("id", *id, "drill id")->required();
    Bind(cmd, g, [&g, id, v] {
      if (v == "remove") {
        auto r = g.client().Call("DELETE", "/api/v1/drills/" + *id);
        if (!r.ok()) return PrintError(r.status().message());
        std::cout << "removed drill " << *id << "\n";
        return 0;
      }
      auto r = g.client().Call("POST", "/api/v1/drills/" + *id + "/run", json::object());
      if (!r.ok()) return PrintError(r.status().message());
      auto t = g.client().WaitTask((*r)["task"]);
      if (!t.ok()) return PrintError(t.status().message());
      const json& res = (*t)["result"];
      std::cout << fmt::format(
          "drill {}: vm {} from backup {} was healthy {:.1f} s after the restore began (agent {:.1f} s); "
          "the whole backup read back in {:.1f} s\n",
          *id, res.value("vm", ""), res.value("backup", ""), res.value("recovery_seconds", 0.0),
          res.value("agent_seconds", 0.0), res.value("copy_seconds", 0.0));
      return 0;
    });
  }
  {
    struct Opts {
      std::string repo, vm;
      int last = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
      bool dry = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    auto cmd = backup->add_subcommand("prune", "forget backups outside the retention policy, then free unused chunks");
    cmd->add_option("--repo", o->repo, "repository name")->required();
    cmd->add_option("--vm", o->vm, "only this VM's backups");
    cmd->add_option("--keep-last", o->last, "keep the N newest backups");
    cmd->add_option("--keep-daily", o->daily, "keep the newest backup of each of the last N days");
    cmd->add_option("--keep-weekly", o->weekly, "... of the last N weeks");
    cmd->add_option("--keep-monthly", o->monthly, "... of the last N months");
    cmd->add_option("--keep-yearly", o->yearly, "... of the last N years");
    cmd->add_flag("--dry-run", o->dry, "only say what would be removed");
    cmd->add_flag("--json", o->json, "print JSON");
    Bind(cmd, g, [&g, o] {
      json body = {{"keep_last", o->last},       {"keep_daily", o->daily},   {"keep_weekly", o->weekly},
                   {"keep_monthly", o->monthly}, {"keep_yearly", o->yearly}, {"dry_run", o->dry}};
      if (!o->vm.empty()) body["vm"] = o->vm;
      auto r = g.client().Call("POST", "/api/v1/repos/" + o->repo + "/prune", body);
      if (!r.ok()) return PrintError(r.status().message());
      auto t = g.client().WaitTask((*r)["task"], o->json);
      if (!t.ok()) return PrintError(t.status().message());
      auto& res = (*t)["result"];
      if (o->json) {
        PrintJson(res);
        return 0;
      }
      for (auto& id : res["removed"])
        std::cout << (o->dry ? "would remove " : "removed ") << id.get<std::string>() << "\n";
      std::cout << res["kept"].size() << " backup(s) kept; garbage collection: " << res.value("gc", "") << "\n";
      if (res.contains("chunks_deleted")) {
        std::cout << res.value("chunks_deleted", 0) << " chunk(s) deleted, "
                  << HumanSize(res.value("bytes_freed", 0ull)) << " freed\n";
      }
      return 0;
    });
  }
  {
    auto repo_name = std::make_shared<std::string>();
    auto id = std::make_shared<std::string>();
    auto as_json = std::make_shared<bool>(false);
    auto cmd = backup->add_subcommand("verify", "re-read and check every chunk and manifest; exit 1 on damage");
    cmd->add_option("id", *id, "only this backup");
    cmd->add_option("--repo", *repo_name, "repository name")->required();
    cmd->add_flag("--json", *as_json, "print JSON");
    Bind(cmd, g, [&g, repo_name, id, as_json] {
      json body = json::object();
      if (!id->empty()) body["backup"] = *id;
      auto r = g.client().Call("POST", "/api/v1/repos/" + *repo_name + "/verify", body);
      if (!r.ok()) return PrintError(r.status().message());
      auto t = g.client().WaitTask((*r)["task"], *as_json);
      if (!t.ok()) return PrintError(t.status().message());
      auto& res = (*t)["result"];
      if (*as_json) {
        PrintJson(res);
      } else {
        std::cout << "checked " << res.value("backups_checked", 0) << " backup(s), " << res.value("chunks_checked", 0)
                  << " chunk(s)\n";
        for (auto& c : res["damaged_chunks"]) std::cout << "DAMAGED chunk " << c.value("reason", "") << "\n";
        for (auto& b : res["damaged_backups"]) {
          std::cout << "DAMAGED backup " << b.value("id", "") << ": " << b.value("reason", "") << "\n";
        }
        if (res.value("ok", false)) std::cout << "ok\n";
      }
      return res.value("ok", false) ? 0 : 1;
    });
  }
}

}  // namespace pampa::cli
