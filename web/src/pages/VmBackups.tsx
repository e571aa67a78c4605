// The Backups tab: this VM's backups in every repository, a chart of size
// and duration, "Back up now" with the task's live progress and per-stage
// throughput, and restore as a new VM or in place (typed confirmation).
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { Backup, TaskRef, Vm } from '../api/types';
import { formatBytes, formatDuration, formatRelative, formatTime } from '../lib/format';
import { navigate, vmHref } from '../lib/router';
import { latestTaskId } from '../lib/tasks';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { refreshRepos, refreshVms, store } from '../state';
import { BackupChart } from '../components/BackupChart';
import { ConfirmName, DataTable, ErrorBox, Field, InlineTask, Select, trackTask, useAction, useOnTaskEnd, useTask } from '../components/ui';

interface Stage {
  seconds?: number;
  mib_per_s?: number;
}

function BackupTask({ id }: { id: string | null }) {
  const t = useTask(id);
  if (!t) return null;
  if (t.state === 'running') return <InlineTask task={t} label="backup" idle="starting…" />;
  if (t.state !== 'succeeded') return <ErrorBox message={t.error || `the backup ${t.state}`} />;
  const r = (t.result ?? {}) as { id?: string; bytes_read?: number; bytes_uploaded?: number; size?: number; seconds?: number; incremental?: boolean; stages?: Record<string, Stage>; slowest_stage?: string; consistency?: string };
  return (
    <div class="result">
      <p class="ok-text">
        Backup {r.id} done in {formatDuration(r.seconds)}: {r.incremental ? 'incremental' : 'full'}, read {formatBytes(r.bytes_read)} of {formatBytes(r.size)}, stored {formatBytes(r.bytes_uploaded)}.
      </p>
      {r.consistency ? <p class="muted">{r.consistency}</p> : null}
      {r.stages ? (
        <DataTable columns={['Stage', 'Time', 'Throughput']} compact>
          {Object.entries(r.stages).map(([name, s]) => (
            <tr key={name} class={name === r.slowest_stage ? 'slowest' : ''}>
              <td>
                {name.replace('_', ' + ')}
                {name === r.slowest_stage ? ' (slowest)' : ''}
              </td>
              <td>{formatDuration(s.seconds)}</td>
              <td>{s.mib_per_s !== undefined ? `${s.mib_per_s.toFixed(1)} MiB/s` : '—'}</td>
            </tr>
          ))}
        </DataTable>
      ) : null}
    </div>
  );
}

function RestorePanel({ vm, backup, onDone }: { vm: Vm; backup: Backup; onDone: (task: string | null) => void }) {
  const pools = useStore(store, (s) => s.pools);
  const [mode, setMode] = useState<'new' | 'in-place'>('new');
  const [as, setAs] = useState(`${vm.name}-restored`);
  const [pool, setPool] = useState('');
  const [live, setLive] = useState(false);
  const [discard, setDiscard] = useState(false);
  const { busy, error, run } = useAction();
  const path = `/api/v1/repos/${encodeURIComponent(backup.repo)}/backups/${encodeURIComponent(backup.id)}/restore`;

  const restore = (body: Record<string, unknown>, target: string) =>
    run(async () => {
      const ref = await api.post<TaskRef>(path, body);
      onDone(trackTask(ref, 'restore', target));
    });

  return (
    <div class="restore">
      <fieldset class="radios">
        <legend>Restore backup {backup.id}</legend>
        <label class="check">
          <input type="radio" name="mode" checked={mode === 'new'} onChange={() => setMode('new')} /> as a new VM
        </label>
        <label class="check">
          <input type="radio" name="mode" checked={mode === 'in-place'} onChange={() => setMode('in-place')} /> in place, over {vm.name}
        </label>
      </fieldset>
      {mode === 'new' ? (
        <form
          class="form inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            const body: Record<string, unknown> = { as: as.trim() };
            if (pool) body.pool = pool;
            if (live) body.live = true;
            void restore(body, as.trim());
          }}
        >
          <Field label="New VM name">
            <input name="as" required value={as} onInput={(e) => setAs(e.currentTarget.value)} />
          </Field>
          <Field label="Pool">
            <Select name="pool" value={pool} options={pools.map((p) => p.name)} blank="default" onValue={setPool} />
          </Field>
          <label class="check" title="the VM runs at once from the backup; its disks are copied in the background">
            <input type="checkbox" name="live" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} /> live (runs at once)
          </label>
          <button type="submit" class="primary" disabled={busy || !as.trim()}>
            Restore
          </button>
          <button type="button" onClick={() => onDone(null)}>
            Cancel
          </button>
        </form>
      ) : (
        <>
          {vm.state !== 'stopped' && vm.state !== 'crashed' ? <p class="notice">{vm.name} is {vm.state}: stop it first (pampad refuses otherwise).</p> : null}
          <label class="check">
            <input type="checkbox" checked={discard} onChange={(e) => setDiscard(e.currentTarget.checked)} /> discard the VM's snapshots
          </label>
          <ConfirmName
            expected={vm.name}
            prompt={
              <>
                Overwrite every disk of <strong>{vm.name}</strong> with backup {backup.id} ({formatTime(backup.created)})? What was written since is lost.
              </>
            }
            button="Restore"
            busy={busy}
            onCancel={() => onDone(null)}
            onConfirm={() => restore({ in_place: true, discard_snapshots: discard }, vm.name)}
          />
        </>
      )}
      <ErrorBox message={error} />
    </div>
  );
}

