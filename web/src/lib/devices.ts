// The Hardware tab's forms as PATCH bodies (DeviceChange), and the rules
// pampad applies to a VM whose QEMU runs (src/vm/vm_runtime.cc EditLive), so
// a button that can only be refused says why before it is pressed. Anything
// else (sizes, names, MACs taken, snapshots) pampad checks and explains.
// Pure functions, unit tested in devices.test.ts.
import type { DeviceChange, DiskBus, Vm } from '../api/types';
import { runsNow } from './clone';

export const DISK_BUSES: DiskBus[] = ['virtio', 'scsi', 'sata'];

type Disk = Vm['disks'][number];

/** The bus a disk is on: pampad leaves out the default, virtio. */
export function busOf(d: Pick<Disk, 'bus'>): DiskBus {
  return d.bus ?? 'virtio';
}

/** The bus select's labels: sata is only for a stopped VM. */
export function busLabels(vm: Pick<Vm, 'state'>): Record<string, string> {
  return runsNow(vm) ? { sata: 'sata (VM stopped only)' } : {};
}

export interface DiskForm {
  /** A size with a unit for a blank disk, or POOL/VOLUME of an existing one. */
  disk: string;
  bus: DiskBus;
}

/** The add-disk form as the request body, or what is wrong with it. */
export function addDiskRequest(f: DiskForm, vm: Pick<Vm, 'name' | 'state'>): { body: DeviceChange } | { error: string } {
  const disk = f.disk.trim();
  if (!disk) return { error: 'give a size for a blank disk (10G, 512M) or an existing volume as POOL/VOLUME' };
  // pampad reads a bare number as a mistake, not as bytes: say so before asking.
  if (/^\d+$/.test(disk)) return { error: `size '${disk}' has no unit: write ${disk}G or ${disk}M` };
  if (f.bus === 'sata' && runsNow(vm)) {
    return { error: `${vm.name} is ${vm.state}: a sata disk can only be added while it is stopped; pick virtio or scsi` };
  }
  return { body: { add_disks: [disk], disk_bus: f.bus } };
}

/** Removing disk `index`; its volume is deleted unless kept. */
export function removeDiskRequest(index: number, keepVolume: boolean): DeviceChange {
  return keepVolume ? { remove_disk: index, keep_volume: true } : { remove_disk: index };
}

/**
 * Why disk or NIC `index` cannot be removed now ('' when it can): any one
 * leaves a VM whose QEMU runs (the others keep their slots), but never a sata
 * disk.
 */
export function removeBlocker(vm: Pick<Vm, 'name' | 'state' | 'disks' | 'nics'>, what: 'disk' | 'NIC', index: number): string {
  if (!runsNow(vm)) return '';
  if (what === 'disk' && busOf(vm.disks[index]) === 'sata') return `${vm.name} is ${vm.state}: a sata disk can only be removed while it is stopped`;
  return '';
}

export interface NicForm {
  network: string;
  /** '' lets pampad pick one. */
  mac: string;
}

/** The add-NIC form as the request body, or what is wrong with it. */
export function addNicRequest(f: NicForm): { body: DeviceChange } | { error: string } {
  if (!f.network) return { error: 'pick the network the new NIC joins' };
  const mac = f.mac.trim().toLowerCase();
  return { body: { add_nics: [mac ? { network: f.network, mac } : { network: f.network }] } };
}

/** The CD: an ISO's path on the host, or '' to eject. */
export function cdromRequest(path: string): DeviceChange {
  return { cdrom: path.trim() };
}

/** A sentence for what a change did, from the VM before and after it. */
export function changeSummary(change: DeviceChange, before: Pick<Vm, 'disks' | 'nics'>, after: Pick<Vm, 'disks' | 'nics' | 'cdrom'>): string {
  const parts: string[] = [];
  if (change.remove_disk !== undefined) {
    const d = before.disks[change.remove_disk];
    const what = d ? `${d.pool}/${d.volume}` : `disk ${change.remove_disk}`;
    parts.push(change.keep_volume ? `${what} removed; the volume stays in its pool` : `${what} removed and its volume deleted`);
  }
  if (change.add_disks?.length) {
    const added = after.disks.slice(after.disks.length - change.add_disks.length);
    parts.push(`disk ${added.map((d) => `${d.pool}/${d.volume} (${busOf(d)})`).join(', ')} added`);
  }
  if (change.remove_nic !== undefined) {
    const n = before.nics[change.remove_nic];
    parts.push(n ? `NIC ${n.mac} removed` : `NIC ${change.remove_nic} removed`);
  }
  if (change.add_nics?.length) {
    const added = after.nics.slice(after.nics.length - change.add_nics.length);
    parts.push(`NIC ${added.map((n) => `${n.mac} on ${n.network}`).join(', ')} added`);
  }
  if (change.cdrom !== undefined) parts.push(after.cdrom ? `disc ${after.cdrom} in the CD drive` : 'CD ejected');
  return parts.join('; ');
}
