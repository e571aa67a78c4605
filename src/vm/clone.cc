// Clones, templates and renames: a VM made from another's disks, a VM that
// only serves as the source of clones, and a VM under a new name.
//
// A full clone converts each disk into a new qcow2 volume (of one of the
// source's snapshots when asked: the source may then run). A linked clone's
// disks are qcow2 overlays whose backing file is the template's volume; a
// template never runs or changes, so what its clones read from it stays true,
// and it cannot be deleted while a linked clone needs it (the clone's spec
// names its base, `DiskSpec::base`).
#include <unistd.h>

#include <filesystem>

#include "base/clock.h"
#include "base/log.h"
#include "base/units.h"
#include "vm/vm_internal.h"
#include "vm/vm_manager.h"

namespace pampa {
namespace {

using json = nlohmann::json;

}  // namespace

Result<std::string> VmManager::Clone(const CloneRequest& req) {
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", req.name));
  PAMPA_ASSIGN_OR_RETURN(auto src, Find(req.source));
  if (!req.pool.empty()) PAMPA_RETURN_IF_ERROR(storage_.GetPool(req.pool).status());
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(src, VmOp::kClone, VmAction::kClone));
  const VmSpec& from = src->spec;
  const std::string& source = from.name;
  if (req.linked && !from.is_template) {
    return Status::Conflict("vm '" + source + "' is not a template; a linked clone needs one (pampa vm template " +
                            source + "), or make a full clone without --linked");
  }
  if (!req.snapshot.empty()) {
    PAMPA_ASSIGN_OR_RETURN(auto snap, store_.Get("snapshots/" + source + "/" + req.snapshot));
    if (!snap) {
      return Status::NotFound("vm '" + source + "' has no snapshot '" + req.snapshot + "' (see: pampa snapshot list " +
                              source + ")");
    }
    PAMPA_RETURN_IF_ERROR(Qcow2Disks(from).status());
  } else if (QemuAlive(src->State())) {
    return Status::Conflict("vm '" + source + "' is " + std::string(Name(src->State())) +
                            ": stop it, or clone one of its snapshots (--snapshot NAME)");
  }
  VmSpec spec = from;
  spec.name = req.name;
  spec.uuid = NewUuid();
  spec.host = config_.hostname;
  spec.is_template = false;
  spec.autostart = false;
  for (auto& nic : spec.nics) nic.mac = NewMac();
  if (req.cloud_init) PAMPA_RETURN_IF_ERROR(ApplyCloudInit(*req.cloud_init, &spec.cloud_init));
  PAMPA_RETURN_IF_ERROR(CheckCloudInit(spec));
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    DiskSpec& d = spec.disks[i];
    d.base = req.linked ? from.disks[i].pool + "/" + from.disks[i].volume : "";
    if (!req.linked && !req.pool.empty()) d.pool = req.pool;
    PAMPA_ASSIGN_OR_RETURN(d.volume, NewDiskVolume(spec.name, i, d.pool));
  }
  // Recorded with a create intent: a pampad that dies mid-copy removes the
  // half-made clone at its next start.
  PAMPA_ASSIGN_OR_RETURN(auto hold, HoldNewVm(spec, VmOp::kCreate, "create"));
  auto held = std::make_shared<std::pair<OperationLease, Hold>>(std::move(lease), std::move(hold));
  std::string vars_from = VarsPath(source), vars_to = VarsPath(spec.name);
  return tasks_.Start(
      "vm-clone", spec.name, [this, held, from, spec, req, vars_from, vars_to](TaskContext& ctx) -> Result<json> {
        auto owned = std::move(*held);  // both given back on every return
        VmSpec made{.name = spec.name};
        auto fail = [&](const Status& st) -> Result<json> {
          RemoveVolumes(made);
          unlink(vars_to.c_str());
          Abandon(owned.second, "create");
          return st;
        };
        size_t n = spec.disks.size();
        for (size_t i = 0; i < n; ++i) {
          const DiskSpec &s = from.disks[i], &d = spec.disks[i];
          if (req.linked) {
            ctx.Log("linking " + d.volume + " to " + d.base);
          } else {
            ctx.Log("copying " + s.pool + "/" + s.volume +
                    (req.snapshot.empty() ? "" : " at snapshot " + req.snapshot) + " to " + d.pool + "/" + d.volume);
          }
          auto progress = [&](double f) {
            ctx.Progress((double(i) + f) / double(n) * 0.99, "copying disk " + std::to_string(i));
          };
          auto v = req.linked ? storage_.CreateLinkedVolume(d.pool, s.volume, d.volume)
                              : storage_.CopyVolume(s.pool, s.volume, d.pool, d.volume, req.snapshot, progress,
                                                    ctx.cancel_flag());
          if (!v.ok()) return fail(v.status().Context("disk " + std::to_string(i)));
          made.disks.push_back(d);
        }
        if (spec.firmware == "uefi" && access(vars_from.c_str(), F_OK) == 0) {
          std::error_code ec;
          std::filesystem::copy_file(vars_from, vars_to, std::filesystem::copy_options::overwrite_existing, ec);
          if (ec) return fail(Status::Internal("cannot copy the UEFI variables of " + from.name + ": " + ec.message()));
        }
        if (Status st = Keep(owned.second, "create"); !st.ok()) return fail(st);
        owned.second.Release();
        owned.first.Release();
        events_.Publish({{"type", "vm"}, {"vm", spec.name}, {"state", "stopped"}, {"created", true}});
        log::Info("vm {}: cloned from {}{}", spec.name, from.name, req.linked ? " (linked)" : "");
        return json{{"vm", spec.name}, {"uuid", spec.uuid}, {"source", from.name}, {"linked", req.linked}};
      });
}

