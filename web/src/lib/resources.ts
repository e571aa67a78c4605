// A VM's share of the host as the Configuration tab edits it (CPU weight,
// cap and pin, dynamic memory, disk and NIC limits) and the PATCH fields it
// sends: only what changed, all applied by pampad at once, also while the VM
// runs. Also how the Summary tab says them. Pure functions, unit tested in
// resources.test.ts; lib/vmconfig.ts puts them in the tab's one request.
import type { ResourceChange, Vm } from '../api/types';
import { formatMib, formatRate, parseSizeMib } from './format';

export interface ResourceForm {
  /** 1..10000; 100 is the default. */
  cpuWeight: string;
  /** Percent of one core; empty or 0: no cap. */
  cpuCap: string;
  /** Host cores, "0-1,3"; empty: any. */
  cpuPin: string;
  /** A size ("512M"); empty or 0: static memory. */
  memoryMin: string;
  /** Per disk, by number: I/O operations per second and bytes per second ("10M"); empty: no limit. */
  disks: { iops: string; bps: string }[];
  nics: { bps: string }[];
}

/** The form as the VM is now. */
export function resourceForm(vm: Vm): ResourceForm {
  return {
    cpuWeight: String(vm.cpu_weight ?? 100),
    cpuCap: vm.cpu_cap ? String(vm.cpu_cap) : '',
    cpuPin: vm.cpu_pin ?? '',
    memoryMin: vm.memory_min_mib ? `${vm.memory_min_mib}M` : '',
    disks: vm.disks.map((d) => ({ iops: d.iops ? String(d.iops) : '', bps: rateText(d.bps) })),
    nics: vm.nics.map((n) => ({ bps: rateText(n.bps) })),
  };
}

const KiB = 1024;
const RATE_UNITS: [string, number][] = [
  ['G', KiB ** 3],
  ['M', KiB ** 2],
  ['K', KiB],
];

/** Bytes per second as the form shows them: the largest unit that says it exactly ("10M", "1536K", "1000B"); '' for no limit. */
export function rateText(bps: number | undefined): string {
  if (!bps) return '';
  for (const [unit, size] of RATE_UNITS) if (bps % size === 0) return `${bps / size}${unit}`;
  return `${bps}B`;
}

/**
 * A bandwidth typed in the form -> bytes per second: "10M", "1.5G", "500K",
 * "10 MiB/s", "100000B"; a bare number is MiB/s, as the memory field's is
 * MiB. Empty or 0: 0 (no limit); anything else NaN.
 */
export function parseRate(text: string): number {
  const t = text.trim().replace(/\/s$/i, '').trim();
  if (t === '' || /^0+$/.test(t)) return 0;
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/i.exec(t);
  if (!m) return NaN;
  const v = parseFloat(m[1]);
  if (m[3]) return Math.round(v);
  const unit = (m[2] ?? 'm').toLowerCase();
  return Math.round(v * KiB ** ' kmgt'.indexOf(unit));
}

/**
 * What is wrong with a CPU pin ("0-1,3"), '' when nothing: pampad takes
 * numbers and ranges of up to 4 digits, each range upwards, and only cores
 * the host has (`hostCpus`, when known: cores 0 to hostCpus-1).
 */
export function cpuPinProblem(pin: string, hostCpus?: number): string {
  const t = pin.replace(/\s+/g, '');
  if (t === '') return '';
  let highest = -1;
  for (const part of t.split(',')) {
    const m = /^(\d{1,4})(?:-(\d{1,4}))?$/.exec(part);
    if (!m) return `CPU pin must list host cores such as 0-1,3 (empty: any core); "${part}" is no core or range`;
    if (m[2] !== undefined && Number(m[2]) < Number(m[1])) return `CPU pin: the range ${part} goes backwards (write ${m[2]}-${m[1]})`;
    highest = Math.max(highest, Number(m[2] ?? m[1]));
  }
  if (hostCpus && hostCpus > 0 && highest >= hostCpus) {
    return `CPU pin: this host has no CPU ${highest} (its CPUs: 0-${hostCpus - 1})`;
  }
  return '';
}

