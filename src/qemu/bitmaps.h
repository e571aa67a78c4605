// Backups' persistent dirty bitmaps in qcow2 images: their naming, and the
// qemu-img and QMP steps that list, rotate and drop them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "qmp/qmp_client.h"

namespace pampa {

// Backups' dirty bitmaps are named pampa-<repository>-<8 hex> on the disk nodes.
inline constexpr char kBitmapPrefix[] = "pampa-";
inline std::string RepoBitmapPrefix(const std::string& repo) { return kBitmapPrefix + repo + "-"; }

// Persistent bitmaps recorded in a qcow2 image, with whether each is usable
// (not left "in-use" by a QEMU that died). Empty when the image cannot be read.
std::map<std::string, bool> ImageBitmaps(const std::string& path);

// A stopped VM's bitmaps once its disk is read: `add` is added, and the
// repository's others in `before` removed, except `keep` (the one the previous
// backup recorded): should this backup fail, the next still reads only what
// changed since then; the next backup removes it.
Status RotateBitmaps(const std::string& path, const std::map<std::string, bool>& before, const std::string& repo,
                     const std::string& add, const std::string& keep);

// Removes every backup bitmap (any repository) from a VM's disks: through QMP
// on the disk<i> nodes while QEMU runs (qmp connected), else with qemu-img on
// the image files. Returns how many went.
Result<int> DropBackupBitmaps(QmpClient* qmp, const std::vector<std::string>& paths);

}  // namespace pampa
