#include "qemu/accel.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/log.h"
#include "base/process.h"

namespace pampa {
namespace {

std::string HostKey() {
  utsname u{};
  uname(&u);
  return std::string(u.release);
}

}  // namespace

AccelProbe::AccelProbe(std::string cache_file, std::string guest_dir, std::string work_dir)
    : cache_file_(std::move(cache_file)), guest_dir_(std::move(guest_dir)), work_dir_(std::move(work_dir)) {}

AccelVerdict AccelProbe::Current() const {
  if (const char* env = std::getenv("PAMPA_ACCEL")) {
    std::string e = env;
    if (e == "tcg" || e == "kvm") return {e, "forced by PAMPA_ACCEL=" + e, true, false};
  }
  auto cached = ReadFile(cache_file_);
  if (cached.ok()) {
    auto j = nlohmann::json::parse(*cached, nullptr, false);
    if (j.is_object() && j.value("host", "") == HostKey()) {
      return {j.value("accel", "tcg"), j.value("reason", ""), false, true};
    }
  }
  return {"tcg", "KVM not probed yet on this host; using software emulation (TCG)", false, false};
}

AccelVerdict AccelProbe::Probe(bool force_rerun) {
  std::lock_guard lock(probe_mu_);
  AccelVerdict cur = Current();
  if (cur.forced || (cur.probed && !force_rerun)) return cur;
  AccelVerdict v{"tcg", "", false, true};
  std::string kernel = guest_dir_ + "/vmlinuz", initrd = guest_dir_ + "/initrd.img";
  if (access("/dev/kvm", R_OK | W_OK) != 0) {
    v.reason =
        "/dev/kvm is missing or not accessible: using TCG (slow). Enable virtualization in the BIOS "
        "and load kvm_intel or kvm_amd.";
  } else if (guest_dir_.empty() || !Exists(kernel) || !Exists(initrd)) {
    v.probed = false;
    v.reason = "/dev/kvm exists but the test guest is missing (" + guest_dir_ +
               "), so KVM could not be probed: using TCG. Run tools/mkguest and pass --guest-dir.";
    return v;  // not cached: probe again when the guest exists
  } else {
    std::string log = work_dir_ + "/kvm-probe.log";
    unlink(log.c_str());
    // The probe guest never powers off by itself: stop it as soon as it is ready.
    std::atomic<bool> ready{false}, done{false};
    std::thread watcher([&] {
      while (!done && !ready) {
        if (TailFile(log, 4096).find("pampa-guest: ready") != std::string::npos) ready = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    auto r = Run({"qemu-system-x86_64",
                  "-accel",
                  "kvm",
                  "-machine",
                  "q35",
                  "-m",
                  "256",
                  "-display",
                  "none",
                  "-no-user-config",
                  "-nodefaults",
                  "-serial",
                  "file:" + log,
                  "-kernel",
                  kernel,
                  "-initrd",
                  initrd,
                  "-append",
                  "console=ttyS0 quiet panic=-1",
                  "-no-reboot"},
                 {.timeout = std::chrono::seconds(20), .cancel = &ready});
    (void)r;
    done = true;
    watcher.join();
    if (ready) {
      v.accel = "kvm";
      v.reason = "KVM works: the test guest booted under KVM";
    } else {
      v.reason =
          "/dev/kvm exists but the test guest did not boot under KVM within 20 s (nested virtualization "
          "broken?): using TCG (slow)";
    }
  }
  nlohmann::json j = {{"host", HostKey()}, {"accel", v.accel}, {"reason", v.reason}};
  Status st = WriteFileAtomic(cache_file_, j.dump());
  if (!st.ok()) log::Warn("cannot cache the KVM probe verdict: {}", st.message());
  return v;
}

}  // namespace pampa
