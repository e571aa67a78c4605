import { describe, expect, it } from 'vitest';
import type { Vm } from '../api/types';
import { resourceForm } from './resources';
import { configChanges, configForm, editRequest } from './vmconfig';

const vm = (extra: Partial<Vm> = {}): Vm => ({
  name: 'web',
  state: 'running',
  cpus: 2,
  memory_mib: 2048,
  disks: [{ pool: 'shared', volume: 'web-disk0' }],
  nics: [],
  autostart: false,
  ...extra,
});

const edit = (v: Vm, extra: Partial<ReturnType<typeof configForm>>) => configChanges({ ...configForm(v), ...extra }, v);

describe('configChanges', () => {
  it('sends nothing when nothing changed, HA on or off', () => {
    expect(edit(vm(), {})).toEqual({ body: {} });
    expect(edit(vm({ ha: true, ha_priority: 500 }), {})).toEqual({ body: {} });
  });

  it('sends only the fields changed', () => {
    expect(edit(vm(), { autostart: true, cdrom: '/isos/debian.iso' })).toEqual({ body: { autostart: true, cdrom: '/isos/debian.iso' } });
    expect(edit(vm(), { cpus: '4', memory: ' 4G ' })).toEqual({ body: { cpus: 4, memory: '4G' } });
  });

  it('turns HA on with the priority shown, which pampad does not say for a VM without HA', () => {
    expect(configForm(vm()).haPriority).toBe('0');
    expect(edit(vm(), { ha: true })).toEqual({ body: { ha: true, ha_priority: 0 } });
    expect(edit(vm(), { ha: true, haPriority: '700' })).toEqual({ body: { ha: true, ha_priority: 700 } });
  });

  it('turns HA off without a priority', () => {
    expect(edit(vm({ ha: true, ha_priority: 500 }), { ha: false })).toEqual({ body: { ha: false } });
    expect(edit(vm({ ha: true, ha_priority: 500 }), { ha: false, haPriority: '900' })).toEqual({ body: { ha: false } });
  });

  it('sends the priority of an HA VM only when it changed', () => {
    const ha = vm({ ha: true, ha_priority: 500 });
    expect(configForm(ha).haPriority).toBe('500');
    expect(edit(ha, { haPriority: ' 500 ' })).toEqual({ body: {} });
    expect(edit(ha, { haPriority: '1000' })).toEqual({ body: { ha_priority: 1000 } });
    expect(edit(ha, { haPriority: '0' })).toEqual({ body: { ha_priority: 0 } });
  });

  it("refuses a priority pampad would refuse, saying pampad's limits", () => {
    for (const bad of ['', '-1', '1001', '2.5', 'high']) {
      expect(edit(vm({ ha: true, ha_priority: 5 }), { haPriority: bad })).toEqual({
        error: 'HA priority must be a whole number from 0 to 1000 (higher restarts first)',
      });
    }
    // Without HA the priority field is off: whatever it holds is not sent.
    expect(edit(vm(), { haPriority: 'high' })).toEqual({ body: {} });
  });
});

describe('editRequest', () => {
  const both = (v: Vm, config: Partial<ReturnType<typeof configForm>>, resources: Partial<ReturnType<typeof resourceForm>>, hostCpus?: number) =>
    editRequest({ ...configForm(v), ...config }, { ...resourceForm(v), ...resources }, v, hostCpus);

  it('sends the configuration and the resources that changed in one body', () => {
    expect(both(vm(), {}, {})).toEqual({ body: {} });
    expect(both(vm(), { autostart: true }, { cpuWeight: '300', nics: [] })).toEqual({ body: { autostart: true, cpu_weight: 300 } });
  });

  it('holds the cap and the minimum to the CPUs and memory the VM will have', () => {
    const stopped = vm({ state: 'stopped' });
    expect(both(stopped, { cpus: '4' }, { cpuCap: '400' })).toEqual({ body: { cpus: 4, cpu_cap: 400 } });
    expect(both(stopped, { cpus: '1' }, { cpuCap: '150' })).toEqual({ error: expect.stringContaining('to 100 (1 vCPU') });
    expect(both(stopped, { memory: '4G' }, { memoryMin: '3G' })).toEqual({ body: { memory: '4G', memory_min_mib: 3072 } });
    expect(both(vm({ state: 'stopped', memory_min_mib: 1024 }), { memory: '512M' }, {})).toEqual({ error: expect.stringContaining("more than the VM's memory (512 MiB)") });
  });

  it('says what is wrong with either part', () => {
    expect(both(vm({ ha: true, ha_priority: 1 }), { haPriority: 'x' }, {})).toEqual({ error: expect.stringContaining('HA priority') });
    expect(both(vm(), {}, { cpuPin: '2-4' }, 4)).toEqual({ error: 'CPU pin: this host has no CPU 4 (its CPUs: 0-3)' });
  });
});
