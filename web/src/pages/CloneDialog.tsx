// Cloning a VM: the dialog that names the new VM and picks how it is made
// (a full copy of the disks now or of one of the VM's snapshots, into the
// source's pools or another; or, from a template, linked overlays on its
// disks), then follows the vm-clone task to a link to the new VM.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { CloneReply, SnapshotTree, Task, Vm } from '../api/types';
import { type CloneForm, cloneRequest, cloneSummary, runsNow, VM_NAME_PATTERN } from '../lib/clone';
import { vmHref } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { store } from '../state';
import { ErrorBox, Field, FormButtons, InlineTask, Modal, Notice, Select, TaskDialogClose, TextField, trackTask, useAction } from '../components/ui';

/** A vm-clone task: live progress, then a link to the new VM, or pampad's error. */
export function CloneTask({ task: t, onOpen }: { task: Task; onOpen?: () => void }) {
  if (t.state === 'running') return <InlineTask task={t} label="clone" idle="starting…" />;
  if (t.state === 'succeeded') {
    return (
      <p class="ok-text" data-testid="clone-done">
        {cloneSummary(t.result, t.target)}{' '}
        {t.target ? (
          <a href={vmHref(t.target)} data-testid="open-clone" onClick={onOpen}>
            Open {t.target}
          </a>
        ) : null}
      </p>
    );
  }
  return <ErrorBox message={t.error || `the clone ${t.state}`} />;
}

/**
 * The clone dialog. The caller follows the task it starts (onStarted) and
 * hands it back as `task`, so the page shows it on once the dialog closes.
 */
export function CloneDialog(props: { vm: Vm; task: Task | undefined; onClose: () => void; onStarted: (task: string) => void }) {
  const { vm, task, onClose } = props;
  const pools = useStore(store, (s) => s.pools);
  const live = runsNow(vm);
  // A template has none: pampad makes no template of a VM with snapshots, nor snapshots of a template.
  const tree = useAsync(async (): Promise<SnapshotTree> => (vm.template ? { snapshots: [] } : api.get<SnapshotTree>(vmPath(vm.name, '/snapshots'))), [vm.name, vm.template]);
  const snapshots = (tree.data?.snapshots ?? []).map((s) => s.name);
  const [f, setF] = useState<CloneForm>({ name: '', linked: !!vm.template, snapshot: '', pool: '' });
  const { busy, error, setError, run } = useAction();
  const set = <K extends keyof CloneForm>(k: K, v: CloneForm[K]) => setF((x) => ({ ...x, [k]: v }));
  const linked = f.linked && !!vm.template;

  // A running VM's disks are copied from a snapshot: offer the one it runs from.
  useEffect(() => {
    if (live && !f.snapshot && tree.data) set('snapshot', tree.data.current || snapshots[snapshots.length - 1] || '');
  }, [tree.data]);

  const submit = (e: Event) => {
    e.preventDefault();
    const req = cloneRequest({ ...f, linked }, vm);
    if ('error' in req) {
      setError(req.error);
      return;
    }
    run(async () => {
      const reply = await api.post<CloneReply>(vmPath(vm.name, '/clone'), req.body);
      // The task is the new VM's (its target), as pampad lists it.
      const id = trackTask({ task: reply.task, vm: reply.vm }, 'vm-clone', reply.vm || req.body.name);
      if (id) props.onStarted(id);
    });
  };

  if (task) {
    return (
      <Modal title={`Clone ${vm.name} as ${task.target ?? f.name.trim()}`} onClose={onClose}>
        <CloneTask task={task} onOpen={onClose} />
        <TaskDialogClose task={task} onClose={onClose} />
      </Modal>
    );
  }

  const noSnapshot = live && tree.data !== undefined && snapshots.length === 0;
  return (
    <Modal title={`Clone ${vm.name}`} onClose={onClose}>
      <form class="form" onSubmit={submit} data-testid="clone-form">
        <p class="muted">A new VM with the same hardware, new MAC addresses and UUID, stopped and without autostart.</p>
        <TextField
          label="Name of the new VM"
          hint="lower-case letters, digits and dashes"
          name="clone-name"
          required
          autofocus
          maxLength={63}
          pattern={VM_NAME_PATTERN}
          value={f.name}
          onValue={(v) => set('name', v)}
        />
        {vm.template ? (
          <label class="check" title="the template cannot be deleted while a linked clone reads from it">
            <input type="checkbox" name="linked" data-testid="clone-linked" checked={f.linked} onChange={(e) => set('linked', e.currentTarget.checked)} />
            Linked clone: made at once, its disks are overlays on the template's (without: a full copy)
          </label>
        ) : null}
        {/* A template has no snapshots: only the one state it keeps. */}
        {linked || vm.template ? null : (
          <>
            <Field
              label="Snapshot"
              hint={live ? `${vm.name} is ${vm.state}: its disks can only be copied as one of its snapshots has them (required)` : 'empty: the disks as they are now'}
            >
              <Select name="snapshot" value={f.snapshot} options={snapshots} blank={live ? undefined : 'none: as it is now'} onValue={(v) => set('snapshot', v)} />
            </Field>
            {noSnapshot ? (
              <Notice>
                {vm.name} has no snapshot to copy: take one on its{' '}
                <a href={vmHref(vm.name, 'snapshots')} onClick={onClose}>
                  Snapshots
                </a>{' '}
                tab, or stop it.
              </Notice>
            ) : null}
            <ErrorBox message={tree.error} />
          </>
        )}
        {linked ? null : (
          <Field label="Pool" hint="where the copied disks go">
            <Select name="pool" value={f.pool} options={pools.map((p) => p.name)} blank="the source's" onValue={(v) => set('pool', v)} />
          </Field>
        )}
        <ErrorBox message={error} />
        <FormButtons label="Clone" busyLabel="Starting…" busy={busy} disabled={!f.name.trim() || (!linked && live && !f.snapshot)} onCancel={onClose} />
      </form>
    </Modal>
  );
}
