// The SFTP object store (see object_store.h for the contract).
#pragma once

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <memory>
#include <string>

#include "backup/object_store.h"

namespace pampa {

struct SftpLocation {
  std::string user, host, path;
  int port = 22;
  std::string identity;     // private key file; empty: the default keys and ssh-agent
  std::string known_hosts;  // empty: ~/.ssh/known_hosts
  // An operation that moves no data for this long fails (the connection is cut):
  // a dead target fails the backup instead of holding it forever.
  int stall_seconds = 60;
};

Result<SftpLocation> ParseSftpUrl(const std::string& url);

// One SSH connection with SFTP started on it (libssh; not thread-safe).
struct SshSession {
  ssh_session ssh = nullptr;
  sftp_session sftp = nullptr;
  // Bytes per read or write request: every request waits for its answer, so
  // bigger is much faster (64 KiB requests uploaded at 8 MB/s on loopback,
  // 255 KiB ones at over 60). OpenSSH takes up to 256 KiB messages; other
  // servers get the 32 KiB every SFTP server must accept.
  size_t io_size = 32 << 10;
  std::string Error() const { return ssh ? ssh_get_error(ssh) : "not connected"; }
  SshSession() = default;
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;
  ~SshSession();
};
// Connects s to the location's host: the host key must be in known_hosts,
// authentication is by key only; then starts libssh's SFTP layer on it, unless
// start_sftp is false (the object store speaks SFTP itself: sftp_pipe.h).
Status ConnectSsh(const SftpLocation& location, SshSession* s, bool start_sftp = true);
// Connects (checking the host key and authenticating); the directory must
// exist, or (create) its parent, and then only the last component is made.
// connections: at most this many SSH connections, opened as needed, each
// carrying the requests of many callers at once (sftp_pipe.h).
Result<std::unique_ptr<ObjectStore>> OpenSftpObjectStore(const SftpLocation& location, CreateDir create,
                                                         int connections = 4);

}  // namespace pampa
