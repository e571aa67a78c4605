import { describe, expect, it } from 'vitest';
import type { HaStatus, HaVm } from '../api/types';
import { haEvents, haRows } from './ha';

const settings = { heartbeat_ms: 1000, lease_ms: 10_000, fence_after_ms: 7000, max_tries: 3 };
const haVm = (name: string, extra: Partial<HaVm> = {}): HaVm => ({ name, host: 'h1', priority: 0, state: 'started', reason: '', ...extra });
const status = (vms: HaVm[], events: HaStatus['events'] = []): HaStatus => ({ manager: 'h1', enabled: true, settings, vms, events });

describe('haRows', () => {
  it('orders the VMs as a lost host has them started elsewhere: highest priority first, then by name', () => {
    const rows = haRows(status([haVm('web', { priority: 10 }), haVm('db', { priority: 900 }), haVm('cache', { priority: 10 }), haVm('app')]));
    expect(rows.map((r) => r.name)).toEqual(['db', 'cache', 'web', 'app']);
  });

  it('keeps the order whatever the states, so rows stay put while the page polls', () => {
    const rows = haRows(status([haVm('a', { priority: 5 }), haVm('b', { priority: 1, state: 'failed', reason: 'no host has room' })]));
    expect(rows.map((r) => r.name)).toEqual(['a', 'b']);
  });

  it('says where a recovering VM goes and which try it is on', () => {
    const [r] = haRows(status([haVm('web', { state: 'recovering', host: 'h1', to: 'h2', tries: 2, reason: 'host h1 is lost' })]));
    expect(r).toEqual({ name: 'web', where: 'h1 → h2', priority: 0, state: 'recovering', why: 'host h1 is lost; try 2 of 3' });
  });

  it('leaves out a try count and a target that say nothing new', () => {
    // pampad gives the VM's new host as both once the recovery moved it; a started VM's tries are history.
    const [r] = haRows(status([haVm('web', { host: 'h2', to: 'h2', tries: 1 })]));
    expect(r).toEqual({ name: 'web', where: 'h2', priority: 0, state: 'started', why: '' });
    expect(haRows(status([haVm('x', { state: 'fenced', reason: 'host h1 is lost' })]))[0].why).toBe('host h1 is lost');
  });

  it('copes with an answer without VMs', () => {
    expect(haRows({ settings, vms: [] })).toEqual([]);
  });
});

describe('haEvents', () => {
  it('puts the newest first, leaving the answer as it was', () => {
    const events = [
      { time_ms: 1000, host: 'h2', vm: '', message: 'HA manager is now this host (host h1 is lost)' },
      { time_ms: 2000, host: 'h2', vm: 'web', message: 'given to host h3' },
      { time_ms: 2000, host: 'h3', vm: 'web', message: 'started on host h3' },
    ];
    const ha = status([], events);
    expect(haEvents(ha).map((e) => e.message)).toEqual(['started on host h3', 'given to host h3', 'HA manager is now this host (host h1 is lost)']);
    expect(ha.events[0].time_ms).toBe(1000);
  });
});
