// What the console makes of the pool of hosts: whether there is one, how
// full each host is, where a VM may move, and how a move went. Pure
// functions, unit tested in pool.test.ts.
import type { HostState, MigrateRequest, MigrationResult, PoolHost, Vm } from '../api/types';
import { formatBytes, formatDuration, formatMs } from './format';

/** Whether pampad runs as a host of a pool (started with --cluster). */
export function isPool(hosts: PoolHost[]): boolean {
  return hosts.length > 1 || hosts.some((h) => h.pooled === true);
}

export interface HostUsage {
  /** Committed to running VMs over the host's total: above 1 when overcommitted. */
  cpu: number;
  memory: number;
  freeCpus: number;
  /** Bytes; 0 when overcommitted. */
  freeMemory: number;
}

export function hostUsage(h: PoolHost): HostUsage {
  const cpus = h.cpus || 0;
  const memory = h.memory_bytes || 0;
  return {
    cpu: cpus > 0 ? (h.cpus_committed || 0) / cpus : 0,
    memory: memory > 0 ? (h.memory_committed || 0) / memory : 0,
    freeCpus: Math.max(0, cpus - (h.cpus_committed || 0)),
    freeMemory: Math.max(0, memory - (h.memory_committed || 0)),
  };
}

/** A usage bar's colour: nearly full, or more committed than the host has. */
export function usageTone(fraction: number): 'warn' | 'bad' | undefined {
  if (fraction > 1) return 'bad';
  if (fraction >= 0.9) return 'warn';
  return undefined;
}

/**
 * The VM state whose icon (shape and colour) a host state borrows: online
 * runs, maintenance holds still, lost is gone.
 */
export function hostIconState(state: HostState | string): string {
  return state === 'online' ? 'running' : state === 'maintenance' ? 'paused' : state === 'lost' ? 'crashed' : 'stopped';
}

export interface MigrationTarget {
  name: string;
  freeMemory: number;
  /** The VM's memory fits in what the host has free (pampad checks again). */
  fits: boolean;
}

/**
 * The hosts a VM can move to: online ones (not in maintenance, not lost)
 * other than its own, those it fits on first, then by free memory.
 */
export function migrationTargets(hosts: PoolHost[], vm: Pick<Vm, 'host' | 'memory_mib'>): MigrationTarget[] {
  const need = (vm.memory_mib || 0) * 1024 * 1024;
  return hosts
    .filter((h) => h.state === 'online' && h.name !== vm.host)
    .map((h) => {
      const freeMemory = hostUsage(h).freeMemory;
      return { name: h.name, freeMemory, fits: freeMemory >= need };
    })
    .sort((a, b) => Number(b.fits) - Number(a.fits) || b.freeMemory - a.freeMemory || a.name.localeCompare(b.name));
}

/** Why the VM cannot be moved now ('' when it can). */
export function migrateBlocker(hosts: PoolHost[], vm: Pick<Vm, 'host' | 'memory_mib' | 'state' | 'busy' | 'actions'>): string {
  if (vm.busy) return `busy: ${vm.busy}`;
  if (vm.actions && !vm.actions.includes('migrate')) return `a VM that is ${vm.state} cannot move; wait until it has settled`;
  const own = hosts.find((h) => h.name === vm.host);
  if (own?.state === 'lost') return `its host ${own.name} is lost`;
  if (migrationTargets(hosts, vm).length === 0) return 'no other host of the pool is online';
  return '';
}

export interface MigrateForm {
  to: string;
  /** MiB/s; empty: as fast as the link goes. */
  bandwidth: string;
  /** Milliseconds; empty: pampad's default (100). */
  downtime: string;
}

/** The migrate form as the request body, or what is wrong with it (pampad's limits). */
export function migrateRequest(f: MigrateForm): { body: MigrateRequest } | { error: string } {
  if (!f.to) return { error: 'pick the host to move the VM to' };
  const body: MigrateRequest = { to: f.to };
  const bandwidth = wholeNumber(f.bandwidth);
  if (bandwidth !== undefined) {
    if (Number.isNaN(bandwidth) || bandwidth < 1 || bandwidth > 1_000_000) {
      return { error: 'bandwidth must be whole MiB/s from 1 to 1000000 (empty: as fast as the link goes)' };
    }
    body.bandwidth_mib = bandwidth;
  }
  const downtime = wholeNumber(f.downtime);
  if (downtime !== undefined) {
    if (Number.isNaN(downtime) || downtime < 1 || downtime > 60_000) {
      return { error: 'max downtime must be whole milliseconds from 1 to 60000 (empty: 100)' };
    }
    body.max_downtime_ms = downtime;
  }
  return { body };
}

/** undefined for an empty field, NaN for anything but digits. */
function wholeNumber(text: string): number | undefined {
  const t = text.trim();
  if (!t) return undefined;
  return /^\d+$/.test(t) ? Number(t) : NaN;
}

/** How a finished vm-migrate task went, in a sentence. */
export function migrationSummary(result: unknown): string {
  const r = (result && typeof result === 'object' ? result : {}) as Partial<MigrationResult>;
  const where = r.from && r.to ? ` from ${r.from} to ${r.to}` : r.to ? ` to ${r.to}` : '';
  if (!r.live) return `Moved${where} while stopped, in ${formatMs(r.total_ms)}.`;
  const sent = r.transferred ? `, ${formatBytes(r.transferred)} of memory sent` : '';
  return `Moved live${where}: downtime ${formatMs(r.downtime_ms)}, total ${formatMs(r.total_ms)}${sent}.`;
}

/** A heartbeat's age as the table shows it. */
export function heartbeatAge(h: Pick<PoolHost, 'heartbeat_age_ms'>): string {
  const age = h.heartbeat_age_ms;
  if (age === undefined || age === null || age < 0) return 'never';
  return `${formatDuration(age / 1000)} ago`;
}