Status VmManager::MakeTemplate(const std::string& name) {
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kTemplate, VmAction::kTemplate));
  PAMPA_ASSIGN_OR_RETURN(auto snaps, store_.List("snapshots/" + name + "/"));
  if (!snaps.empty()) {
    return Status::Conflict("vm '" + name + "' has " + std::to_string(snaps.size()) +
                            " snapshot(s); a template is one fixed state: delete them first (pampa snapshot list " +
                            name + ")");
  }
  PAMPA_RETURN_IF_ERROR(Qcow2Disks(vm->spec).status());
  VmSpec s = vm->spec;
  s.is_template = true;
  s.autostart = false;
  PAMPA_RETURN_IF_ERROR(ReplaceSpec(*vm, s));
  log::Info("vm {}: now a template", name);
  return Status::Ok();
}

Result<std::vector<std::string>> VmManager::LinkedClones(const VmSpec& base) {
  PAMPA_ASSIGN_OR_RETURN(auto kvs, store_.List("vms/"));  // the whole pool's: a clone may run elsewhere
  std::vector<std::string> out;
  for (auto& [key, text] : kvs) {
    auto spec = VmSpecFromJson(json::parse(text, nullptr, false));
    if (!spec.ok()) continue;
    for (const DiskSpec& d : spec->disks) {
      bool on_base = std::any_of(base.disks.begin(), base.disks.end(),
                                 [&](const DiskSpec& b) { return d.base == b.pool + "/" + b.volume; });
      if (on_base) {
        out.push_back(spec->name);
        break;
      }
    }
  }
  return out;
}

Status VmManager::Rename(const std::string& name, const std::string& to) {
  PAMPA_RETURN_IF_ERROR(ValidateName("vm", to));
  PAMPA_ASSIGN_OR_RETURN(auto vm, Find(name));
  if (to == name) return Status::Invalid("vm '" + name + "' already has that name");
  PAMPA_ASSIGN_OR_RETURN(auto lease, Claim(vm, VmOp::kRename, VmAction::kRename));
  VmSpec s = vm->spec;
  s.name = to;
  auto renamed = Register(s, VmOp::kRename);
  if (!renamed) return Status::Conflict("vm '" + to + "' already exists");
  OperationLease new_lease(this, renamed, VmOp::kRename);
  // Every record that names the VM moves in one transaction.
  Txn txn;
  txn.IfModRevision(SpecKey(name), vm->spec_revision)
      .IfAbsent(SpecKey(to))
      .Delete(SpecKey(name))
      .Put(SpecKey(to), ToJson(s).dump())
      .Delete(RuntimeKey(name))
      .DeletePrefix("snapshots/" + name + "/")
      .Delete("snapshot-current/" + name);
  auto fail = [&](const Status& st) {
    new_lease.Release();
    Forget(*renamed);
    return st;
  };
  auto snaps = store_.List("snapshots/" + name + "/");
  auto current = store_.Get("snapshot-current/" + name);
  auto states = store_.List("backup-state/");
  auto schedules = store_.List("schedules/");
  for (const Status& st : {snaps.status(), current.status(), states.status(), schedules.status()}) {
    if (!st.ok()) return fail(st.Context("renaming vm " + name));
  }
  for (auto& [key, value] : *snaps) txn.Put("snapshots/" + to + "/" + key.substr(key.rfind('/') + 1), value);
  if (*current) txn.Put("snapshot-current/" + to, **current);
  // Backup chains (backup-state/REPO/VM) keep going: the next backup of the
  // new name is incremental on the last one of the old.
  std::string suffix = "/" + name;
  for (auto& [key, value] : *states) {
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
      txn.Delete(key).Put(key.substr(0, key.size() - suffix.size()) + "/" + to, value);
    }
  }
  for (auto& [key, value] : *schedules) {
    json j = json::parse(value, nullptr, false);
    if (!j.is_object() || !j.contains("vms") || !j["vms"].is_array()) continue;
    bool named = false;
    for (auto& v : j["vms"]) {
      if (v == name) {
        v = to;
        named = true;
      }
    }
    if (named) txn.IfValue(key, value).Put(key, j.dump());
  }
  std::string vars = VarsPath(name), new_vars = VarsPath(to);
  bool has_vars = access(vars.c_str(), F_OK) == 0;
  if (has_vars && link(vars.c_str(), new_vars.c_str()) != 0) {
    return fail(Status::Internal("cannot name the UEFI variables of vm " + to + " (" + new_vars + ")"));
  }
  auto rev = CommitResolved(store_, txn);
  if (!rev.ok()) {
    if (has_vars) unlink(new_vars.c_str());
    if (rev.status().code() == ErrorCode::kConflict) {
      return fail(Status::Conflict("vm '" + name + "' or '" + to +
                                   "' was changed elsewhere since it was read (or the new name is taken); try again"));
    }
    return fail(rev.status().Context("renaming vm " + name));
  }
  if (has_vars) unlink(vars.c_str());
  unlink(CloudInitSeedPath(name).c_str());  // made again under the new name at the next start
  renamed->spec_revision = *rev;
  std::string reason;
  VmState state;
  {
    MutexLock lock(&vm->mu);
    state = vm->state;
    reason = vm->reason;
  }
  Forget(*vm);
  lease.Release();
  SetState(*renamed, state, reason);
  if (state == VmState::kCrashed) {
    if (Status st = PersistRuntime(*renamed); !st.ok()) log::Warn("vm {}: {}", to, st.message());
  }
  new_lease.Release();
  events_.Publish({{"type", "vm"}, {"vm", to}, {"state", Name(state)}, {"created", true}, {"renamed_from", name}});
  log::Info("vm {}: renamed {}", name, to);
  return Status::Ok();
}

}  // namespace pampa