/** undefined for an empty field, NaN for anything but digits. */
function whole(text: string): number | undefined {
  const t = text.trim();
  if (!t) return undefined;
  return /^\d+$/.test(t) ? Number(t) : NaN;
}

/** Dynamic memory: the balloon may take the guest down to its minimum. */
export function isDynamic(vm: Pick<Vm, 'memory_mib' | 'memory_min_mib'>): boolean {
  const min = vm.memory_min_mib ?? 0;
  return min > 0 && min < vm.memory_mib;
}

/** pampad's limits (src/vm/vm_spec.cc ParseResources, ParseLimits). */
export const LIMITS = {
  weightMax: 10000,
  /** A cap under 5 % of one core would starve the guest. */
  capMin: 5,
  /** Memory, also a minimum: 16 MiB to 1 TiB. */
  memoryMinMib: 16,
  iopsMax: 1_000_000,
  /** A bandwidth under 64 KiB/s would stall the guest. */
  bpsMin: 64 * 1024,
  bpsMax: 2 ** 40,
};

/** What is wrong with a bandwidth (bytes/s, 0: none) of a disk or NIC, '' when nothing. */
function rateProblem(what: string, bps: number): string {
  const hint = 'a size per second such as 500K, 10M or 1G (empty or 0: no limit)';
  if (Number.isNaN(bps)) return `${what}: bandwidth must be ${hint}`;
  if (bps > 0 && bps < LIMITS.bpsMin) return `${what}: a bandwidth under 64 KiB/s would stall the guest; give ${hint}`;
  if (bps > LIMITS.bpsMax) return `${what}: bandwidth may be at most 1 TiB/s; give ${hint}`;
  return '';
}

/**
 * The resource fields that differ from the VM, as PATCH fields ({} when
 * none), or what is wrong with them, checked as pampad checks them. `next`
 * is the VM's CPUs and memory once the rest of the form is saved (what the
 * cap and the minimum are held to); `hostCpus`, when known, the cores of its
 * host (what a pin may name).
 */
