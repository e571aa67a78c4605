import { describe, expect, it } from 'vitest';
import { ApiClient, vmPath } from './client';
import { failure, json, mockFetch } from './fakeFetch';
import { getHa } from './ha';
import type { HaStatus, Vm } from './types';
import { configChanges, configForm } from '../lib/vmconfig';

function client(responses: (Response | Error)[]) {
  const m = mockFetch(responses);
  return { c: new ApiClient({ fetch: m.f, getToken: () => 'secret' }), calls: m.calls };
}

const vm: Vm = { name: 'web', state: 'running', cpus: 1, memory_mib: 512, disks: [{ pool: 'local', volume: 'web-disk0' }], nics: [] };

describe('the HA API', () => {
  it('reads the HA status', async () => {
    const answer: HaStatus = {
      manager: 'h1',
      enabled: true,
      settings: { heartbeat_ms: 1000, lease_ms: 10_000, fence_after_ms: 7000, max_tries: 3 },
      vms: [{ name: 'web', host: 'h1', priority: 100, state: 'started', reason: '' }],
      events: [],
    };
    const { c, calls } = client([json(200, answer)]);
    expect(await getHa(c)).toEqual(answer);
    expect(calls[0].url).toBe('/api/v1/ha');
    expect(calls[0].init.method).toBe('GET');
  });

  it('takes the answer of a host alone', async () => {
    const alone = { manager: '', enabled: false, settings: { heartbeat_ms: 1000, lease_ms: 10_000, fence_after_ms: 7000, max_tries: 3 }, vms: [], events: [] };
    const { c } = client([json(200, alone)]);
    expect((await getHa(c)).enabled).toBe(false);
  });

  it("turns HA on with one PATCH of the VM and passes on pampad's refusal word for word", async () => {
    const refusal =
      "vm 'web' has a disk in pool local, which only host h1 reaches: HA restarts a VM on another host, so its disks must be in a shared pool (pampa pool create NAME --type shared --path DIR)";
    const { c, calls } = client([json(409, { error: refusal, code: 'conflict' })]);
    const req = configChanges({ ...configForm(vm), ha: true, haPriority: '100' }, vm);
    if ('error' in req) throw new Error(req.error);
    const err = await failure(c.patch(vmPath('web'), req.body));
    expect(calls[0].init.method).toBe('PATCH');
    expect(calls[0].url).toBe('/api/v1/vms/web');
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ ha: true, ha_priority: 100 });
    expect(err.status).toBe(409);
    expect(err.message).toBe(refusal);
  });
});
