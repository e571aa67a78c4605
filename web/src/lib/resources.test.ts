import { describe, expect, it } from 'vitest';
import type { Vm } from '../api/types';
import { cpuPinProblem, cpuShareText, isDynamic, limitText, memoryText, parseRate, rateText, type ResourceForm, resourceChanges, resourceForm } from './resources';

const MiB = 2 ** 20;

const vm = (extra: Partial<Vm> = {}): Vm => ({
  name: 'web',
  state: 'running',
  cpus: 2,
  memory_mib: 2048,
  disks: [
    { pool: 'local', volume: 'web-disk0', iops: 0, bps: 0 },
    { pool: 'local', volume: 'web-disk1', iops: 500, bps: 10 * MiB },
  ],
  nics: [{ network: 'default', mac: '52:54:00:00:00:01', bps: 0 }],
  cpu_weight: 100,
  cpu_cap: 0,
  cpu_pin: '',
  memory_min_mib: 0,
  ...extra,
});

const edit = (v: Vm, extra: Partial<ResourceForm>, next?: { cpus: number; memoryMib: number }) => resourceChanges({ ...resourceForm(v), ...extra }, v, next);

describe('resourceForm', () => {
  it('shows the defaults and the limits as they read best', () => {
    expect(resourceForm(vm())).toEqual({
      cpuWeight: '100',
      cpuCap: '',
      cpuPin: '',
      memoryMin: '',
      disks: [
        { iops: '', bps: '' },
        { iops: '500', bps: '10M' },
      ],
      nics: [{ bps: '' }],
    });
  });

  it('takes a VM from an older pampad that sends none of the fields', () => {
    const old: Vm = { name: 'old', state: 'stopped', cpus: 1, memory_mib: 512, disks: [{ pool: 'p', volume: 'v' }], nics: [{ network: 'n', mac: 'm' }] };
    expect(resourceForm(old).cpuWeight).toBe('100');
    expect(resourceChanges(resourceForm(old), old)).toEqual({ body: {} });
  });
});

