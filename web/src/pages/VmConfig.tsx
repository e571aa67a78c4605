// The Configuration tab: edits a stopped VM through PATCH (autostart, HA and
// the CD may change while it runs: the disc is swapped live); pampad's own
// error messages are shown as they are. Disks and NICs are on the Hardware
// tab. HA shows in a pool of hosts, or when the VM already has it. The
// resources (CPU share, dynamic memory, disk and NIC limits) change at once,
// also while it runs, in the same request.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { Vm } from '../api/types';
import { FIRMWARE, FIRMWARE_LABELS } from '../lib/format';
import { isPool } from '../lib/pool';
import { vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { isDynamic, type ResourceForm, resourceForm } from '../lib/resources';
import { type ConfigForm, configForm, editRequest } from '../lib/vmconfig';
import { store, upsertVm } from '../state';
import { DataTable, ErrorBox, Field, Select, TextField, useAction } from '../components/ui';

/** The resource fields: CPU weight, cap and pin, the memory minimum, then a row per disk and per NIC. */
function Resources({ vm, form, set, hostCpus }: { vm: Vm; form: ResourceForm; set: (f: (r: ResourceForm) => ResourceForm) => void; hostCpus?: number }) {
  const field = <K extends 'cpuWeight' | 'cpuCap' | 'cpuPin' | 'memoryMin'>(k: K) => (v: string) => set((r) => ({ ...r, [k]: v }));
  const disk = (i: number, k: 'iops' | 'bps') => (v: string) => set((r) => ({ ...r, disks: r.disks.map((d, j) => (j === i ? { ...d, [k]: v } : d)) }));
  const nic = (i: number) => (v: string) => set((r) => ({ ...r, nics: r.nics.map((n, j) => (j === i ? { bps: v } : n)) }));
  const bandwidth = 'per second: 500K, 10M, 1G (a bare number is MiB/s); empty: no limit';
  return (
    <fieldset class="resources" aria-label="Resources">
      <legend>Resources</legend>
      <p class="muted">These change at once, also while the VM runs.</p>
      <div class="grid2">
        <TextField
          label="CPU weight"
          hint="its share of the host's CPUs against other VMs: 1 to 10000, 100 is the default (200 gets twice as much)"
          name="cpu_weight"
          type="number"
          min={1}
          max={10000}
          step={1}
          value={form.cpuWeight}
          onValue={field('cpuWeight')}
        />
        <TextField
          label="CPU cap (%)"
          hint={`the most it may use, percent of one core: 5 to ${100 * vm.cpus} (${vm.cpus} vCPU${vm.cpus === 1 ? '' : 's'}); empty: no cap`}
          name="cpu_cap"
          type="number"
          min={0}
          step={1}
          placeholder="no cap"
          value={form.cpuCap}
          onValue={field('cpuCap')}
        />
        <TextField
          label="CPU pin"
          hint={`host cores its vCPUs run on, such as 0-1,3${hostCpus ? ` (this host: 0-${hostCpus - 1})` : ''}; empty: any`}
          name="cpu_pin"
          placeholder="any core"
          autocomplete="off"
          value={form.cpuPin}
          onValue={field('cpuPin')}
        />
        <TextField
          label="Memory minimum (dynamic memory)"
          hint="the balloon may take the guest down to this when the host needs memory (512M, 1G); empty: static memory"
          name="memory_min"
          placeholder="static"
          autocomplete="off"
          value={form.memoryMin}
          onValue={field('memoryMin')}
        />
      </div>
      {isDynamic(vm) ? <p class="muted">Dynamic memory is on: the guest needs its balloon driver (virtio-balloon) to give memory back.</p> : null}
      {vm.disks.length ? (
        <DataTable columns={['Disk', 'Volume', 'I/O operations per second', 'Bandwidth']}>
          {vm.disks.map((d, i) => (
            <tr key={`${d.pool}/${d.volume}`}>
              <td>{i}</td>
              <td class="mono">
                {d.pool}/{d.volume}
              </td>
              <td>
                <input
                  name={`disk-${i}-iops`}
                  aria-label={`disk ${i} I/O operations per second`}
                  type="number"
                  min={0}
                  max={1000000}
                  step={1}
                  placeholder="no limit"
                  title="up to 1000000; empty: no limit"
                  value={form.disks[i]?.iops ?? ''}
                  onInput={(e) => disk(i, 'iops')(e.currentTarget.value)}
                />
              </td>
              <td>
                <input
                  name={`disk-${i}-bps`}
                  aria-label={`disk ${i} bandwidth`}
                  placeholder="no limit"
                  title={bandwidth}
                  autocomplete="off"
                  value={form.disks[i]?.bps ?? ''}
                  onInput={(e) => disk(i, 'bps')(e.currentTarget.value)}
                />
              </td>
            </tr>
          ))}
        </DataTable>
      ) : null}
      {vm.nics.length ? (
        <DataTable columns={['NIC', 'Network', 'MAC', 'Bandwidth (each way)']}>
          {vm.nics.map((n, i) => (
            <tr key={n.mac}>
              <td>{i}</td>
              <td>{n.network}</td>
              <td class="mono">{n.mac}</td>
              <td>
                <input
                  name={`nic-${i}-bps`}
                  aria-label={`NIC ${i} bandwidth`}
                  placeholder="no limit"
                  title={bandwidth}
                  autocomplete="off"
                  value={form.nics[i]?.bps ?? ''}
                  onInput={(e) => nic(i)(e.currentTarget.value)}
                />
              </td>
            </tr>
          ))}
        </DataTable>
      ) : null}
      <p class="hint">Bandwidth: {bandwidth}; at least 64K.</p>
    </fieldset>
  );
}

export function VmConfig({ vm }: { vm: Vm }) {
  const [form, setForm] = useState<ConfigForm>(() => configForm(vm));
  const [resources, setResources] = useState<ResourceForm>(() => resourceForm(vm));
  const [saved, setSaved] = useState('');
  const { busy, error, setError, run } = useAction();
  const pooled = useStore(store, (s) => isPool(s.hosts));
  const hostCpus = useStore(store, (s) => s.hosts.find((h) => h.name === vm.host)?.cpus);
  useEffect(() => setForm(configForm(vm)), [vm.name]);
  // A disk or NIC added or removed (the Hardware tab) renumbers the rows.
  useEffect(() => setResources(resourceForm(vm)), [vm.name, vm.disks.length, vm.nics.length]);

  const set = <K extends keyof ConfigForm>(k: K, v: ConfigForm[K]) => {
    setSaved('');
    setForm((f) => ({ ...f, [k]: v }));
  };

  const setRes = (f: (r: ResourceForm) => ResourceForm) => {
    setSaved('');
    setResources(f);
  };

  const request = editRequest(form, resources, vm, hostCpus);
  const dirty = 'error' in request || Object.keys(request.body).length > 0;
  const editable = vm.state === 'stopped' || vm.state === 'crashed';

  const save = (e: Event) => {
    e.preventDefault();
    if ('error' in request) {
      setError(request.error);
      return;
    }
    run(async () => {
      const updated = await api.patch<Vm>(vmPath(vm.name), request.body);
      upsertVm(updated);
      setForm(configForm(updated));
      setResources(resourceForm(updated));
      setSaved(`saved: ${Object.keys(request.body).join(', ')}`);
    });
  };

  return (
    <form class="form config" onSubmit={save}>
      {!editable ? (
        <p class="notice">
          The VM is {vm.state}: only autostart, HA, the CD-ROM and the resources below can change now (disks and NICs too, on the{' '}
          <a href={vmHref(vm.name, 'hardware')}>Hardware</a> tab).
          Shut it down to edit the rest (pampad says why if you try).
        </p>
      ) : null}
      <div class="grid2">
        <TextField label="CPUs" name="cpus" type="number" min={1} max={64} value={form.cpus} onValue={(v) => set('cpus', v)} />
        <TextField label="Memory" hint="with a unit: 512M, 2G" name="memory" value={form.memory} onValue={(v) => set('memory', v)} />
        <Field label="Firmware">
          <Select name="firmware" value={form.firmware} options={FIRMWARE} labels={FIRMWARE_LABELS} onValue={(v) => set('firmware', v)} />
        </Field>
        <TextField label="CD-ROM (ISO path on the host)" hint="empty: none" name="cdrom" value={form.cdrom} onValue={(v) => set('cdrom', v)} />
        <TextField label="Kernel (direct boot)" name="kernel" value={form.kernel} onValue={(v) => set('kernel', v)} />
        <TextField label="Initrd" name="initrd" value={form.initrd} onValue={(v) => set('initrd', v)} />
        <TextField label="Kernel command line" name="append" value={form.append} onValue={(v) => set('append', v)} />
      </div>
      <label class="check">
        <input type="checkbox" name="autostart" checked={form.autostart} onChange={(e) => set('autostart', e.currentTarget.checked)} />
        Start with pampad (autostart)
      </label>
      {pooled || vm.ha ? (
        <div class="grid2">
          <label class="check">
            <input type="checkbox" name="ha" checked={form.ha} onChange={(e) => set('ha', e.currentTarget.checked)} />
            HA: restart on another host if its host is lost (disks must be in a shared pool)
          </label>
          <TextField
            label="HA priority"
            hint="0 to 1000: higher restarts first"
            name="ha_priority"
            type="number"
            min={0}
            max={1000}
            step={1}
            disabled={!form.ha}
            value={form.haPriority}
            onValue={(v) => set('haPriority', v)}
          />
        </div>
      ) : null}
      {vm.template ? null : <Resources vm={vm} form={resources} set={setRes} hostCpus={hostCpus} />}
      <div class="row">
        <button type="submit" class="primary" disabled={!dirty || busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button
          type="button"
          disabled={!dirty || busy}
          onClick={() => {
            setForm(configForm(vm));
            setResources(resourceForm(vm));
            setError('');
          }}
        >
          Revert changes
        </button>
        {saved ? (
          <span class="ok-text" data-testid="config-saved">
            {saved}
          </span>
        ) : null}
      </div>
      <ErrorBox message={error} />
    </form>
  );
}
