// The Configuration tab: edits a stopped VM through PATCH (autostart may
// change while it runs); pampad's own error messages are shown as they are.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { Vm } from '../api/types';
import { upsertVm } from '../state';
import { ErrorBox, Field, useAction } from '../components/ui';

interface Form {
  cpus: string;
  memory: string;
  autostart: boolean;
  cdrom: string;
  kernel: string;
  initrd: string;
  append: string;
  firmware: string;
}

function formOf(vm: Vm): Form {
  return {
    cpus: String(vm.cpus),
    memory: `${vm.memory_mib}M`,
    autostart: !!vm.autostart,
    cdrom: vm.cdrom ?? '',
    kernel: vm.kernel ?? '',
    initrd: vm.initrd ?? '',
    append: vm.append ?? '',
    firmware: vm.firmware || 'bios',
  };
}

export function VmConfig({ vm }: { vm: Vm }) {
  const [form, setForm] = useState<Form>(() => formOf(vm));
  const [saved, setSaved] = useState('');
  const { busy, error, run } = useAction();
  const base = formOf(vm);
  useEffect(() => setForm(formOf(vm)), [vm.name]);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => {
    setSaved('');
    setForm((f) => ({ ...f, [k]: v }));
  };

  // Only what changed is sent.
  const changes: Record<string, unknown> = {};
  if (form.cpus !== base.cpus) changes.cpus = Number(form.cpus);
  if (form.memory.trim() !== base.memory) changes.memory = form.memory.trim();
  if (form.autostart !== base.autostart) changes.autostart = form.autostart;
  for (const k of ['cdrom', 'kernel', 'initrd', 'append', 'firmware'] as const) {
    if (form[k] !== base[k]) changes[k] = form[k];
  }
  const dirty = Object.keys(changes).length > 0;
  const editable = vm.state === 'stopped' || vm.state === 'crashed';

  const save = (e: Event) => {
    e.preventDefault();
    run(async () => {
      const updated = await api.patch<Vm>(vmPath(vm.name), changes);
      upsertVm(updated);
      setForm(formOf(updated));
      setSaved(`saved: ${Object.keys(changes).join(', ')}`);
    });
  };

  return (
    <form class="form config" onSubmit={save}>
      {!editable ? (
        <p class="notice">
          The VM is {vm.state}: only autostart can change now. Shut it down to edit the rest (pampad says why if you try).
        </p>
      ) : null}
      <div class="grid2">
        <Field label="CPUs">
          <input name="cpus" type="number" min={1} max={64} value={form.cpus} onInput={(e) => set('cpus', e.currentTarget.value)} />
        </Field>
        <Field label="Memory" hint="with a unit: 512M, 2G">
          <input name="memory" value={form.memory} onInput={(e) => set('memory', e.currentTarget.value)} />
        </Field>
        <Field label="Firmware">
          <select name="firmware" value={form.firmware} onChange={(e) => set('firmware', e.currentTarget.value)}>
            <option value="bios">BIOS</option>
            <option value="uefi">UEFI</option>
          </select>
        </Field>
        <Field label="CD-ROM (ISO path on the host)" hint="empty: none">
          <input name="cdrom" value={form.cdrom} onInput={(e) => set('cdrom', e.currentTarget.value)} />
        </Field>
        <Field label="Kernel (direct boot)">
          <input name="kernel" value={form.kernel} onInput={(e) => set('kernel', e.currentTarget.value)} />
        </Field>
        <Field label="Initrd">
          <input name="initrd" value={form.initrd} onInput={(e) => set('initrd', e.currentTarget.value)} />
        </Field>
        <Field label="Kernel command line">
          <input name="append" value={form.append} onInput={(e) => set('append', e.currentTarget.value)} />
        </Field>
      </div>
      <label class="check">
        <input type="checkbox" name="autostart" checked={form.autostart} onChange={(e) => set('autostart', e.currentTarget.checked)} />
        Start with pampad (autostart)
      </label>
      <div class="row">
        <button type="submit" class="primary" disabled={!dirty || busy}>
          {busy ? 'Saving…' : 'Save'}
        </button>
        <button type="button" disabled={!dirty || busy} onClick={() => setForm(formOf(vm))}>
          Revert changes
        </button>
        {saved ? <span class="ok-text">{saved}</span> : null}
      </div>
      <ErrorBox message={error} />
    </form>
  );
}
