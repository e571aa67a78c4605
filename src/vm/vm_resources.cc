// A VM's share of the host: CPU weight, cap and pin (qemu/cgroups.h), disk
// limits (QEMU's throttling) and NIC limits (tc on its taps), changed while it
// runs without the guest noticing. The balloon controller (resources/) moves
// dynamic memory; this file only gives a VM its memory back when dynamic
// memory is turned off.
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/units.h"
#include "qemu/cgroups.h"
#include "vm/vm_internal.h"
#include "vm/vm_manager.h"

namespace pampa {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

bool CpuDefaults(const VmSpec& s) { return s.cpu_weight == 100 && s.cpu_cap == 0; }

}  // namespace

Status VmManager::ChangeResources(const EditRequest& req, VmSpec* s) {
  if (req.cpu_weight) s->cpu_weight = *req.cpu_weight;
  if (req.cpu_cap) s->cpu_cap = *req.cpu_cap;
  if (s->cpu_cap > 100 * s->cpus) {
    return Status::Invalid("a cap of " + std::to_string(s->cpu_cap) + "% is more than vm '" + s->name + "' can use (" +
                           std::to_string(s->cpus) + " vCPU(s): at most " + std::to_string(100 * s->cpus) +
                           "%); give 0 for no cap");
  }
  if (req.cpu_pin) {
    if (!req.cpu_pin->empty()) PAMPA_RETURN_IF_ERROR(CheckCpuList(*req.cpu_pin).Context("cpu pin"));
    s->cpu_pin = *req.cpu_pin;
  }
  if (req.memory_min_mib) s->memory_min_mib = *req.memory_min_mib;
  if (s->memory_min_mib > s->memory_mib) {
    return Status::Invalid("the minimum memory (" + std::to_string(s->memory_min_mib) + " MiB) is more than vm '" +
                           s->name + "' has (" + std::to_string(s->memory_mib) +
                           " MiB): give a smaller minimum, or 0 for static memory");
  }
  for (const EditRequest::Limit& l : req.disk_limits) {
    if (l.index >= s->disks.size()) {
      return Status::NotFound("vm '" + s->name + "' has no disk " + std::to_string(l.index) + " (it has " +
                              std::to_string(s->disks.size()) + ", numbered from 0)");
    }
    if (l.iops) s->disks[l.index].iops = *l.iops;
    if (l.bps) s->disks[l.index].bps = *l.bps;
  }
  for (const EditRequest::Limit& l : req.nic_limits) {
    if (l.index >= s->nics.size()) {
      return Status::NotFound("vm '" + s->name + "' has no NIC " + std::to_string(l.index) + " (it has " +
                              std::to_string(s->nics.size()) + ", numbered from 0)");
    }
    if (l.bps) s->nics[l.index].bps = *l.bps;
  }
  return Status::Ok();
}

Status VmManager::ApplyResources(Vm& vm, const VmSpec& s, const VmSpec* before) {
  const std::string& name = s.name;
  Cgroups& cg = Cgroups::Host();
  // Every VM gets its cgroup (its CPU time is counted there); only a VM with
  // a weight or cap fails without one.
  if (!before) {
    Status placed = cg.Place(s.uuid, vm.pid);
    if (!placed.ok() && !CpuDefaults(s)) return placed.Context("CPU weight and cap");
    if (!placed.ok()) log::Debug("vm {}: not in a cgroup: {}", name, placed.message());
  }
  if (!before || before->cpu_weight != s.cpu_weight || before->cpu_cap != s.cpu_cap) {
    if (cg.available() || !CpuDefaults(s)) {
      PAMPA_RETURN_IF_ERROR(cg.SetCpu(s.uuid, {s.cpu_weight, s.cpu_cap}).Context("CPU weight and cap"));
    }
  }
  if (!vm.qmp || !vm.qmp->connected()) {
    return Status::Unavailable("vm '" + name + "': QEMU's QMP does not answer, so its limits cannot be set now");
  }
  QmpClient& qmp = *vm.qmp;
  if (before ? before->cpu_pin != s.cpu_pin : !s.cpu_pin.empty()) {
    std::vector<int> pin;
    if (!s.cpu_pin.empty()) {
      PAMPA_ASSIGN_OR_RETURN(pin, ParseCpuList(s.cpu_pin));
    }
    PAMPA_RETURN_IF_ERROR(cg.Pin(s.uuid, vm.pid, pin).Context("pinning vm '" + name + "'"));
  }
  // The same device before is the one in the same slot (a device that left
  // a running VM moved the ones after it down a position).
  auto same = [](const auto& devices, size_t slot, auto slot_of) -> decltype(&devices[0]) {
    for (size_t j = 0; j < devices.size(); ++j) {
      if (slot_of(j) == slot) return &devices[j];
    }
    return nullptr;
  };
  for (size_t i = 0; i < s.disks.size(); ++i) {
    const DiskSpec& d = s.disks[i];
    const size_t slot = DiskSlot(s, i);
    const DiskSpec* was = before ? same(before->disks, slot, [&](size_t j) { return DiskSlot(*before, j); }) : nullptr;
    bool changed = was ? was->iops != d.iops || was->bps != d.bps : d.iops || d.bps;
    if (!changed) continue;
    // virtio-blk's block backend is on the device inside its PCI proxy.
    std::string target = DiskDeviceId(slot, d.bus);
    if (d.bus == DiskBus::kVirtio) target = "/machine/peripheral/" + target + "/virtio-backend";
    auto r = qmp.Execute("block_set_io_throttle", {{"id", target},
                                                   {"bps", d.bps},
                                                   {"bps_rd", 0},
                                                   {"bps_wr", 0},
                                                   {"iops", d.iops},
                                                   {"iops_rd", 0},
                                                   {"iops_wr", 0}});
    if (!r.ok()) return r.status().Context("limiting disk " + std::to_string(i));
  }
  for (size_t i = 0; i < s.nics.size(); ++i) {
    const size_t slot = NicSlot(s, i);
    const NicSpec* was = before ? same(before->nics, slot, [&](size_t j) { return NicSlot(*before, j); }) : nullptr;
    bool changed = was ? was->bps != s.nics[i].bps : s.nics[i].bps > 0;
    if (changed)
      PAMPA_RETURN_IF_ERROR(Networks::LimitTap(TapName(s, i), s.nics[i].bps).Context("NIC " + std::to_string(i)));
  }
  if (!before) {
    // The guest's own memory figures, every 5 s, for the metrics and the
    // balloon controller (a guest without the balloon driver gives none).
    auto r = qmp.Execute(
        "qom-set",
        {{"path", "/machine/peripheral/balloon0"}, {"property", "guest-stats-polling-interval"}, {"value", 5}});
    if (!r.ok()) log::Debug("vm {}: no balloon statistics: {}", name, r.status().message());
  } else if (DynamicMemory(*before) && !DynamicMemory(s)) {
    auto r = qmp.Execute("balloon", {{"value", s.memory_mib << 20}});
    if (!r.ok()) return r.status().Context("giving vm '" + name + "' its whole memory back");
  }
  return Status::Ok();
}

}  // namespace pampa
