// How the Host page's capacity card says GET /api/v1/host/capacity: physical
// against committed CPU and memory of the running VMs, the overcommit ratios,
// what the balloon and KSM save, and how many more VMs fit. Pure functions,
// unit tested in capacity.test.ts.
import type { Capacity, Ksm } from '../api/types';
import type { VmSize } from '../api/resources';
import { formatBytes, parseSizeMib } from './format';
import { usageTone } from './pool';

/** A ratio as pampad rounds it (two decimals): "1.5×", "0.25×". */
export function ratioText(ratio: number | undefined): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return '—';
  return `${Math.round(ratio * 100) / 100}×`;
}

/** Overcommitted past 1: more promised than the host has. */
export function overcommitText(ratio: number | undefined): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return '—';
  if (ratio > 1) return `${ratioText(ratio)}, overcommitted`;
  return ratio === 0 ? 'nothing committed' : `${ratioText(ratio)}, not overcommitted`;
}

export interface CapacityRow {
  label: string;
  /** Committed against physical, 0.. (past 1: overcommitted). */
  fraction: number;
  tone: 'warn' | 'bad' | undefined;
  /** "6 vCPUs of 4 CPUs". */
  text: string;
  /** The overcommit ratio in words. */
  ratio: string;
}

const plural = (n: number, one: string, many = one + 's') => `${n} ${n === 1 ? one : many}`;

/**
 * The CPU and memory rows. CPUs are often overcommitted on purpose (idle
 * guests), so CPU only turns amber past 4 vCPUs a CPU; memory turns amber
 * near full and red past it, as the Hosts page's meters do.
 */
export function capacityRows(c: Capacity): CapacityRow[] {
  const cpuFraction = c.cpus > 0 ? c.vcpus / c.cpus : 0;
  const memoryFraction = c.memory_bytes > 0 ? c.memory_committed_bytes / c.memory_bytes : 0;
  return [
    {
      label: 'CPU',
      fraction: cpuFraction,
      tone: cpuFraction > 4 ? 'bad' : cpuFraction > 1 ? 'warn' : undefined,
      text: `${plural(c.vcpus, 'vCPU')} of ${plural(c.cpus, 'CPU')}`,
      ratio: overcommitText(c.cpu_overcommit),
    },
    {
      label: 'Memory',
      fraction: memoryFraction,
      tone: usageTone(memoryFraction),
      text: `${formatBytes(c.memory_committed_bytes)} of ${formatBytes(c.memory_bytes)}`,
      ratio: overcommitText(c.memory_overcommit),
    },
  ];
}

/** What dynamic memory could give back: committed less what the VMs hold at their minimum; '' when none has dynamic memory. */
export function dynamicText(c: Capacity): string {
  const slack = c.memory_committed_bytes - c.memory_min_committed_bytes;
  if (!(slack > 0)) return '';
  return `${formatBytes(c.memory_min_committed_bytes)} at their minimums: the balloon may take back up to ${formatBytes(slack)}`;
}

/** KSM in words: "on: saves 36 MiB (900 pages share 100)", "off", or why there is none. */
export function ksmText(k: Ksm | undefined): string {
  if (!k) return '—';
  if (k.available === false) return 'not available: this kernel has no KSM';
  if (!k.run) return k.saved_bytes > 0 ? `off (still saves ${formatBytes(k.saved_bytes)} until the shared pages are split)` : 'off';
  const shares = k.pages_shared > 0 ? ` (${k.pages_sharing} pages share ${k.pages_shared})` : '';
  return `on: saves ${formatBytes(k.saved_bytes)}${shares}`;
}

/** "12 more VMs of 1 vCPU and 256 MiB fit": counted by memory, above the reserve the host keeps. */
export function fitsText(c: Capacity): string {
  const f = c.fits;
  const size = `${plural(f.cpus, 'vCPU')} and ${formatBytes(f.memory_bytes)}`;
  const n = f.count;
  const head = n === 0 ? `No more VMs of ${size} fit` : `${n} more ${n === 1 ? 'VM' : 'VMs'} of ${size} ${n === 1 ? 'fits' : 'fit'}`;
  const usable = Math.max(0, c.free_bytes - c.reserve_bytes);
  return `${head}: ${formatBytes(usable)} of the ${formatBytes(c.free_bytes)} available is above the ${formatBytes(c.reserve_bytes)} the host keeps`;
}

/** The size of VM the card counts, as typed (CPUs, memory with a unit), or what is wrong with it: pampad takes 1 to 999 CPUs and at least 16 MiB. */
export function fitsSize(cpus: string, memory: string): { size: VmSize } | { error: string } {
  const c = cpus.trim();
  if (!/^\d{1,3}$/.test(c) || Number(c) < 1) return { error: 'CPUs must be a whole number from 1 to 999' };
  const mib = Math.floor(parseSizeMib(memory));
  if (!Number.isFinite(mib) || mib < 16) return { error: 'memory must be a size of at least 16M, such as 256M or 2G' };
  return { size: { cpus: Number(c), memory_mib: mib } };
}
