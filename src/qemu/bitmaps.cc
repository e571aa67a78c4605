#include "qemu/bitmaps.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/process.h"

namespace pampa {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::map<std::string, bool> ImageBitmaps(const std::string& path) {
  std::map<std::string, bool> out;
  auto r = Run({"qemu-img", "info", "--output=json", "-U", path});
  if (!r.ok() || r->exit_code != 0) return out;
  auto j = json::parse(r->out, nullptr, false);
  if (!j.is_object()) return out;
  auto bitmaps = j["format-specific"]["data"].value("bitmaps", json::array());
  for (auto& b : bitmaps) {
    bool in_use = false;
    for (auto& f : b.value("flags", json::array())) in_use |= f == "in-use";
    out[b.value("name", "")] = !in_use;
  }
  return out;
}

Status RotateBitmaps(const std::string& path, const std::map<std::string, bool>& before, const std::string& repo,
                     const std::string& add, const std::string& keep) {
  PAMPA_RETURN_IF_ERROR(RunChecked({"qemu-img", "bitmap", "--add", path, add}).status());
  for (auto& [name, usable] : before) {
    if (name != keep && name.starts_with(RepoBitmapPrefix(repo))) {
      (void)RunChecked({"qemu-img", "bitmap", "--remove", path, name});
    }
  }
  return Status::Ok();
}

Result<int> DropBackupBitmaps(QmpClient* qmp, const std::vector<std::string>& paths) {
  auto ours = [](const std::string& name) { return name.starts_with(kBitmapPrefix); };
  int dropped = 0;
  if (qmp && qmp->connected()) {
    PAMPA_ASSIGN_OR_RETURN(auto nodes, qmp->Execute("query-named-block-nodes", {{"flat", true}}, 10s));
    for (auto& node : nodes) {
      std::string name = node.value("node-name", "");
      if (name.rfind("disk", 0) != 0) continue;
      for (auto& b : node.value("dirty-bitmaps", json::array())) {
        if (!ours(b.value("name", ""))) continue;
        PAMPA_RETURN_IF_ERROR(
            qmp->Execute("block-dirty-bitmap-remove", {{"node", name}, {"name", b.value("name", "")}}, 10s).status());
        ++dropped;
      }
    }
    return dropped;
  }
  for (auto& p : paths) {
    for (auto& [bname, usable] : ImageBitmaps(p)) {
      if (!ours(bname)) continue;
      PAMPA_RETURN_IF_ERROR(RunChecked({"qemu-img", "bitmap", "--remove", p, bname}).status());
      ++dropped;
    }
  }
  return dropped;
}

}  // namespace pampa
