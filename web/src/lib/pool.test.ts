import { describe, expect, it } from 'vitest';
import { fakeHost, GiB } from '../api/fakeHost';
import type { Vm } from '../api/types';
import { heartbeatAge, hostIconState, hostUsage, isPool, migrateBlocker, migrateRequest, migrationSummary, migrationTargets, usageTone } from './pool';

const host = fakeHost;

const vm = (extra: Partial<Vm> = {}): Vm => ({
  name: 'web',
  state: 'running',
  cpus: 2,
  memory_mib: 2048,
  host: 'a',
  disks: [],
  nics: [],
  actions: ['shutdown', 'stop', 'migrate'],
  ...extra,
});

describe('isPool', () => {
  it('is false for the one host pampad lists alone (without --cluster)', () => {
    expect(isPool([host('solo', { url: '', pooled: false })])).toBe(false);
    expect(isPool([host('advertised', { pooled: false })])).toBe(false);
    expect(isPool([])).toBe(false);
  });
  it('is true with several hosts, or one that says it is pooled', () => {
    expect(isPool([host('a'), host('b')])).toBe(true);
    expect(isPool([host('a', { pooled: true })])).toBe(true);
  });
});

describe('hostUsage', () => {
  it('gives committed over total and what is free', () => {
    const u = hostUsage(host('a', { cpus_committed: 2, memory_committed: 4 * GiB }));
    expect(u.cpu).toBe(0.25);
    expect(u.memory).toBe(0.25);
    expect(u.freeCpus).toBe(6);
    expect(u.freeMemory).toBe(12 * GiB);
  });
  it('shows overcommit above 1 with nothing free, and copes with an empty record', () => {
    const u = hostUsage(host('a', { cpus_committed: 12, memory_committed: 20 * GiB }));
    expect(u.cpu).toBe(1.5);
    expect(u.freeCpus).toBe(0);
    expect(u.freeMemory).toBe(0);
    expect(hostUsage(host('b', { cpus: 0, memory_bytes: 0 }))).toEqual({ cpu: 0, memory: 0, freeCpus: 0, freeMemory: 0 });
  });
  it('colours a nearly full or overcommitted bar', () => {
    expect(usageTone(0.5)).toBeUndefined();
    expect(usageTone(0.95)).toBe('warn');
    expect(usageTone(1.2)).toBe('bad');
  });
});

describe('migrationTargets', () => {
  const hosts = [
    host('a'),
    host('b', { memory_committed: 15 * GiB }), // 1 GiB free: too small for 2 GiB
    host('c', { memory_committed: 8 * GiB }),
    host('d', { memory_committed: 2 * GiB }),
    host('m', { state: 'maintenance', maintenance: true }),
    host('x', { state: 'lost' }),
  ];
  it("offers online hosts other than the VM's, those it fits on first, most free memory first", () => {
    const t = migrationTargets(hosts, vm());
    expect(t.map((h) => h.name)).toEqual(['d', 'c', 'b']);
    expect(t[0]).toEqual({ name: 'd', freeMemory: 14 * GiB, fits: true });
    expect(t[2].fits).toBe(false);
  });
  it('is empty when no other host is online', () => {
    expect(migrationTargets([host('a'), host('x', { state: 'lost' })], vm())).toEqual([]);
  });
});

describe('migrateBlocker', () => {
  const two = [host('a'), host('b')];
  it('lets a settled VM move when another host is online', () => {
    expect(migrateBlocker(two, vm())).toBe('');
    expect(migrateBlocker(two, vm({ actions: undefined }))).toBe('');
  });
  it('says why the VM cannot move', () => {
    expect(migrateBlocker(two, vm({ busy: 'backup' }))).toBe('busy: backup');
    expect(migrateBlocker(two, vm({ state: 'starting', actions: ['stop'] }))).toMatch(/starting cannot move/);
    expect(migrateBlocker([host('a')], vm())).toBe('no other host of the pool is online');
    expect(migrateBlocker([host('a'), host('b', { state: 'maintenance' })], vm())).toBe('no other host of the pool is online');
    expect(migrateBlocker([host('a', { state: 'lost' }), host('b')], vm())).toBe('its host a is lost');
  });
});

describe('migrateRequest', () => {
  it('sends only what was filled in', () => {
    expect(migrateRequest({ to: 'b', bandwidth: '', downtime: ' ' })).toEqual({ body: { to: 'b' } });
    expect(migrateRequest({ to: 'b', bandwidth: '100', downtime: '300' })).toEqual({ body: { to: 'b', bandwidth_mib: 100, max_downtime_ms: 300 } });
  });
  it("refuses what pampad would refuse, saying pampad's limits", () => {
    expect(migrateRequest({ to: '', bandwidth: '', downtime: '' })).toEqual({ error: 'pick the host to move the VM to' });
    for (const bad of ['0', '1.5', '-3', 'fast', '1000001']) {
      expect(migrateRequest({ to: 'b', bandwidth: bad, downtime: '' })).toHaveProperty('error', expect.stringMatching(/bandwidth .* 1 to 1000000/));
    }
    for (const bad of ['0', '60001', '10ms']) {
      expect(migrateRequest({ to: 'b', bandwidth: '', downtime: bad })).toHaveProperty('error', expect.stringMatching(/downtime .* 1 to 60000/));
    }
  });
});

describe('migrationSummary', () => {
  it('gives the downtime and total of a live move', () => {
    const r = { from: 'a', to: 'b', live: true, downtime_ms: 42.4, qemu_downtime_ms: 30, total_ms: 3200, transferred: 1.5 * GiB };
    expect(migrationSummary(r)).toBe('Moved live from a to b: downtime 42 ms, total 3.2 s, 1.5 GiB of memory sent.');
  });
  it('says a stopped VM moved without downtime', () => {
    expect(migrationSummary({ from: 'a', to: 'b', live: false, total_ms: 180 })).toBe('Moved from a to b while stopped, in 180 ms.');
  });
  it('copes with a missing result', () => {
    expect(migrationSummary(undefined)).toBe('Moved while stopped, in —.');
  });
});

describe('hosts as shown', () => {
  it('reads a heartbeat age', () => {
    expect(heartbeatAge({ heartbeat_age_ms: 4200 })).toBe('4.2 s ago');
    expect(heartbeatAge({ heartbeat_age_ms: 125_000 })).toBe('2 min 5 s ago');
    expect(heartbeatAge({ heartbeat_age_ms: -1 })).toBe('never');
  });
  it('borrows a VM state icon for each host state', () => {
    expect(hostIconState('online')).toBe('running');
    expect(hostIconState('maintenance')).toBe('paused');
    expect(hostIconState('lost')).toBe('crashed');
  });
});
