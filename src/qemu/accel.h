// Which accelerator VMs use. KVM is used only after a real probe boot of the
// test guest succeeded on this host (a working /dev/kvm is no proof); the
// verdict is cached in the data directory. PAMPA_ACCEL=tcg|kvm forces it.
#pragma once

#include <mutex>
#include <string>

#include "base/status.h"

namespace pampa {

struct AccelVerdict {
  std::string accel;   // kvm | tcg
  std::string reason;  // why, for `pampa host check`
  bool forced = false;
  bool probed = false;  // a probe boot ran (now or cached)
};

class AccelProbe {
 public:
  // guest_dir: where mkguest put vmlinuz and initrd.img (may be empty).
  AccelProbe(std::string cache_file, std::string guest_dir, std::string work_dir);
  // The accelerator to use now, without probing (cached verdict, env, or TCG).
  AccelVerdict Current() const;
  // Runs the probe boot (a few seconds) unless a verdict is cached for this
  // QEMU and kernel, then returns the verdict.
  AccelVerdict Probe(bool force_rerun = false);

 private:
  std::string cache_file_, guest_dir_, work_dir_;
  std::mutex probe_mu_;  // one probe boot at a time; a second caller waits for its verdict
};

}  // namespace pampa