describe('resourceChanges', () => {
  it('sends nothing when nothing changed, whatever the VM has', () => {
    expect(edit(vm(), {})).toEqual({ body: {} });
    const busy = vm({ cpu_weight: 300, cpu_cap: 150, cpu_pin: '0-1', memory_min_mib: 512, nics: [{ network: 'n', mac: 'm', bps: 1536 * 1024 }] });
    expect(edit(busy, {})).toEqual({ body: {} });
    // What reads the same is the same.
    expect(edit(busy, { cpuPin: ' 0-1 ', memoryMin: '0.5G', nics: [{ bps: '1.5M' }] })).toEqual({ body: {} });
  });

  it('sends the CPU fields that changed', () => {
    expect(edit(vm(), { cpuWeight: '400' })).toEqual({ body: { cpu_weight: 400 } });
    expect(edit(vm(), { cpuCap: '50', cpuPin: '0, 2-3' })).toEqual({ body: { cpu_cap: 50, cpu_pin: '0,2-3' } });
  });

  it('clears the cap and the pin with 0 and ""', () => {
    const v = vm({ cpu_cap: 150, cpu_pin: '1' });
    expect(edit(v, { cpuCap: '', cpuPin: '' })).toEqual({ body: { cpu_cap: 0, cpu_pin: '' } });
    expect(edit(v, { cpuCap: '0' })).toEqual({ body: { cpu_cap: 0 } });
  });

  it('refuses a weight or cap pampad would refuse, saying the limits', () => {
    for (const bad of ['', '0', '10001', '1.5', 'high']) {
      expect(edit(vm(), { cpuWeight: bad })).toEqual({ error: expect.stringContaining('CPU weight must be a whole number from 1 to 10000') });
    }
    expect(edit(vm(), { cpuCap: '201' })).toEqual({ error: expect.stringContaining('from 0 (no cap) to 200 (2 vCPUs') });
    expect(edit(vm(), { cpuCap: '-5' })).toEqual({ error: expect.stringContaining('CPU cap') });
    // The cap is held to the CPUs the VM will have once saved.
    expect(edit(vm({ state: 'stopped' }), { cpuCap: '400' }, { cpus: 4, memoryMib: 2048 })).toEqual({ body: { cpu_cap: 400 } });
    expect(edit(vm(), { cpuCap: '150' }, { cpus: 1, memoryMib: 2048 })).toEqual({ error: expect.stringContaining('to 100 (1 vCPU at') });
    // A cap the VM has is held to fewer CPUs too.
    expect(edit(vm({ state: 'stopped', cpu_cap: 150 }), {}, { cpus: 1, memoryMib: 2048 })).toEqual({ error: expect.stringContaining('to 100 (1 vCPU at') });
    expect(edit(vm({ state: 'stopped', cpu_cap: 150 }), {}, { cpus: 4, memoryMib: 2048 })).toEqual({ body: {} });
  });

  it('refuses a cap that would starve the guest, as pampad does', () => {
    for (const starving of ['1', '4']) {
      expect(edit(vm(), { cpuCap: starving })).toEqual({ error: `a CPU cap of ${starving} % would starve the guest: give at least 5 (percent of one core), or 0 for no cap` });
    }
    expect(edit(vm(), { cpuCap: '5' })).toEqual({ body: { cpu_cap: 5 } });
  });

  it('refuses a pin that lists no cores, or cores the host does not have', () => {
    expect(edit(vm(), { cpuPin: '0-' })).toEqual({ error: expect.stringContaining('"0-" is no core or range') });
    expect(edit(vm(), { cpuPin: '3-1' })).toEqual({ error: 'CPU pin: the range 3-1 goes backwards (write 1-3)' });
    const v = vm();
    expect(resourceChanges({ ...resourceForm(v), cpuPin: '2-4' }, v, undefined, 4)).toEqual({ error: 'CPU pin: this host has no CPU 4 (its CPUs: 0-3)' });
    expect(resourceChanges({ ...resourceForm(v), cpuPin: '2-3' }, v, undefined, 4)).toEqual({ body: { cpu_pin: '2-3' } });
    // The host's size unknown: pampad says.
    expect(edit(v, { cpuPin: '63' })).toEqual({ body: { cpu_pin: '63' } });
  });

  it('turns dynamic memory on and off with memory_min_mib', () => {
    expect(edit(vm(), { memoryMin: '512M' })).toEqual({ body: { memory_min_mib: 512 } });
    expect(edit(vm(), { memoryMin: '1G' })).toEqual({ body: { memory_min_mib: 1024 } });
    expect(edit(vm({ memory_min_mib: 512 }), { memoryMin: '' })).toEqual({ body: { memory_min_mib: 0 } });
    expect(edit(vm({ memory_min_mib: 512 }), { memoryMin: '0' })).toEqual({ body: { memory_min_mib: 0 } });
  });

  it('refuses a minimum that is no size, under 16 MiB, or more than the memory', () => {
    expect(edit(vm(), { memoryMin: 'lots' })).toEqual({ error: 'minimum memory must be a size such as 512M or 1G (empty or 0: static memory)' });
    expect(edit(vm(), { memoryMin: '100K' })).toEqual({ error: expect.stringContaining('at least 16 MiB') });
    expect(edit(vm(), { memoryMin: '8M' })).toEqual({ error: expect.stringContaining('at least 16 MiB') });
    expect(edit(vm(), { memoryMin: '3G' })).toEqual({
      error: "minimum memory (3 GiB) is more than the VM's memory (2 GiB): give a smaller minimum, or empty or 0 for static memory",
    });
    // As much as the memory is allowed (pampad takes it: the memory stays static).
    expect(edit(vm(), { memoryMin: '2G' })).toEqual({ body: { memory_min_mib: 2048 } });
    // Memory lowered below a minimum it already has: said before pampad is asked.
    expect(edit(vm({ state: 'stopped', memory_min_mib: 1024 }), {}, { cpus: 2, memoryMib: 512 })).toEqual({ error: expect.stringContaining("more than the VM's memory (512 MiB)") });
    expect(edit(vm({ state: 'stopped', memory_min_mib: 512 }), {}, { cpus: 2, memoryMib: 1024 })).toEqual({ body: {} });
  });

  it("sends a changed disk's whole limit, 0 for none, and leaves the others alone", () => {
    const v = vm();
    expect(edit(v, { disks: [{ iops: '200', bps: '' }, { iops: '500', bps: '10M' }] })).toEqual({ body: { disk_limits: [{ disk: 0, iops: 200, bps: 0 }] } });
    expect(edit(v, { disks: [{ iops: '', bps: '' }, { iops: '', bps: '20 MiB/s' }] })).toEqual({ body: { disk_limits: [{ disk: 1, iops: 0, bps: 20 * MiB }] } });
  });

  it('sends changed NIC limits', () => {
    expect(edit(vm(), { nics: [{ bps: '100M' }] })).toEqual({ body: { nic_limits: [{ nic: 0, bps: 100 * MiB }] } });
    expect(edit(vm({ nics: [{ network: 'n', mac: 'm', bps: MiB }] }), { nics: [{ bps: '' }] })).toEqual({ body: { nic_limits: [{ nic: 0, bps: 0 }] } });
  });

  it('names the disk or NIC whose limit is wrong', () => {
    expect(edit(vm(), { disks: [{ iops: 'fast', bps: '' }, { iops: '500', bps: '10M' }] })).toEqual({ error: expect.stringMatching(/^disk 0: I\/O operations/) });
    expect(edit(vm(), { disks: [{ iops: '', bps: '' }, { iops: '500', bps: '10 furlongs' }] })).toEqual({ error: expect.stringMatching(/^disk 1: bandwidth/) });
    expect(edit(vm(), { nics: [{ bps: '-1M' }] })).toEqual({ error: expect.stringMatching(/^NIC 0: bandwidth/) });
    expect(edit(vm(), { disks: [{ iops: '1000001', bps: '' }, { iops: '500', bps: '10M' }] })).toEqual({ error: expect.stringMatching(/^disk 0: .* up to 1000000/) });
  });

  it('refuses a bandwidth under 64 KiB/s that would stall the guest, or over 1 TiB/s', () => {
    expect(edit(vm(), { nics: [{ bps: '32K' }] })).toEqual({ error: expect.stringMatching(/^NIC 0: a bandwidth under 64 KiB\/s would stall the guest/) });
    expect(edit(vm(), { disks: [{ iops: '', bps: '1000B' }, { iops: '500', bps: '10M' }] })).toEqual({ error: expect.stringMatching(/^disk 0: a bandwidth under 64 KiB/) });
    expect(edit(vm(), { nics: [{ bps: '64K' }] })).toEqual({ body: { nic_limits: [{ nic: 0, bps: 65536 }] } });
    expect(edit(vm(), { nics: [{ bps: '2T' }] })).toEqual({ error: expect.stringContaining('at most 1 TiB/s') });
  });

  it('skips a disk added since the form was filled', () => {
    const v = vm();
    const form = resourceForm({ ...v, disks: v.disks.slice(0, 1) });
    expect(resourceChanges(form, v)).toEqual({ body: {} });
  });

  it('sends every kind at once', () => {
    expect(edit(vm(), { cpuWeight: '50', memoryMin: '768M', nics: [{ bps: '1G' }] })).toEqual({
      body: { cpu_weight: 50, memory_min_mib: 768, nic_limits: [{ nic: 0, bps: 2 ** 30 }] },
    });
  });
});

