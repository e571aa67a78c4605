// The Configuration tab: edits a stopped VM through PATCH (autostart and the
// CD may change while it runs: the disc is swapped live); pampad's own error
// messages are shown as they are. Disks and NICs are on the Hardware tab.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { Vm } from '../api/types';
import { FIRMWARE, FIRMWARE_LABELS } from '../lib/format';
import { vmHref } from '../lib/router';
import { upsertVm } from '../state';
import { ErrorBox, Field, Select, TextField, useAction } from '../components/ui';

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
          The VM is {vm.state}: only autostart and the CD-ROM can change now (disks and NICs too, on the <a href={vmHref(vm.name, 'hardware')}>Hardware</a> tab).
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
