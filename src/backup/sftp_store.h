// The SFTP object store (see object_store.h for the contract).
#pragma once

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
// Connects (checking the host key and authenticating); the directory must
// exist, or (create) its parent, and then only the last component is made.
// connections: at most this many sessions, opened as needed. 8: twice 4 was
// twice as fast over a 20 ms link (bench/link_bench.py), and OpenSSH's
// default MaxStartups (10) drops connections beyond 10 being set up at once
// (16 failed there with "Socket error: disconnected").
Result<std::unique_ptr<ObjectStore>> OpenSftpObjectStore(const SftpLocation& location, CreateDir create,
                                                         int connections = 8);

}  // namespace pampa
