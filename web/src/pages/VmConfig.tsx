// The Configuration tab: edits a stopped VM through PATCH (autostart, HA and
// the CD may change while it runs: the disc is swapped live); pampad's own
// error messages are shown as they are. Disks and NICs are on the Hardware
// tab. HA shows in a pool of hosts, or when the VM already has it.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { Vm } from '../api/types';
import { FIRMWARE, FIRMWARE_LABELS } from '../lib/format';
import { isPool } from '../lib/pool';
import { vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { type ConfigForm, configChanges, configForm } from '../lib/vmconfig';
import { store, upsertVm } from '../state';
import { ErrorBox, Field, Select, TextField, useAction } from '../components/ui';

export function VmConfig({ vm }: { vm: Vm }) {
  const [form, setForm] = useState<ConfigForm>(() => configForm(vm));
  const [saved, setSaved] = useState('');
  const { busy, error, setError, run } = useAction();
  const pooled = useStore(store, (s) => isPool(s.hosts));
  useEffect(() => setForm(configForm(vm)), [vm.name]);

  const set = <K extends keyof ConfigForm>(k: K, v: ConfigForm[K]) => {
    setSaved('');
    setForm((f) => ({ ...f, [k]: v }));
  };

  const request = configChanges(form, vm);
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
      setSaved(`saved: ${Object.keys(request.body).join(', ')}`);
    });
  };

  return (
    <form class="form config" onSubmit={save}>
      {!editable ? (
        <p class="notice">
          The VM is {vm.state}: only autostart, HA and the CD-ROM can change now (disks and NICs too, on the <a href={vmHref(vm.name, 'hardware')}>Hardware</a> tab).
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
      <div class="row">
        <button type="submit" class="primary" disabled={!dirty || busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" disabled={!dirty || busy} onClick={() => setForm(configForm(vm))}>
          Revert changes
        </button>
        {saved ? <span class="ok-text">{saved}</span> : null}
      </div>
      <ErrorBox message={error} />
    </form>
  );
}
