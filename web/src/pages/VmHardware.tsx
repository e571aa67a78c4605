// The Hardware tab: a VM's disks, NICs and CD, added, removed and changed
// through PATCH, also while it runs (pampad hot-plugs them). Each section
// shows pampad's refusal as it is, under its own form.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { changeDevices } from '../api/devices';
import type { DeviceChange, DiskBus, Vm, Volume } from '../api/types';
import { runsNow } from '../lib/clone';
import { addDiskRequest, addNicRequest, busLabels, busOf, cdromRequest, changeSummary, DISK_BUSES, removeBlocker, removeDiskRequest } from '../lib/devices';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { refreshPools, store, upsertVm } from '../state';
import { DataTable, ErrorBox, Field, InlineForm, Select, TextField, useAction } from '../components/ui';

/** A section's PATCH; `after` runs once it succeeded. */
type Apply = (change: DeviceChange, after?: () => void) => Promise<unknown>;

/** One section's PATCH: the VM is updated in the store and the outcome said in a line. */
function useDeviceChange(vm: Vm) {
  const action = useAction();
  const [done, setDone] = useState('');
  const apply: Apply = (change, after) =>
    action.run(async () => {
      setDone('');
      const updated = await changeDevices(api, vm.name, change);
      upsertVm(updated);
      if (change.add_disks || change.remove_disk !== undefined) void refreshPools().catch(() => {});
      setDone(changeSummary(change, vm, updated));
      after?.();
    });
  const refuse = (message: string) => {
    setDone('');
    action.setError(message);
  };
  return { ...action, done, apply, refuse };
}

function Outcome({ done, error }: { done: string; error: string }) {
  return (
    <>
      {done && !error ? <p class="ok-text">{done}</p> : null}
      <ErrorBox message={error} />
    </>
  );
}

/** A disk's row: "keep volume" and Remove, which asks first when the volume goes too. */
function DiskRow({ vm, index, busy, apply }: { vm: Vm; index: number; busy: boolean; apply: Apply }) {
  const d = vm.disks[index];
  const [keep, setKeep] = useState(false);
  const [asking, setAsking] = useState(false);
  const blocker = removeBlocker(vm, 'disk', index);
  const remove = () => {
    setAsking(false);
    void apply(removeDiskRequest(index, keep));
  };
  return (
    <tr data-testid={`disk-${index}`}>
      <td>{index}</td>
      <td class="mono">
        {d.pool}/{d.volume}
        {d.base ? <div class="muted">linked to {d.base}</div> : null}
      </td>
      <td>{busOf(d)}</td>
      <td>
        {asking ? (
          <span class="row" data-testid={`disk-${index}-confirm`}>
            <span>
              Delete volume <strong>{d.pool}/{d.volume}</strong> and its data? This cannot be undone.
            </span>
            <button type="button" class="small danger" disabled={busy} onClick={remove}>
              Remove and delete the volume
            </button>
            <button type="button" class="small" onClick={() => setAsking(false)}>
              Cancel
            </button>
          </span>
        ) : (
          <span class="row">
            <label class="check" title="the volume stays in its pool, to attach again or elsewhere">
              <input type="checkbox" name={`keep-volume-${index}`} checked={keep} onChange={(e) => setKeep(e.currentTarget.checked)} />
              keep volume
            </label>
            <button
              type="button"
              class="small danger-outline"
              disabled={busy || !!blocker}
              title={blocker || (keep ? 'detach it; the volume stays' : 'detach it and delete its volume')}
              onClick={() => (keep ? remove() : setAsking(true))}
            >
              Remove
            </button>
          </span>
        )}
      </td>
    </tr>
  );
}

/** Volumes no VM uses, as POOL/VOLUME, for the add-disk field to suggest. */
function useFreeVolumes(vm: Vm): string[] {
  const pools = useStore(store, (s) => s.pools.map((p) => p.name).join('\n'));
  const free = useAsync(async () => {
    const names = pools ? pools.split('\n') : [];
    const lists = await Promise.all(names.map((p) => api.get<Volume[]>(`/api/v1/pools/${encodeURIComponent(p)}/volumes`)));
    return lists.flat().filter((v) => !v.vm);
  }, [pools, vm.disks.length]);
  return (free.data ?? []).map((v) => `${v.pool}/${v.name}`);
}

