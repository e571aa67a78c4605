// pampa-backup-export: serves one backup's disks as NBD exports on a unix
// socket (backup/nbd_export.h) for a live restore, in a process of its own so
// that a pampad restart or crash never interrupts a guest reading its disks.
//
//   pampa-backup-export CONFIG
//
// CONFIG (written by pampad, mode 600) is JSON: {"repo": <repository record>,
// "backup": ID, "socket": PATH, "status": PATH}. The repository's passphrase or
// key stays in the file its record names, read here. Every second the status
// file gets {"pid", "requests", "bytes_served", "chunks_fetched", "errors",
// "last_error"}; SIGTERM stops serving.
#include <signal.h>
#include <unistd.h>

#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/nbd_export.h"
#include "backup/repos.h"
#include "base/fs.h"

using namespace pampa;

namespace {

int Fail(const std::string& what, const Status& st) {
  std::cerr << "pampa-backup-export: " << what << ": " << st.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: pampa-backup-export CONFIG (started by pampad for a live restore)\n";
    return 2;
  }
  auto text = ReadPrivateFile(argv[1], "export configuration");
  if (!text.ok()) return Fail("reading the configuration", text.status());
  auto config = nlohmann::json::parse(*text, nullptr, false);
  if (!config.is_object() || !config["backup"].is_string() || !config["socket"].is_string() ||
      !config["status"].is_string()) {
    return Fail("reading the configuration", Status::Invalid(std::string(argv[1]) + " is not an export configuration"));
  }
  // Signals are taken synchronously below; threads started from here inherit the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  RepoInfo info = RepoInfoFromJson(config["repo"]);
  auto repo = OpenRepository(info);
  if (!repo.ok()) return Fail("opening repository '" + info.name + "'", repo.status());
  std::shared_ptr<Repository> shared(std::move(*repo));
  std::string backup = config["backup"];
  auto manifest = shared->ReadManifest(backup);
  if (!manifest.ok()) return Fail("reading backup " + backup, manifest.status());
  auto server = BackupNbdServer::Start(shared, *manifest, config["socket"]);
  if (!server.ok()) return Fail("serving backup " + backup, server.status());
  std::cerr << "pampa-backup-export: serving backup " << backup << " (" << manifest->disks.size() << " disk(s)) on "
            << config["socket"].get<std::string>() << "\n";

  const std::string status_path = config["status"];
  std::string last;
  for (;;) {
    auto s = (*server)->stats();
    nlohmann::json status = {{"pid", getpid()},
                             {"requests", s.requests},
                             {"bytes_served", s.bytes_served},
                             {"chunks_fetched", s.chunks_fetched},
                             {"errors", s.errors},
                             {"last_error", s.last_error}};
    if (status.dump() != last) {
      last = status.dump();
      if (Status st = WriteFileAtomic(status_path, last, 0600); !st.ok()) {
        std::cerr << "pampa-backup-export: " << st.message() << "\n";
      }
    }
    timespec tick{1, 0};
    int sig = sigtimedwait(&stop, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  std::cerr << "pampa-backup-export: stopped\n";
  return 0;
}
