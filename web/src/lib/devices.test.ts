import { describe, expect, it } from 'vitest';
import type { Vm } from '../api/types';
import { addDiskRequest, addNicRequest, busLabels, busOf, changeSummary, removeBlocker, removeDiskRequest } from './devices';

type Shape = Pick<Vm, 'name' | 'state' | 'disks' | 'nics'>;
const vm = (extra: Partial<Shape> = {}): Shape => ({
  name: 'web',
  state: 'stopped',
  disks: [
    { pool: 'default', volume: 'web-disk0' },
    { pool: 'fast', volume: 'data', bus: 'sata' },
  ],
  nics: [
    { network: 'default', mac: '52:54:00:00:00:01' },
    { network: 'lan', mac: '52:54:00:00:00:02' },
  ],
  ...extra,
});

describe('addDiskRequest', () => {
  it('takes a size or an existing POOL/VOLUME, with the bus picked', () => {
    expect(addDiskRequest({ disk: '10G', bus: 'virtio' }, vm())).toEqual({ body: { add_disks: ['10G'], disk_bus: 'virtio' } });
    expect(addDiskRequest({ disk: ' fast/data2 ', bus: 'sata' }, vm())).toEqual({ body: { add_disks: ['fast/data2'], disk_bus: 'sata' } });
  });
  it('asks for something, and for a unit (pampad refuses a bare number)', () => {
    expect(addDiskRequest({ disk: ' ', bus: 'virtio' }, vm())).toEqual({ error: expect.stringMatching(/POOL\/VOLUME/) });
    expect(addDiskRequest({ disk: '10', bus: 'virtio' }, vm())).toEqual({ error: "size '10' has no unit: write 10G or 10M" });
  });
  it('adds no sata disk to a VM whose QEMU runs', () => {
    for (const state of ['running', 'paused']) {
      expect(addDiskRequest({ disk: '1G', bus: 'sata' }, vm({ state }))).toEqual({ error: `web is ${state}: a sata disk can only be added while it is stopped; pick virtio or scsi` });
      expect('body' in addDiskRequest({ disk: '1G', bus: 'scsi' }, vm({ state }))).toBe(true);
    }
    expect(busLabels(vm({ state: 'running' })).sata).toMatch(/stopped/);
    expect(busLabels(vm())).toEqual({});
  });
});

describe('removing', () => {
  it('keeps the volume only when asked', () => {
    expect(removeDiskRequest(1, true)).toEqual({ remove_disk: 1, keep_volume: true });
    expect(removeDiskRequest(1, false)).toEqual({ remove_disk: 1 });
  });
  it('lets any disk or NIC go from a stopped VM', () => {
    for (const i of [0, 1]) {
      expect(removeBlocker(vm(), 'disk', i)).toBe('');
      expect(removeBlocker(vm({ state: 'crashed' }), 'NIC', i)).toBe('');
    }
  });
  it('lets any one go while QEMU runs, but never a sata disk', () => {
    const running = vm({ state: 'running' });
    expect(removeBlocker(running, 'disk', 0)).toBe('');
    expect(removeBlocker(running, 'NIC', 0)).toBe('');
    expect(removeBlocker(running, 'NIC', 1)).toBe('');
    expect(removeBlocker(running, 'disk', 1)).toMatch(/sata disk can only be removed while it is stopped/);
    expect(removeBlocker(vm({ state: 'paused', disks: [{ pool: 'default', volume: 'v' }] }), 'disk', 0)).toBe('');
  });
});

describe('addNicRequest', () => {
  it('needs a network and lets pampad pick the MAC when none is given', () => {
    expect(addNicRequest({ network: '', mac: '' })).toEqual({ error: 'pick the network the new NIC joins' });
    expect(addNicRequest({ network: 'lan', mac: ' ' })).toEqual({ body: { add_nics: [{ network: 'lan' }] } });
  });
});

describe('changeSummary', () => {
  const before = vm();
  it('names what was added, from the VM pampad answered with', () => {
    const after = { ...before, disks: [...before.disks, { pool: 'default', volume: 'web-disk2', bus: 'scsi' as const }] };
    expect(changeSummary({ add_disks: ['1G'], disk_bus: 'scsi' }, before, after)).toBe('disk default/web-disk2 (scsi) added');
    const withNic = { ...before, nics: [...before.nics, { network: 'lan', mac: '52:54:00:00:00:03' }] };
    expect(changeSummary({ add_nics: [{ network: 'lan' }] }, before, withNic)).toBe('NIC 52:54:00:00:00:03 on lan added');
  });
  it('says whether a removed disk took its volume with it', () => {
    const after = { ...before, disks: before.disks.slice(0, 1) };
    expect(changeSummary({ remove_disk: 1 }, before, after)).toBe('fast/data removed and its volume deleted');
    expect(changeSummary({ remove_disk: 1, keep_volume: true }, before, after)).toBe('fast/data removed; the volume stays in its pool');
  });
  it('says what the CD drive holds', () => {
    expect(changeSummary({ cdrom: '' }, before, { ...before, cdrom: '' })).toBe('CD ejected');
    expect(changeSummary({ cdrom: '/isos/a.iso' }, before, { ...before, cdrom: '/isos/a.iso' })).toBe('disc /isos/a.iso in the CD drive');
  });
  it('reads a disk\'s bus as virtio when pampad leaves it out', () => {
    expect(busOf(before.disks[0])).toBe('virtio');
    expect(busOf(before.disks[1])).toBe('sata');
  });
});