function Disks({ vm }: { vm: Vm }) {
  const change = useDeviceChange(vm);
  const [disk, setDisk] = useState('');
  const [bus, setBus] = useState<DiskBus>('virtio');
  const free = useFreeVolumes(vm);
  const add = () => {
    const req = addDiskRequest({ disk, bus }, vm);
    if ('error' in req) return change.refuse(req.error);
    void change.apply(req.body, () => setDisk(''));
  };
  return (
    <section aria-label="Disks">
      <h2>Disks</h2>
      <DataTable columns={['#', 'Pool/volume', 'Bus', '']} empty={vm.disks.length === 0 ? 'no disks' : undefined}>
        {vm.disks.map((d, i) => (
          <DiskRow key={`${d.pool}/${d.volume}`} vm={vm} index={i} busy={change.busy} apply={change.apply} />
        ))}
      </DataTable>
      <InlineForm onSubmit={add}>
        <TextField
          label="New disk"
          hint={`a size for a blank disk (10G, 512M; in pool ${vm.disks[0]?.pool ?? 'default'}) or an existing volume: POOL/VOLUME`}
          name="add-disk"
          list="free-volumes"
          autocomplete="off"
          value={disk}
          onValue={setDisk}
        />
        <datalist id="free-volumes">
          {free.map((v) => (
            <option key={v} value={v} />
          ))}
        </datalist>
        <Field label="Bus">
          <Select name="disk-bus" value={bus} options={DISK_BUSES} labels={busLabels(vm)} onValue={(v) => setBus(v as DiskBus)} />
        </Field>
        <button type="submit" class="primary" disabled={change.busy || !disk.trim()}>
          {change.busy ? 'Working…' : 'Add disk'}
        </button>
      </InlineForm>
      <Outcome done={change.done} error={change.error} />
    </section>
  );
}

function Nics({ vm }: { vm: Vm }) {
  const change = useDeviceChange(vm);
  const networks = useStore(store, (s) => s.networks);
  const names = networks.map((n) => n.name);
  if (!names.includes('default')) names.push('default');
  const [network, setNetwork] = useState('');
  const [mac, setMac] = useState('');
  const chosen = network || names[0];
  const add = () => {
    const req = addNicRequest({ network: chosen, mac });
    if ('error' in req) return change.refuse(req.error);
    void change.apply(req.body, () => setMac(''));
  };
  return (
    <section aria-label="Network interfaces">
      <h2>Network interfaces</h2>
      <DataTable columns={['#', 'Network', 'MAC', '']} empty={vm.nics.length === 0 ? 'no NICs' : undefined}>
        {vm.nics.map((n, i) => {
          const blocker = removeBlocker(vm, 'NIC', i);
          return (
            <tr key={n.mac} data-testid={`nic-${i}`}>
              <td>{i}</td>
              <td>
                <a href="#/networks">{n.network}</a>
              </td>
              <td class="mono">{n.mac}</td>
              <td>
                <button
                  type="button"
                  class="small danger-outline"
                  disabled={change.busy || !!blocker}
                  title={blocker || 'take the NIC out of the VM'}
                  onClick={() => void change.apply({ remove_nic: i })}
                >
                  Remove
                </button>
              </td>
            </tr>
          );
        })}
      </DataTable>
      <InlineForm onSubmit={add}>
        <Field label="Network">
          <Select name="nic-network" value={chosen} options={names} onValue={setNetwork} />
        </Field>
        <TextField
          label="MAC"
          hint="empty: pampad picks one"
          name="nic-mac"
          placeholder="52:54:00:12:34:56"
          pattern="[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"
          title="six hex pairs, e.g. 52:54:00:12:34:56"
          autocomplete="off"
          value={mac}
          onValue={setMac}
        />
        <button type="submit" class="primary" disabled={change.busy}>
          {change.busy ? 'Working…' : 'Add NIC'}
        </button>
      </InlineForm>
      <Outcome done={change.done} error={change.error} />
    </section>
  );
}

function Cdrom({ vm }: { vm: Vm }) {
  const change = useDeviceChange(vm);
  const [path, setPath] = useState(vm.cdrom ?? '');
  // A disc changed elsewhere (the Configuration tab, the CLI) shows here.
  useEffect(() => setPath(vm.cdrom ?? ''), [vm.name, vm.cdrom]);
  const inserted = vm.cdrom ?? '';
  return (
    <section aria-label="CD-ROM">
      <h2>CD-ROM</h2>
      <InlineForm onSubmit={() => void change.apply(cdromRequest(path))}>
        <TextField
          label="ISO path on the host"
          hint={runsNow(vm) ? 'the guest sees the new disc at once' : 'empty: no disc'}
          name="cdrom"
          placeholder="/var/lib/pampa/images/debian.iso"
          value={path}
          onValue={setPath}
        />
        <button type="submit" class="primary" disabled={change.busy || !path.trim() || path.trim() === inserted}>
          {inserted ? 'Change disc' : 'Insert disc'}
        </button>
        <button type="button" disabled={change.busy || !inserted} onClick={() => void change.apply(cdromRequest(''))}>
          Eject
        </button>
      </InlineForm>
      <Outcome done={change.done} error={change.error} />
    </section>
  );
}

export function VmHardware({ vm }: { vm: Vm }) {
  if (vm.template) {
    return <p class="notice">{vm.name} is a template: its hardware never changes. Clone it and change the clone's.</p>;
  }
  return (
    <div class="hardware">
      {runsNow(vm) ? (
        <p class="notice">
          The VM is {vm.state}: disks and NICs are plugged in and out while it runs; sata disks only while it is stopped.
        </p>
      ) : null}
      <Disks vm={vm} />
      <Nics vm={vm} />
      <Cdrom vm={vm} />
    </div>
  );
}
