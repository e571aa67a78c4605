// qemu-nbd as a child: a read-only NBD server on a unix socket for one image,
// used to read a stopped VM's disks (with their dirty bitmaps) for backups.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace pampa {

// A read-only qemu-nbd serving one qcow2 image on a unix socket for as long as
// this lives; the destructor stops it. Its pid is kept in SOCKET.nbdpid so
// that a pampad that died mid-backup can stop it later (KillStaleNbd).
class QemuNbdServer {
 public:
  // Returns once qemu-nbd accepts connections. bitmap: a persistent dirty
  // bitmap to expose as the meta context qemu:dirty-bitmap:NAME ("" for none).
  static Result<std::unique_ptr<QemuNbdServer>> Start(const std::string& image, const std::string& socket,
                                                      const std::string& bitmap);
  ~QemuNbdServer();
  QemuNbdServer(const QemuNbdServer&) = delete;
  QemuNbdServer& operator=(const QemuNbdServer&) = delete;

  const std::string& socket() const { return socket_; }
  static constexpr const char* kExportName = "disk";

 private:
  QemuNbdServer(pid_t pid, std::string socket) : pid_(pid), socket_(std::move(socket)) {}
  pid_t pid_;
  std::string socket_;
};

// Stops qemu-nbd servers a dead pampad left in a VM's run directory (they
// hold image locks that would keep QEMU from starting).
void KillStaleNbd(const std::string& run_dir);

}  // namespace pampa
