// Cloud-init's NoCloud seed for a VM (see cloud_init.cc).
#pragma once

#include <string>

#include "base/status.h"
#include "vm/vm_spec.h"

namespace pampa {

// The three files of a NoCloud seed, as text.
struct CloudInitSeed {
  std::string meta_data, user_data, network_config;
};
CloudInitSeed CloudInitFiles(const VmSpec& spec);

// Writes spec's seed as an ISO 9660 image labelled "cidata" at iso (made
// under a temporary name, then renamed).
Status WriteCloudInitSeed(const VmSpec& spec, const std::string& iso);

}  // namespace pampa