export function VmBackups({ vm }: { vm: Vm }) {
  const rev = useStore(store, (s) => s.backupsRev[vm.name] ?? 0);
  const repos = useStore(store, (s) => s.repos);
  const list = useAsync(() => api.get<Backup[]>(`/api/v1/backups?vm=${encodeURIComponent(vm.name)}`), [vm.name, rev]);
  const [repo, setRepo] = useState('');
  const [taskId, setTaskId] = useState<string | null>(null);
  const [restoring, setRestoring] = useState<Backup | null>(null);
  const [restoreTask, setRestoreTask] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  // The VM's latest backup, started here, from the CLI or by a schedule: its
  // progress and result outlive this tab (a re-render while the VM is busy
  // must not lose them).
  const latest = useStore(store, (s) => latestTaskId(s.tasks, 'backup', vm.name));
  const shownTask = taskId ?? latest;
  const task = useTask(shownTask);
  const rtask = useTask(restoreTask);

  useEffect(() => {
    void refreshRepos().catch(() => {});
  }, []);
  useEffect(() => {
    if (!repo && repos.length) setRepo(repos[0].name);
  }, [repos.length]);
  useOnTaskEnd(task, list.reload);
  useEffect(() => {
    if (rtask && rtask.state === 'succeeded') void refreshVms().catch(() => {});
  }, [rtask?.state]);

  const backups = (list.data ?? []).filter((b) => !b.unreachable && !b.error).sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
  const problems = (list.data ?? []).filter((b) => b.unreachable || b.error);

  const backupNow = (e: Event) => {
    e.preventDefault();
    run(async () => {
      const ref = await api.post<TaskRef>(vmPath(vm.name, '/backup'), { repo });
      setTaskId(trackTask(ref, 'backup', vm.name));
    });
  };

  return (
    <div>
      {repos.length === 0 ? (
        <p class="notice">
          No backup repository yet: add one on the <a href="#/repos">Repositories</a> page.
        </p>
      ) : (
        <form class="form inline-form" onSubmit={backupNow}>
          <Field label="Repository">
            <Select name="repo" value={repo} options={repos.map((r) => r.name)} onValue={setRepo} />
          </Field>
          {/* Another operation holds the VM (a revert, a restore): pampad would answer "busy". */}
          <button
            type="submit"
            class="primary"
            disabled={busy || !repo || task?.state === 'running' || !!vm.busy}
            title={vm.busy ? `waiting: ${vm.busy} in progress` : undefined}
          >
            Back up now
          </button>
        </form>
      )}
      <ErrorBox message={error} />
      <BackupTask id={shownTask} />

      {problems.map((p) => (
        <p key={p.repo + (p.id ?? '')} class="notice">
          {p.unreachable ? `repository ${p.repo} cannot be read: ${p.unreachable}` : `backup ${p.id} in ${p.repo}: ${p.error}`}
        </p>
      ))}
      <ErrorBox message={list.error} />
      <BackupChart backups={backups} />

      {restoring ? (
        <RestorePanel
          vm={vm}
          backup={restoring}
          onDone={(t) => {
            setRestoring(null);
            if (t) setRestoreTask(t);
          }}
        />
      ) : null}
      {rtask ? (
        rtask.state === 'running' ? (
          <InlineTask task={rtask} label="restore" />
        ) : rtask.state === 'succeeded' ? (
          <p class="ok-text">
            Restored.{' '}
            {rtask.target && rtask.target !== vm.name ? (
              <a href={vmHref(rtask.target)} onClick={() => navigate(vmHref(rtask.target!))}>
                Open {rtask.target}
              </a>
            ) : null}
          </p>
        ) : (
          <ErrorBox message={rtask.error || `the restore ${rtask.state}`} />
        )
      ) : null}

      <h2>Backups</h2>
      {list.loading && !list.data ? <p class="muted">Loading…</p> : null}
      {list.data && backups.length === 0 ? <p class="muted">No backups of {vm.name} yet.</p> : null}
      {backups.length ? (
        <DataTable columns={['When', 'ID', 'Repository', 'Kind', 'Disk size', 'Stored', 'Duration', '']}>
          {backups.map((b) => (
            <tr key={b.repo + '/' + b.id} data-testid={`backup-${b.id}`}>
              <td title={formatTime(b.created)}>{formatRelative(b.created)}</td>
              <td class="mono">{b.id}</td>
              <td>{b.repo}</td>
              <td>{b.incremental ? 'incremental' : 'full'}</td>
              <td>{formatBytes(b.size)}</td>
              <td>{formatBytes(b.bytes_uploaded)}</td>
              <td>{formatDuration(b.seconds)}</td>
              <td>
                {/* Hidden while a restore is being confirmed: its button is then the only "Restore". */}
                {restoring ? null : (
                  <button type="button" class="small" onClick={() => setRestoring(b)}>
                    Restore…
                  </button>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      ) : null}
    </div>
  );
}
