// The Create VM dialog. Input names match the API's fields (name, cpus,
// memory, disks, disk_image, cdrom, networks, firmware, pool, ...); pampad's
// errors are shown in the dialog.
import { useState } from 'preact/hooks';
import { api } from '../api/session';
import type { TaskRef } from '../api/types';
import { FIRMWARE, FIRMWARE_LABELS } from '../lib/format';
import { navigate, vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { store } from '../state';
import { ErrorBox, Field, FormButtons, Modal, Select, TextField, trackTask, useAction } from '../components/ui';

export function CreateVmDialog({ onClose }: { onClose: () => void }) {
  const { pools, networks } = useStore(store, (s) => ({ pools: s.pools, networks: s.networks }));
  const [f, setF] = useState({
    name: '',
    cpus: '1',
    memory: '1G',
    disks: '10G',
    disk_image: '',
    cdrom: '',
    network: 'default',
    firmware: 'bios',
    pool: '',
    kernel: '',
    initrd: '',
    append: '',
    autostart: false,
  });
  const [warnings, setWarnings] = useState<string[]>([]);
  const { busy, error, run } = useAction();
  const set = (k: keyof typeof f, v: string | boolean) => setF((x) => ({ ...x, [k]: v }));

  const submit = (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = { name: f.name.trim(), cpus: Number(f.cpus), memory: f.memory.trim() };
    const disks = f.disks
      .split(/[,\s]+/)
      .map((d) => d.trim())
      .filter(Boolean);
    if (disks.length) body.disks = disks;
    if (f.disk_image.trim()) body.disk_image = f.disk_image.trim();
    if (f.cdrom.trim()) body.cdrom = f.cdrom.trim();
    body.networks = f.network ? [f.network] : [];
    body.firmware = f.firmware;
    if (f.pool) body.pool = f.pool;
    if (f.kernel.trim()) body.kernel = f.kernel.trim();
    if (f.initrd.trim()) body.initrd = f.initrd.trim();
    if (f.append.trim()) body.append = f.append.trim();
    if (f.autostart) body.autostart = true;
    run(async () => {
      const ref = await api.post<TaskRef>('/api/v1/vms', body);
      trackTask(ref, 'vm-create', String(body.name));
      if (ref.warnings?.length) {
        setWarnings(ref.warnings);
        return;
      }
      onClose();
      navigate(vmHref(String(body.name)));
    });
  };

  if (warnings.length) {
    return (
      <Modal title="Create VM" onClose={onClose}>
        <p>The VM is being created. pampad says:</p>
        <ul>
          {warnings.map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
        <div class="row">
          <button
            type="button"
            class="primary"
            onClick={() => {
              onClose();
              navigate(vmHref(f.name.trim()));
            }}
          >
            Open {f.name}
          </button>
        </div>
      </Modal>
    );
  }

  return (
    <Modal title="Create VM" onClose={onClose} wide>
      <form class="form" onSubmit={submit}>
        <div class="grid2">
          <TextField label="Name" hint="lower-case letters, digits and dashes" name="name" required autofocus pattern="[a-z0-9][a-z0-9\-]{0,62}" value={f.name} onValue={(v) => set('name', v)} />
          <TextField label="CPUs" name="cpus" type="number" min={1} max={64} required value={f.cpus} onValue={(v) => set('cpus', v)} />
          <TextField label="Memory" hint="with a unit: 512M, 2G" name="memory" required value={f.memory} onValue={(v) => set('memory', v)} />
          <TextField label="Blank disks" hint="sizes, comma separated: 20G, 100G (empty: none)" name="disks" value={f.disks} onValue={(v) => set('disks', v)} />
          <TextField label="Disk image on the host" hint="imported as the first disk: qcow2, raw, vmdk, vhd(x)" name="disk_image" placeholder="/var/lib/pampa/images/web.qcow2" value={f.disk_image} onValue={(v) => set('disk_image', v)} />
          <TextField label="ISO (CD-ROM) on the host" name="cdrom" placeholder="/var/lib/pampa/images/debian.iso" value={f.cdrom} onValue={(v) => set('cdrom', v)} />
          <Field label="Network">
            <select name="networks" value={f.network} onChange={(e) => set('network', e.currentTarget.value)}>
              {networks.map((n) => (
                <option key={n.name} value={n.name}>
                  {n.name} ({n.mode}
                  {n.subnet ? ` ${n.subnet}` : ''})
                </option>
              ))}
              {networks.some((n) => n.name === 'default') ? null : <option value="default">default</option>}
              <option value="">no network</option>
            </select>
          </Field>
          <Field label="Firmware">
            <Select name="firmware" value={f.firmware} options={FIRMWARE} labels={FIRMWARE_LABELS} onValue={(v) => set('firmware', v)} />
          </Field>
          <Field label="Pool">
            <Select name="pool" value={f.pool} options={pools.map((p) => p.name)} blank="default" onValue={(v) => set('pool', v)} />
          </Field>
        </div>
        <details>
          <summary>Direct kernel boot</summary>
          <div class="grid2">
            <TextField label="Kernel" name="kernel" value={f.kernel} onValue={(v) => set('kernel', v)} />
            <TextField label="Initrd" name="initrd" value={f.initrd} onValue={(v) => set('initrd', v)} />
            <TextField label="Kernel command line" name="append" placeholder="console=ttyS0" value={f.append} onValue={(v) => set('append', v)} />
          </div>
        </details>
        <label class="check">
          <input type="checkbox" name="autostart" checked={f.autostart} onChange={(e) => set('autostart', e.currentTarget.checked)} /> Start with pampad (autostart)
        </label>
        <ErrorBox message={error} />
        <FormButtons label="Create" busyLabel="Creating…" busy={busy} onCancel={onClose} />
      </form>
    </Modal>
  );
}
