// P2V: the block devices of a running physical server, read over SSH.
//
// Nothing is installed on the server. pampad connects with libssh (the host
// key must be in known_hosts, key authentication only) and reads the server's
// CPUs, memory and disk sizes through SFTP (/proc, /sys). The first pass, on a
// server with python3, is one stream: a fixed script reads the disk once and
// sends each 1 MiB range that is not all zeros with its SHA-1, written
// straight into a preallocated volume as it arrives. Elsewhere the server
// hashes each range (one `sh -c` loop of dd | sha1sum) and the ranges with
// data are read through SFTP. The only argument from outside in either is the
// device path, checked to be a plain /dev path. The hashes of what was copied
// are kept: a second pass (the server's services stopped) hashes again and
// copies only the ranges whose hash changed, which is what shortens the final
// downtime.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backup/disk_transfer.h"
#include "backup/sftp_store.h"
#include "base/status.h"

namespace pampa {

constexpr uint64_t kP2vRange = 1 << 20;

// ssh://USER@HOST[:PORT] (no path).
Result<SftpLocation> ParseSshUrl(const std::string& url);
// A device to read: /dev/NAME with letters, digits, '.', '_', '-' and '/' only.
Status CheckDevicePath(const std::string& device);

struct RemoteDisk {
  std::string device;
  uint64_t size = 0;
};

struct RemoteMachine {
  int cpus = 1;
  uint64_t memory_mib = 0;
  std::string firmware = "bios";  // "uefi" when the server booted through UEFI
  std::vector<RemoteDisk> disks;
};

struct RangeCopy {
  uint64_t ranges = 0, ranges_copied = 0, bytes_copied = 0;
};

class RemoteHost {
 public:
  static Result<std::unique_ptr<RemoteHost>> Connect(const SftpLocation& location);

  // CPUs and memory from /proc, each device's size from /sys/class/block.
  Result<RemoteMachine> Describe(const std::vector<std::string>& devices);
  // The SHA-1 (hex) of each kP2vRange range of the disk, computed on the server.
  Result<std::vector<std::string>> RangeHashes(const RemoteDisk& disk, const std::atomic<bool>* cancel);
  // Copies into out the ranges whose hash differs from previous (the hashes of
  // what the target holds; empty: the target reads as zeros). *copied gets the
  // hash of each range as now held. progress(done ranges, all ranges).
  Result<RangeCopy> CopyRanges(const RemoteDisk& disk, const std::vector<std::string>& hashes,
                               const std::vector<std::string>& previous, const TargetWriter& out,
                               std::vector<std::string>* copied,
                               const std::function<void(uint64_t, uint64_t)>& progress,
                               const std::atomic<bool>* cancel);
  // A first pass in one stream: the server reads the disk once and sends
  // each range that is not all zeros with its hash, which goes into out as it
  // arrives (no round trip per range; the server's reading and hashing
  // overlap the transfer). *copied gets every range's hash. kNotFound
  // when the server has no python3 that runs: then RangeHashes and CopyRanges do it.
  Result<RangeCopy> StreamRanges(const RemoteDisk& disk, const TargetWriter& out, std::vector<std::string>* copied,
                                 const std::function<void(uint64_t, uint64_t)>& progress,
                                 const std::atomic<bool>* cancel);
  std::string Describe() const { return where_; }

 private:
  RemoteHost() = default;
  Result<std::string> ReadText(const std::string& path);
  Status Read(sftp_file file, uint64_t offset, char* buf, size_t len);

  SshSession s_;
  std::string where_;
};

}  // namespace pampa
