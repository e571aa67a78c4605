import { describe, expect, it } from 'vitest';
import type { Capacity } from '../api/types';
import { capacityRows, dynamicText, fitsSize, fitsText, ksmText, overcommitText, ratioText } from './capacity';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const ksm = { available: true, run: true, pages_shared: 100, pages_sharing: 900, saved_bytes: 900 * 4096 };

const capacity = (extra: Partial<Capacity> = {}): Capacity => ({
  host: 'h1',
  cpus: 4,
  vms_running: 3,
  vcpus: 6,
  cpu_overcommit: 1.5,
  memory_bytes: 16 * GiB,
  memory_committed_bytes: 8 * GiB,
  memory_min_committed_bytes: 6 * GiB,
  memory_overcommit: 0.5,
  balloon_saved_bytes: GiB,
  ksm,
  reserve_bytes: 2 * GiB,
  free_bytes: 5 * GiB,
  fits: { cpus: 1, memory_bytes: 256 * MiB, count: 12 },
  ...extra,
});

describe('the capacity card', () => {
  it('says committed against physical CPU and memory, and the ratios', () => {
    const [cpu, memory] = capacityRows(capacity());
    expect(cpu).toEqual({ label: 'CPU', fraction: 1.5, tone: 'warn', text: '6 vCPUs of 4 CPUs', ratio: '1.5×, overcommitted' });
    expect(memory).toEqual({ label: 'Memory', fraction: 0.5, tone: undefined, text: '8 GiB of 16 GiB', ratio: '0.5×, not overcommitted' });
  });

  it('colours CPU only when far overcommitted, memory when nearly full or past it', () => {
    expect(capacityRows(capacity({ vcpus: 4 }))[0].tone).toBeUndefined();
    expect(capacityRows(capacity({ vcpus: 17 }))[0].tone).toBe('bad');
    expect(capacityRows(capacity({ memory_committed_bytes: 15 * GiB }))[1].tone).toBe('warn');
    expect(capacityRows(capacity({ memory_committed_bytes: 20 * GiB }))[1].tone).toBe('bad');
  });

  it('says an idle host and one of one CPU', () => {
    const [cpu, memory] = capacityRows(capacity({ cpus: 1, vcpus: 1, cpu_overcommit: 1, memory_committed_bytes: 0, memory_overcommit: 0 }));
    expect(cpu.text).toBe('1 vCPU of 1 CPU');
    expect(cpu.ratio).toBe('1×, not overcommitted');
    expect(memory.ratio).toBe('nothing committed');
    expect(capacityRows(capacity({ cpus: 0 }))[0].fraction).toBe(0);
  });

  it('writes ratios as pampad rounds them', () => {
    expect(ratioText(1.25)).toBe('1.25×');
    expect(ratioText(0.333)).toBe('0.33×');
    expect(ratioText(undefined)).toBe('—');
    expect(overcommitText(NaN)).toBe('—');
  });

  it('says what dynamic memory may take back, nothing when no VM has it', () => {
    expect(dynamicText(capacity())).toBe('6 GiB at their minimums: the balloon may take back up to 2 GiB');
    expect(dynamicText(capacity({ memory_min_committed_bytes: 8 * GiB }))).toBe('');
  });

  it('says KSM on, off or missing', () => {
    expect(ksmText(ksm)).toBe('on: saves 3.52 MiB (900 pages share 100)');
    expect(ksmText({ ...ksm, run: false, saved_bytes: 0, pages_sharing: 0 })).toBe('off');
    expect(ksmText({ ...ksm, run: false })).toBe('off (still saves 3.52 MiB until the shared pages are split)');
    expect(ksmText({ ...ksm, available: false, run: false })).toBe('not available: this kernel has no KSM');
    expect(ksmText(undefined)).toBe('—');
  });

  it('says how many more VMs fit above the reserve', () => {
    expect(fitsText(capacity())).toBe('12 more VMs of 1 vCPU and 256 MiB fit: 3 GiB of the 5 GiB available is above the 2 GiB the host keeps');
    expect(fitsText(capacity({ fits: { cpus: 2, memory_bytes: GiB, count: 1 } }))).toMatch(/^1 more VM of 2 vCPUs and 1 GiB fits:/);
    expect(fitsText(capacity({ free_bytes: GiB, fits: { cpus: 1, memory_bytes: 256 * MiB, count: 0 } }))).toBe(
      'No more VMs of 1 vCPU and 256 MiB fit: 0 B of the 1 GiB available is above the 2 GiB the host keeps',
    );
  });
});

describe('fitsSize', () => {
  it('takes CPUs and a memory size as pampad does', () => {
    expect(fitsSize('2', '1G')).toEqual({ size: { cpus: 2, memory_mib: 1024 } });
    expect(fitsSize(' 1 ', '256')).toEqual({ size: { cpus: 1, memory_mib: 256 } });
    for (const bad of ['0', '', '1.5', '1000', 'x']) expect(fitsSize(bad, '256M')).toEqual({ error: 'CPUs must be a whole number from 1 to 999' });
    for (const bad of ['8M', 'lots', '']) expect(fitsSize('1', bad)).toEqual({ error: 'memory must be a size of at least 16M, such as 256M or 2G' });
  });
});
