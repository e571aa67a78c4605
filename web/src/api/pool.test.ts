import { describe, expect, it } from 'vitest';
import { fakeHost, GiB } from './fakeHost';
import { ApiClient } from './client';
import { failure, json, mockFetch } from './fakeFetch';
import { getHost, hostPath, listHosts, migrateVm, setMaintenance } from './pool';
import type { PoolHost } from './types';

function client(responses: (Response | Error)[]) {
  const m = mockFetch(responses);
  return { c: new ApiClient({ fetch: m.f, getToken: () => 'secret' }), calls: m.calls };
}

const host = (name: string, extra: Partial<PoolHost> = {}): PoolHost =>
  fakeHost(name, { cpus_committed: 2, memory_committed: 4 * GiB, vms: 3, running: 2, heartbeat_ms: 1_700_000_000_000, heartbeat_age_ms: 1200, ...extra });

describe('the pool API', () => {
  it('lists the hosts by name', async () => {
    const { c, calls } = client([json(200, [host('b'), host('a')])]);
    const hosts = await listHosts(c);
    expect(hosts.map((h) => h.name)).toEqual(['a', 'b']);
    expect(calls[0].url).toBe('/api/v1/hosts');
    expect(calls[0].init.method).toBe('GET');
  });

  it('takes the list of one a host alone answers with', async () => {
    const alone = host('solo', { url: '', heartbeat_age_ms: 86_400_000 });
    const { c } = client([json(200, [alone])]);
    expect(await listHosts(c)).toEqual([alone]);
  });

  it('escapes host names in paths', async () => {
    expect(hostPath('a b/c')).toBe('/api/v1/hosts/a%20b%2Fc');
    expect(hostPath('h1', '/maintenance')).toBe('/api/v1/hosts/h1/maintenance');
    const { c, calls } = client([json(200, host('h1'))]);
    expect((await getHost(c, 'h1')).name).toBe('h1');
    expect(calls[0].url).toBe('/api/v1/hosts/h1');
  });

  it("says what pampad says about a host that is not in the pool", async () => {
    const { c } = client([json(404, { error: "host 'nope' is not in the pool (see: pampa host list)", code: 'not-found' })]);
    const err = await failure(getHost(c, 'nope'));
    expect(err.status).toBe(404);
    expect(err.message).toContain('not in the pool');
  });

  it('turns maintenance on with {"on": true} and returns the evacuation task', async () => {
    const { c, calls } = client([json(202, { host: 'h1', maintenance: true, task: 't-evac' })]);
    const r = await setMaintenance(c, 'h1', true);
    expect(r.task).toBe('t-evac');
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].url).toBe('/api/v1/hosts/h1/maintenance');
    expect(calls[0].init.body).toBe('{"on":true}');
  });

  it('turns maintenance off without a task', async () => {
    const { c, calls } = client([json(200, { host: 'h1', maintenance: false })]);
    const r = await setMaintenance(c, 'h1', false);
    expect(r.task).toBeUndefined();
    expect(calls[0].init.body).toBe('{"on":false}');
  });

  it('passes on the refusal of maintenance on a host alone', async () => {
    const { c } = client([json(400, { error: 'this host is not in a pool (start pampad with --cluster)', code: 'invalid' })]);
    const err = await failure(setMaintenance(c, 'solo', true));
    expect(err.code).toBe('invalid');
    expect(err.message).toContain('--cluster');
  });

  it('posts a migration with only the fields given', async () => {
    const { c, calls } = client([json(202, { task: 't-mig', vm: 'web', to: 'h2' }), json(202, { task: 't2', vm: 'web', to: 'h2' })]);
    const r = await migrateVm(c, 'web', { to: 'h2' });
    expect(r).toEqual({ task: 't-mig', vm: 'web', to: 'h2' });
    expect(calls[0].url).toBe('/api/v1/vms/web/migrate');
    expect(calls[0].init.body).toBe('{"to":"h2"}');
    await migrateVm(c, 'web', { to: 'h2', bandwidth_mib: 100, max_downtime_ms: 300 });
    expect(JSON.parse(String(calls[1].init.body))).toEqual({ to: 'h2', bandwidth_mib: 100, max_downtime_ms: 300 });
  });

  it("shows pampad's refusal of a migration", async () => {
    const { c } = client([json(409, { error: 'host h2 has 512 MiB of memory free, the VM needs 2 GiB', code: 'conflict' })]);
    const err = await failure(migrateVm(c, 'web', { to: 'h2' }));
    expect(err.status).toBe(409);
    expect(err.message).toBe('host h2 has 512 MiB of memory free, the VM needs 2 GiB');
  });
});