export function resourceChanges(
  f: ResourceForm,
  vm: Vm,
  next: { cpus: number; memoryMib: number } = { cpus: vm.cpus, memoryMib: vm.memory_mib },
  hostCpus?: number,
): { body: ResourceChange } | { error: string } {
  const body: ResourceChange = {};
  const cpus = Number.isInteger(next.cpus) && next.cpus > 0 ? next.cpus : vm.cpus;
  const memoryMib = Number.isFinite(next.memoryMib) && next.memoryMib > 0 ? next.memoryMib : vm.memory_mib;

  const weight = whole(f.cpuWeight);
  if (weight !== (vm.cpu_weight ?? 100)) {
    if (weight === undefined || Number.isNaN(weight) || weight < 1 || weight > LIMITS.weightMax) {
      return { error: 'CPU weight must be a whole number from 1 to 10000 (100 is the default; 200 gets twice the share of 100)' };
    }
    body.cpu_weight = weight;
  }

  // The cap is held to the CPUs the VM will have, also when only those change.
  const cap = whole(f.cpuCap) ?? 0;
  if (cap !== (vm.cpu_cap ?? 0) || (cap > 0 && cpus !== vm.cpus)) {
    const most = 100 * cpus;
    if (Number.isNaN(cap) || cap > most) {
      return { error: `CPU cap must be a whole percent of one core from 0 (no cap) to ${most} (${cpus} vCPU${cpus === 1 ? '' : 's'} at full speed)` };
    }
    if (cap > 0 && cap < LIMITS.capMin) {
      return { error: `a CPU cap of ${cap} % would starve the guest: give at least 5 (percent of one core), or 0 for no cap` };
    }
    if (cap !== (vm.cpu_cap ?? 0)) body.cpu_cap = cap;
  }

  const pin = f.cpuPin.replace(/\s+/g, '');
  if (pin !== (vm.cpu_pin ?? '')) {
    const problem = cpuPinProblem(pin, hostCpus);
    if (problem) return { error: problem };
    body.cpu_pin = pin;
  }

  // The minimum is held to the memory the VM will have, also when only that changes.
  const minText = f.memoryMin.trim();
  const min = minText === '' || /^0+$/.test(minText) ? 0 : parseSizeMib(minText);
  if (min !== (vm.memory_min_mib ?? 0) || (min > 0 && memoryMib !== vm.memory_mib)) {
    if (Number.isNaN(min)) {
      return { error: 'minimum memory must be a size such as 512M or 1G (empty or 0: static memory)' };
    }
    if (min > 0 && min < LIMITS.memoryMinMib) {
      return { error: `minimum memory must be at least 16 MiB, a size such as 512M or 1G (empty or 0: static memory)` };
    }
    if (min > memoryMib) {
      return { error: `minimum memory (${formatMib(min)}) is more than the VM's memory (${formatMib(memoryMib)}): give a smaller minimum, or empty or 0 for static memory` };
    }
    const mib = Math.floor(min);
    if (mib !== (vm.memory_min_mib ?? 0)) body.memory_min_mib = mib;
  }

  const disks: NonNullable<ResourceChange['disk_limits']> = [];
  for (let i = 0; i < vm.disks.length; i++) {
    const d = vm.disks[i];
    const row = f.disks[i];
    if (!row) continue; // a disk added since the form was filled: nothing typed for it
    const iops = whole(row.iops) ?? 0;
    const bps = parseRate(row.bps);
    if (Number.isNaN(iops) || iops > LIMITS.iopsMax) return { error: `disk ${i}: I/O operations per second must be a whole number up to 1000000 (empty or 0: no limit)` };
    const problem = rateProblem(`disk ${i}`, bps);
    if (problem) return { error: problem };
    // Both go, also the one unchanged: the entry says the disk's whole limit.
    if (iops !== (d.iops ?? 0) || bps !== (d.bps ?? 0)) disks.push({ disk: i, iops, bps });
  }
  if (disks.length) body.disk_limits = disks;

  const nics: NonNullable<ResourceChange['nic_limits']> = [];
  for (let i = 0; i < vm.nics.length; i++) {
    const row = f.nics[i];
    if (!row) continue;
    const bps = parseRate(row.bps);
    const problem = rateProblem(`NIC ${i}`, bps);
    if (problem) return { error: problem };
    if (bps !== (vm.nics[i].bps ?? 0)) nics.push({ nic: i, bps });
  }
  if (nics.length) body.nic_limits = nics;

  return { body };
}

/** The VM's CPU share in words: "weight 200, at most 150 % of one core, on host cores 0-1". */
export function cpuShareText(vm: Pick<Vm, 'cpu_weight' | 'cpu_cap' | 'cpu_pin'>): string {
  const weight = vm.cpu_weight ?? 100;
  return [
    weight === 100 ? 'weight 100 (the default)' : `weight ${weight}`,
    vm.cpu_cap ? `at most ${vm.cpu_cap} % of one core` : 'no cap',
    vm.cpu_pin ? `on host cores ${vm.cpu_pin}` : 'any host core',
  ].join(', ');
}

/** The VM's memory in words: "2 GiB", or "2 GiB, dynamic: at least 512 MiB; the guest has 1.25 GiB now". */
export function memoryText(vm: Pick<Vm, 'memory_mib' | 'memory_min_mib' | 'balloon_mib' | 'state'>): string {
  const size = formatMib(vm.memory_mib);
  if (!isDynamic(vm)) return size;
  const runs = vm.state === 'running' || vm.state === 'paused';
  const now = runs && vm.balloon_mib ? `; the guest has ${formatMib(vm.balloon_mib)} now` : '';
  return `${size}, dynamic: at least ${formatMib(vm.memory_min_mib)}${now}`;
}

/** A disk's or NIC's limits in words: "500 IOPS, 10 MiB/s", or "none". */
export function limitText(l: { iops?: number; bps?: number }): string {
  const parts: string[] = [];
  if (l.iops) parts.push(`${l.iops} IOPS`);
  if (l.bps) parts.push(formatRate(l.bps));
  return parts.length ? parts.join(', ') : 'none';
}
