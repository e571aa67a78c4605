// The Configuration tab's form and the PATCH /api/v1/vms/{name} body it
// sends: only what changed, so a running VM is asked only for what may
// change while it runs (autostart, the CD, HA) and pampad's refusal of the
// rest names what was asked. The resource fields (lib/resources.ts: CPU
// share, dynamic memory, disk and NIC limits) go in the same request. Pure
// functions, unit tested in vmconfig.test.ts.
import type { Vm } from '../api/types';
import { parseSizeMib } from './format';
import { type ResourceForm, resourceChanges } from './resources';

export interface ConfigForm {
  cpus: string;
  /** With a unit: 512M, 2G. */
  memory: string;
  autostart: boolean;
  cdrom: string;
  kernel: string;
  initrd: string;
  append: string;
  firmware: string;
  ha: boolean;
  /** 0..1000, higher restarts first; only with ha on. */
  haPriority: string;
}

/** The form as the VM is now. */
export function configForm(vm: Vm): ConfigForm {
  return {
    cpus: String(vm.cpus),
    memory: `${vm.memory_mib}M`,
    autostart: !!vm.autostart,
    cdrom: vm.cdrom ?? '',
    kernel: vm.kernel ?? '',
    initrd: vm.initrd ?? '',
    append: vm.append ?? '',
    firmware: vm.firmware || 'bios',
    ha: !!vm.ha,
    haPriority: String(vm.ha_priority ?? 0),
  };
}

/** The fields of the form that differ from the VM, as the PATCH body ({} when none), or what is wrong with them. */
export function configChanges(f: ConfigForm, vm: Vm): { body: Record<string, unknown> } | { error: string } {
  const base = configForm(vm);
  const body: Record<string, unknown> = {};
  if (f.cpus !== base.cpus) body.cpus = Number(f.cpus);
  if (f.memory.trim() !== base.memory) body.memory = f.memory.trim();
  if (f.autostart !== base.autostart) body.autostart = f.autostart;
  for (const k of ['cdrom', 'kernel', 'initrd', 'append', 'firmware'] as const) {
    if (f[k] !== base[k]) body[k] = f[k];
  }
  if (f.ha !== base.ha) body.ha = f.ha;
  // pampad says no priority for a VM without HA (the form shows 0): turning
  // HA on sends the one shown, so what the form said is what the VM gets.
  const priority = f.haPriority.trim();
  if (f.ha && (priority !== base.haPriority || !base.ha)) {
    if (!/^\d+$/.test(priority) || Number(priority) > 1000) {
      return { error: 'HA priority must be a whole number from 0 to 1000 (higher restarts first)' };
    }
    body.ha_priority = Number(priority);
  }
  return { body };
}

/**
 * The tab's one PATCH: the configuration and the resource fields that
 * changed ({} when none), or the first thing wrong with them. The cap and
 * the memory minimum are held to the CPUs and memory the VM will have.
 */
export function editRequest(config: ConfigForm, resources: ResourceForm, vm: Vm, hostCpus?: number): { body: Record<string, unknown> } | { error: string } {
  const c = configChanges(config, vm);
  if ('error' in c) return c;
  const cpus = typeof c.body.cpus === 'number' ? c.body.cpus : vm.cpus;
  const memoryMib = typeof c.body.memory === 'string' ? Math.floor(parseSizeMib(c.body.memory)) : vm.memory_mib;
  const r = resourceChanges(resources, vm, { cpus, memoryMib }, hostCpus);
  if ('error' in r) return r;
  return { body: { ...c.body, ...r.body } };
}
