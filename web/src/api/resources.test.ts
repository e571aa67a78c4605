import { describe, expect, it } from 'vitest';
import { ApiClient } from './client';
import { failure, json, mockFetch } from './fakeFetch';
import { getCapacity, getHostStats, getKsm, getVmStats, setKsm } from './resources';

function client(responses: (Response | Error)[]) {
  const m = mockFetch(responses);
  return { c: new ApiClient({ fetch: m.f, getToken: () => 'secret' }), calls: m.calls };
}

const ksm = { available: true, run: true, pages_shared: 100, pages_sharing: 900, saved_bytes: 900 * 4096 };

describe('the metrics API', () => {
  it("asks for a VM's history since so many seconds, its name escaped", async () => {
    const answer = { vm: 'web 1', step: 5, series: { time: [100, 105], cpu_percent: [12.5, null] } };
    const { c, calls } = client([json(200, answer)]);
    expect(await getVmStats(c, 'web 1', 3600)).toEqual(answer);
    expect(calls[0].url).toBe('/api/v1/vms/web%201/stats?since=3600');
    expect(calls[0].init.method).toBe('GET');
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBe('Bearer secret');
  });

  it("asks for the host's history", async () => {
    const { c, calls } = client([json(200, { host: 'h1', step: 60, series: { time: [], load1: [] } })]);
    expect((await getHostStats(c, 86400)).step).toBe(60);
    expect(calls[0].url).toBe('/api/v1/host/stats?since=86400');
  });

  it("passes on pampad's word for a VM that does not exist", async () => {
    const { c } = client([json(404, { error: "vm 'nope' does not exist (see: pampa vm list)", code: 'not-found' })]);
    const err = await failure(getVmStats(c, 'nope', 3600));
    expect(err.status).toBe(404);
    expect(err.message).toBe("vm 'nope' does not exist (see: pampa vm list)");
  });

  it("asks for the capacity with pampad's default size, or the size given", async () => {
    const { c, calls } = client([json(200, { cpus: 2, fits: { cpus: 1, memory_bytes: 256 << 20, count: 12 } }), json(200, {})]);
    expect((await getCapacity(c)).fits.count).toBe(12);
    expect(calls[0].url).toBe('/api/v1/host/capacity');
    await getCapacity(c, { cpus: 2, memory_mib: 1024 });
    expect(calls[1].url).toBe('/api/v1/host/capacity?cpus=2&memory=1024M');
  });

  it('asks whether KSM runs and what it saves', async () => {
    const { c, calls } = client([json(200, ksm)]);
    expect(await getKsm(c)).toEqual(ksm);
    expect(calls[0].url).toBe('/api/v1/host/ksm');
    expect(calls[0].init.method).toBe('GET');
  });

  it('turns KSM on and off with a PUT of {"on": bool}', async () => {
    const { c, calls } = client([json(200, ksm), json(200, { ...ksm, run: false })]);
    expect((await setKsm(c, true)).run).toBe(true);
    expect(calls[0].init.method).toBe('PUT');
    expect(calls[0].url).toBe('/api/v1/host/ksm');
    expect(calls[0].init.body).toBe('{"on":true}');
    expect((await setKsm(c, false)).run).toBe(false);
    expect(calls[1].init.body).toBe('{"on":false}');
  });

  it('says why KSM cannot be turned on where the kernel has none', async () => {
    const { c } = client([json(503, { error: 'this kernel has no KSM (/sys/kernel/mm/ksm is missing)', code: 'unavailable' })]);
    const err = await failure(setKsm(c, true));
    expect(err.code).toBe('unavailable');
    expect(err.message).toContain('no KSM');
  });
});