describe('rates', () => {
  it('read back as typed', () => {
    for (const bps of [0, 1024, 1536 * 1024, 10 * MiB, 2 ** 30, 1_000_000, 65536]) expect(parseRate(rateText(bps))).toBe(bps);
    expect(rateText(10 * MiB)).toBe('10M');
    expect(rateText(1_000_000)).toBe('1000000B');
    expect(rateText(undefined)).toBe('');
  });

  it('take units, a bare number as MiB/s, and nothing else', () => {
    expect(parseRate('500K')).toBe(500 * 1024);
    expect(parseRate('1.5g')).toBe(1.5 * 2 ** 30);
    expect(parseRate(' 10 MB/s ')).toBe(10 * MiB);
    expect(parseRate('8')).toBe(8 * MiB);
    expect(parseRate('100000b')).toBe(100000);
    expect(parseRate('')).toBe(0);
    expect(parseRate('0')).toBe(0);
    expect(parseRate('ten')).toBeNaN();
    expect(parseRate('5X')).toBeNaN();
  });
});

describe('cpuPinProblem', () => {
  it('takes lists of cores and ranges', () => {
    for (const ok of ['', '0', '0-1', '0-1,3', '2, 4-7']) expect(cpuPinProblem(ok)).toBe('');
    for (const bad of ['a', '1-', '-1', '1,,2', '1-2-3']) expect(cpuPinProblem(bad)).not.toBe('');
  });
});

describe('how the Summary says it', () => {
  it('says the CPU share', () => {
    expect(cpuShareText(vm())).toBe('weight 100 (the default), no cap, any host core');
    expect(cpuShareText(vm({ cpu_weight: 200, cpu_cap: 150, cpu_pin: '0-1' }))).toBe('weight 200, at most 150 % of one core, on host cores 0-1');
  });

  it('says static or dynamic memory and what the guest has now', () => {
    expect(memoryText(vm())).toBe('2 GiB');
    expect(memoryText(vm({ memory_min_mib: 2048 }))).toBe('2 GiB');
    expect(isDynamic(vm({ memory_min_mib: 512 }))).toBe(true);
    expect(memoryText(vm({ memory_min_mib: 512 }))).toBe('2 GiB, dynamic: at least 512 MiB');
    expect(memoryText(vm({ memory_min_mib: 512, balloon_mib: 1280 }))).toBe('2 GiB, dynamic: at least 512 MiB; the guest has 1.25 GiB now');
    expect(memoryText(vm({ state: 'stopped', memory_min_mib: 512, balloon_mib: 1280 }))).toBe('2 GiB, dynamic: at least 512 MiB');
  });

  it('says limits', () => {
    expect(limitText({})).toBe('none');
    expect(limitText({ iops: 500, bps: 10 * MiB })).toBe('500 IOPS, 10 MiB/s');
    expect(limitText({ iops: 0, bps: MiB })).toBe('1 MiB/s');
  });
});
