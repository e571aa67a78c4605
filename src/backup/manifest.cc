#include "backup/manifest.h"

namespace pampa {

using json = nlohmann::json;

size_t ManifestDisk::DataChunks() const {
  size_t n = 0;
  for (auto& c : chunks) n += c != kZeroChunk;
  return n;
}

json Manifest::ToJson() const {
  json d = json::array();
  for (auto& disk : disks) {
    d.push_back({{"index", disk.index},
                 {"pool", disk.pool},
                 {"volume", disk.volume},
                 {"size", disk.size},
                 {"chunks", disk.chunks}});
  }
  return {{"id", id},
          {"vm", vm},
          {"created", created},
          {"spec", spec},
          {"disks", d},
          {"incremental", incremental},
          {"parent", parent},
          {"consistency", consistency},
          {"bytes_read", bytes_read},
          {"bytes_uploaded", bytes_uploaded},
          {"size", size},
          {"seconds", seconds},
          {"chunk_size", chunk_size}};
}

Result<Manifest> Manifest::FromJson(const json& j) {
  auto damaged = [&](const std::string& why) {
    return Status::Invalid("manifest of backup " + (j.is_object() ? j.value("id", std::string("?")) : "?") +
                           " is damaged: " + why);
  };
  if (!j.is_object()) return damaged("not an object");
  if (!j.contains("disks") || !j["disks"].is_array()) return damaged("no disk list");
  Manifest m;
  try {
    m.id = j.value("id", "");
    m.vm = j.value("vm", "");
    m.created = j.value("created", int64_t{0});
    m.spec = j.value("spec", json::object());
    m.incremental = j.value("incremental", false);
    m.parent = j.value("parent", "");
    m.consistency = j.value("consistency", "");
    m.bytes_read = j.value("bytes_read", uint64_t{0});
    m.bytes_uploaded = j.value("bytes_uploaded", uint64_t{0});
    m.size = j.value("size", uint64_t{0});
    m.seconds = j.value("seconds", 0.0);
    m.chunk_size = j.value("chunk_size", uint64_t{0});
    for (size_t i = 0; i < j["disks"].size(); ++i) {
      const json& d = j["disks"][i];
      if (!d.is_object() || !d.contains("chunks") || !d["chunks"].is_array()) {
        return damaged("disk " + std::to_string(i) + " has no chunk list");
      }
      ManifestDisk disk;
      disk.index = d.value("index", i);
      disk.pool = d.value("pool", "");
      disk.volume = d.value("volume", "");
      disk.size = d.value("size", uint64_t{0});
      disk.chunks = d["chunks"].get<std::vector<std::string>>();
      m.disks.push_back(std::move(disk));
    }
  } catch (const json::exception& e) {
    return damaged(e.what());
  }
  if (m.id.empty()) return damaged("no id");
  return m;
}

}  // namespace pampa
