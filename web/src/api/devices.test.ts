import { describe, expect, it } from 'vitest';
import { ApiClient } from './client';
import { changeDevices } from './devices';
import { failure, json, mockFetch } from './fakeFetch';
import type { Vm } from './types';
import { addDiskRequest, addNicRequest, cdromRequest, removeDiskRequest } from '../lib/devices';

function client(responses: (Response | Error)[]) {
  const m = mockFetch(responses);
  return { c: new ApiClient({ fetch: m.f, getToken: () => 'secret' }), calls: m.calls };
}

const vm = (extra: Partial<Vm> = {}): Vm => ({
  name: 'web',
  state: 'running',
  cpus: 1,
  memory_mib: 512,
  disks: [{ pool: 'default', volume: 'web-disk0' }],
  nics: [{ network: 'default', mac: '52:54:00:00:00:01' }],
  ...extra,
});

/** The JSON a call sent. */
const sent = (init: RequestInit) => JSON.parse(String(init.body));

describe('changing devices', () => {
  it('adds a blank disk on the bus picked, as one PATCH of the VM', async () => {
    const after = vm({ disks: [...vm().disks, { pool: 'default', volume: 'web-disk1', bus: 'scsi' }] });
    const { c, calls } = client([json(200, after)]);
    const req = addDiskRequest({ disk: ' 1G ', bus: 'scsi' }, vm());
    if ('error' in req) throw new Error(req.error);
    const updated = await changeDevices(c, 'web', req.body);
    expect(calls[0].init.method).toBe('PATCH');
    expect(calls[0].url).toBe('/api/v1/vms/web');
    expect(sent(calls[0].init)).toEqual({ add_disks: ['1G'], disk_bus: 'scsi' });
    expect(updated.disks[1]).toEqual({ pool: 'default', volume: 'web-disk1', bus: 'scsi' });
  });

  it('removes a disk keeping its volume when "keep volume" is ticked, deleting it otherwise', async () => {
    const { c, calls } = client([json(200, vm({ disks: [] })), json(200, vm({ disks: [] }))]);
    await changeDevices(c, 'web', removeDiskRequest(0, true));
    expect(sent(calls[0].init)).toEqual({ remove_disk: 0, keep_volume: true });
    await changeDevices(c, 'web', removeDiskRequest(0, false));
    // Left out, pampad's default: the volume is deleted.
    expect(sent(calls[1].init)).toEqual({ remove_disk: 0 });
  });

  it("passes on pampad's refusal word for word, for the tab to show", async () => {
    const refusal = "vm 'web' is running and sata disks cannot be added or removed while it runs: use --bus virtio or scsi, or stop it first";
    const { c } = client([json(409, { error: refusal, code: 'conflict' })]);
    const err = await failure(changeDevices(c, 'web', removeDiskRequest(0, false)));
    expect(err.status).toBe(409);
    expect(err.message).toBe(refusal);
  });

  it('ejects the CD with cdrom "" and inserts one by its path', async () => {
    const { c, calls } = client([json(200, vm({ cdrom: '' })), json(200, vm({ cdrom: '/isos/debian.iso' }))]);
    expect((await changeDevices(c, 'web', cdromRequest(''))).cdrom).toBe('');
    expect(sent(calls[0].init)).toEqual({ cdrom: '' });
    await changeDevices(c, 'web', cdromRequest(' /isos/debian.iso '));
    expect(sent(calls[1].init)).toEqual({ cdrom: '/isos/debian.iso' });
  });

  it('adds a NIC with or without a MAC', async () => {
    const { c, calls } = client([json(200, vm()), json(200, vm())]);
    const auto = addNicRequest({ network: 'lan', mac: '' });
    const fixed = addNicRequest({ network: 'lan', mac: '52:54:00:AB:CD:EF' });
    if ('error' in auto || 'error' in fixed) throw new Error('refused');
    await changeDevices(c, 'web', auto.body);
    await changeDevices(c, 'web', fixed.body);
    expect(sent(calls[0].init)).toEqual({ add_nics: [{ network: 'lan' }] });
    expect(sent(calls[1].init)).toEqual({ add_nics: [{ network: 'lan', mac: '52:54:00:ab:cd:ef' }] });
  });

  it('escapes the VM name in the path', async () => {
    const { c, calls } = client([json(200, vm())]);
    await changeDevices(c, 'a b', { remove_nic: 0 });
    expect(calls[0].url).toBe('/api/v1/vms/a%20b');
  });
});
