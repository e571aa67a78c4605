#include "qemu/nbd_server.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "base/process.h"
#include "qmp/json_channel.h"

namespace pampa {

using namespace std::chrono_literals;

Result<std::unique_ptr<QemuNbdServer>> QemuNbdServer::Start(const std::string& image, const std::string& socket,
                                                            const std::string& bitmap) {
  unlink(socket.c_str());
  std::vector<std::string> argv = {"qemu-nbd",
                                   "--persistent",
                                   "--shared=8",
                                   "--format=qcow2",
                                   "--read-only",
                                   "--socket=" + socket,
                                   std::string("--export-name=") + kExportName};
  if (!bitmap.empty()) argv.push_back("--bitmap=" + bitmap);
  argv.push_back(image);
  PAMPA_ASSIGN_OR_RETURN(pid_t pid, SpawnDetached(argv, socket + ".log"));
  auto server = std::unique_ptr<QemuNbdServer>(new QemuNbdServer(pid, socket));
  Status recorded = WriteFileAtomic(socket + ".nbdpid", std::to_string(pid), 0600);
  (void)recorded;                   // only KillStaleNbd after a crash needs it
  for (int i = 0; i < 2500; ++i) {  // it listens within a few ms
    // Accepting, not only bound: the socket file appears before listen(),
    // and a connection in between is refused.
    if (JsonChannel().Connect(socket, 0ms).ok()) return server;
    if (!ProcessAlive(pid, "")) break;
    std::this_thread::sleep_for(2ms);
  }
  return Status::Unavailable("qemu-nbd did not start for " + image + ": " + TailFile(socket + ".log", 400));
}

QemuNbdServer::~QemuNbdServer() {
  // qemu-nbd ignores a SIGTERM sent right after it starts accepting (20 times
  // out of 20 here), as when a backup fails at once after the start: the
  // read-only export is then killed outright.
  StopProcess(pid_, "", 1s);
  unlink(socket_.c_str());
  unlink((socket_ + ".log").c_str());
  unlink((socket_ + ".nbdpid").c_str());
}

void KillStaleNbd(const std::string& run_dir) {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(run_dir, ec)) {
    if (e.path().extension() != ".nbdpid") continue;
    auto pid = ReadFile(e.path().string());
    if (pid.ok()) {
      pid_t p = std::atoi(pid->c_str());
      if (ProcessAlive(p, "qemu-nbd")) {
        kill(p, SIGTERM);
        for (int i = 0; i < 200 && ProcessAlive(p, ""); ++i) std::this_thread::sleep_for(10ms);
      }
    }
    std::filesystem::remove(e.path(), ec);
  }
}

}  // namespace pampa
