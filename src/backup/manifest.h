// A backup's manifest: what one backup holds (docs/formats/backup-repository.md
// names each field). The one place that knows the manifest's field names;
// everything else works with this type.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace pampa {

// The chunk id that stands for an all-zero chunk, which is never stored.
inline const std::string kZeroChunk = "zero";

struct ManifestDisk {
  size_t index = 0;
  std::string pool, volume;
  uint64_t size = 0;                // the disk's length in bytes
  std::vector<std::string> chunks;  // ceil(size / chunk_size) ids, kZeroChunk for an all-zero chunk
  // Chunks that hold data (not kZeroChunk).
  size_t DataChunks() const;
};

struct Manifest {
  std::string id;
  std::string vm;
  int64_t created = 0;  // unix ms
  // The VM's spec when it was backed up, in VmSpec's wire format (backup/ sits below vm/).
  nlohmann::json spec = nlohmann::json::object();
  std::vector<ManifestDisk> disks;
  bool incremental = false;
  std::string parent;       // the backup this one read changes since ("" for a full read)
  std::string consistency;  // how consistent the point in time is, in words
  uint64_t bytes_read = 0, bytes_uploaded = 0, size = 0;
  double seconds = 0;
  uint64_t chunk_size = 0;

  nlohmann::json ToJson() const;
  // Refuses (kInvalid, naming the backup) a document that lacks a field a
  // restore needs or has one of the wrong type.
  static Result<Manifest> FromJson(const nlohmann::json& j);
};

}  // namespace pampa
