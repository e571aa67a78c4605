// Moving a VM to another host of the pool: the dialog that picks the host
// (online ones other than the VM's, with their free memory) and the limits,
// then follows the task: the disk copy and memory sent with an ETA while it
// runs, the downtime and total time once done, pampad's error if it failed.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { migrateVm } from '../api/pool';
import type { Task, Vm } from '../api/types';
import { formatBytes, formatMib } from '../lib/format';
import { type MigrateForm, migrateRequest, migrationSummary, migrationTargets } from '../lib/pool';
import { useStore } from '../lib/store';
import { refreshHosts, store } from '../state';
import { ErrorBox, Field, FormButtons, InlineTask, Modal, Notice, Select, TaskDialogClose, TextField, trackTask, useAction } from '../components/ui';

/** A vm-migrate task: live progress, then how it went. */
export function MigrationTask({ task: t }: { task: Task }) {
  if (t.state === 'running') return <InlineTask task={t} label="migration" idle="starting…" />;
  if (t.state === 'succeeded') return <p class="ok-text">{migrationSummary(t.result)}</p>;
  return <ErrorBox message={t.error || `the migration ${t.state}`} />;
}

/**
 * The migrate dialog. The caller follows the task it starts (onStarted) and
 * hands it back as `task`, so the page shows it on once the dialog closes.
 */
export function MigrateDialog(props: { vm: Vm; task: Task | undefined; onClose: () => void; onStarted: (task: string) => void }) {
  const { vm, task, onClose } = props;
  const hosts = useStore(store, (s) => s.hosts);
  const targets = migrationTargets(hosts, vm);
  const best = targets[0]?.name ?? ''; // one it fits on, the most free memory
  const [f, setF] = useState<MigrateForm>({ to: best, bandwidth: '', downtime: '' });
  const { busy, error, setError, run } = useAction();
  const set = (k: keyof MigrateForm, v: string) => setF((x) => ({ ...x, [k]: v }));
  const live = vm.state === 'running' || vm.state === 'paused';

  // Free memory as of now, not as of the last poll.
  useEffect(() => {
    void refreshHosts().catch(() => {});
  }, []);
  // A host that went offline meanwhile is no choice: the best one left is.
  const names = targets.map((t) => t.name).join(',');
  useEffect(() => {
    if (!targets.some((t) => t.name === f.to)) set('to', best);
  }, [names]);

  const submit = (e: Event) => {
    e.preventDefault();
    const req = migrateRequest(f);
    if ('error' in req) {
      setError(req.error);
      return;
    }
    run(async () => {
      const reply = await migrateVm(api, vm.name, req.body);
      const id = trackTask({ task: reply.task, vm: vm.name }, 'vm-migrate', vm.name);
      if (id) props.onStarted(id);
    });
  };

  if (task) {
    return (
      <Modal title={`Migrate ${vm.name} to ${f.to}`} onClose={onClose}>
        <MigrationTask task={task} />
        <TaskDialogClose task={task} onClose={onClose} />
      </Modal>
    );
  }

  const labels = Object.fromEntries(
    targets.map((t) => [t.name, `${t.name}: ${formatBytes(t.freeMemory)} free${t.fits ? '' : ` (needs ${formatMib(vm.memory_mib)})`}`]),
  );
  return (
    <Modal title={`Migrate ${vm.name}`} onClose={onClose}>
      <form class="form" onSubmit={submit}>
        <p class="muted">
          {live
            ? `It keeps running: its memory, and its disks in ${vm.host ?? 'this host'}'s own pools, are copied while it runs; then it stops for about the max downtime while the rest goes.`
            : 'It is stopped: only its record moves to the other host (its disks must be in a shared pool).'}
        </p>
        {targets.length === 0 ? <Notice>No other host of the pool is online.</Notice> : null}
        <Field label="To host" hint="online hosts of the pool, with their memory not yet committed to running VMs">
          <Select name="to" value={f.to} options={targets.map((t) => t.name)} labels={labels} blank={targets.length ? undefined : 'none'} onValue={(v) => set('to', v)} />
        </Field>
        <div class="grid2">
          <TextField label="Bandwidth (MiB/s)" hint="empty: as fast as the link goes" name="bandwidth_mib" type="number" min={1} max={1000000} value={f.bandwidth} onValue={(v) => set('bandwidth', v)} />
          <TextField label="Max downtime (ms)" hint="how long the guest may stop at the switch; empty: 100" name="max_downtime_ms" type="number" min={1} max={60000} value={f.downtime} onValue={(v) => set('downtime', v)} />
        </div>
        <ErrorBox message={error} />
        <FormButtons label="Migrate" busyLabel="Starting…" busy={busy} disabled={!f.to} onCancel={onClose} />
      </form>
    </Modal>
  );
}
