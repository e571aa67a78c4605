// /api/v1/host: what this host is and whether it is ready to run VMs.
#include <sys/statvfs.h>
#include <unistd.h>

#include "api/api.h"
#include "base/fs.h"
#include "base/process.h"
#include "base/units.h"

namespace pampa {
namespace {

using json = nlohmann::json;

json Check(const std::string& name, const std::string& status, const std::string& detail,
           const std::string& advice = "") {
  return {{"name", name}, {"status", status}, {"detail", detail}, {"advice", advice}};
}

json HostChecks(ApiContext& ctx) {
  json checks = json::array();
  auto qemu = Run({"qemu-system-x86_64", "--version"});
  if (qemu.ok() && qemu->exit_code == 0) {
    checks.push_back(Check("qemu", "ok", qemu->out.substr(0, qemu->out.find('\n'))));
  } else {
    checks.push_back(Check("qemu", "fail", "qemu-system-x86_64 not found", "apt-get install qemu-system-x86"));
  }
  checks.push_back(HaveExecutable("qemu-img") ? Check("qemu-img", "ok", "present")
                                              : Check("qemu-img", "fail", "missing", "apt-get install qemu-utils"));
  bool kvm_dev = access("/dev/kvm", R_OK | W_OK) == 0;
  checks.push_back(kvm_dev ? Check("kvm-device", "ok", "/dev/kvm is accessible")
                           : Check("kvm-device", "warn", "/dev/kvm is missing",
                                   "enable virtualization in the firmware and load kvm_intel/kvm_amd"));
  AccelVerdict v = ctx.accel.Probe();
  std::string st = v.accel == "kvm" ? "ok" : "warn";
  checks.push_back(Check("accelerator", st, "VMs use " + v.accel + ": " + v.reason,
                         v.accel == "kvm" ? "" : "VMs run under TCG (software emulation), several times slower"));
  checks.push_back(HaveExecutable("ip") ? Check("bridge", "ok", "iproute2 present; bridges and taps can be made")
                                        : Check("bridge", "fail", "ip (iproute2) missing", "apt-get install iproute2"));
  checks.push_back(HaveExecutable("dnsmasq") ? Check("dnsmasq", "ok", "present (DHCP for NAT networks)")
                                             : Check("dnsmasq", "fail", "missing: NAT networks give no addresses",
                                                     "apt-get install dnsmasq-base"));
  checks.push_back(HaveExecutable("nft") ? Check("nftables", "ok", "present (masquerade for NAT networks)")
                                         : Check("nftables", "warn", "missing: NAT guests cannot reach outside",
                                                 "apt-get install nftables"));
  auto fwd = ReadFile("/proc/sys/net/ipv4/ip_forward");
  checks.push_back(fwd.ok() && fwd->rfind("1", 0) == 0
                       ? Check("ip-forward", "ok", "enabled")
                       : Check("ip-forward", "warn", "disabled (enabled when a NAT network starts)"));
  if (Exists("/sys/fs/cgroup/cgroup.controllers")) {
    auto ctrl = ReadFile("/sys/fs/cgroup/cgroup.controllers");
    std::string c = ctrl.ok() ? *ctrl : "";
    bool full = c.find("cpu") != std::string::npos && c.find("memory") != std::string::npos;
    checks.push_back(full ? Check("cgroups", "ok", "cgroup v2 with cpu and memory controllers")
                          : Check("cgroups", "warn", "cgroup v2 without cpu/memory controllers (" + c + ")",
                                  "resource limits per VM will not apply"));
  } else if (Exists("/sys/fs/cgroup/cpu") || Exists("/sys/fs/cgroup/memory")) {
    checks.push_back(Check("cgroups", "warn", "cgroup v1 hierarchy",
                           "resource limits need cgroup v2 (systemd.unified_cgroup_hierarchy=1)"));
  } else {
    checks.push_back(Check("cgroups", "warn", "no cgroup hierarchy found"));
  }
  checks.push_back(Exists("/usr/share/OVMF/OVMF_CODE_4M.fd")
                       ? Check("uefi", "ok", "OVMF present")
                       : Check("uefi", "warn", "OVMF missing: --firmware uefi unavailable", "apt-get install ovmf"));
  struct statvfs vfs;
  if (statvfs(ctx.data_dir.c_str(), &vfs) == 0) {
    uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    checks.push_back(avail > (5ull << 30)
                         ? Check("disk-space", "ok", FormatSize(avail) + " free in " + ctx.data_dir)
                         : Check("disk-space", "warn", "only " + FormatSize(avail) + " free in " + ctx.data_dir));
  }
  Status appliance = ctx.files.ApplianceReady();
  checks.push_back(appliance.ok()
                       ? Check("file-restore", "ok",
                               "restore appliance present; " + std::to_string(ctx.files.Running()) + " running")
                       : Check("file-restore", "warn", appliance.message(),
                               "tools/mkguest DIR, then start pampad with --appliance DIR"));
  if (auto schedules = ctx.schedules.List(); schedules.ok()) {
    std::string failed;
    for (auto& sc : *schedules) {
      std::string result = sc.value("last_result", "");
      if (result.rfind("failed", 0) == 0) failed += (failed.empty() ? "" : "; ") + sc.value("id", "") + " " + result;
    }
    checks.push_back(failed.empty() ? Check("backup-schedules", "ok",
                                            std::to_string(schedules->size()) + " schedule(s), none failing")
                                    : Check("backup-schedules", "fail", "last run failed: " + failed,
                                            "fix the cause, then: pampa backup schedule run ID"));
  }
  if (auto drills = ctx.drills.List(); drills.ok()) {
    std::string failed, skipped;
    for (auto& d : *drills) {
      std::string result = d.value("last_result", ""), what = d.value("id", "") + " (" + d.value("vm", "") + ") ";
      if (result.rfind("failed", 0) == 0) failed += (failed.empty() ? "" : "; ") + what + result;
      if (result.rfind("skipped", 0) == 0) skipped += (skipped.empty() ? "" : "; ") + what + result;
    }
    checks.push_back(!failed.empty() ? Check("restore-drills", "fail", "last drill failed: " + failed,
                                             "fix the backup or the check, then: pampa backup drill run ID")
                     : !skipped.empty()
                         ? Check("restore-drills", "warn", "last drill did not run: " + skipped,
                                 "free memory for the scratch VM, then: pampa backup drill run ID")
                         : Check("restore-drills", "ok", std::to_string(drills->size()) + " drill(s), none failing"));
  }
  return checks;
}

}  // namespace

void RegisterHostRoutes(Router& r, ApiContext& ctx) {
  r.Add("GET", "/api/v1/host", [&](const HttpRequest&) {
    auto v = ctx.accel.Current();
    return HttpResponse{200,
                        {{"hostname", ctx.hostname},
                         {"version", ctx.version},
                         {"accel", v.accel},
                         {"accel_reason", v.reason},
                         {"vms", ctx.vms.List().size()}}};
  });
  r.Add("GET", "/api/v1/host/check", [&](const HttpRequest&) {
    json checks = HostChecks(ctx);
    bool ok = true;
    for (auto& c : checks) ok &= c["status"] != "fail";
    return HttpResponse{200, {{"ok", ok}, {"checks", checks}}};
  });
}

}  // namespace pampa
