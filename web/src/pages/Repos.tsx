// The Repositories page: each repository's backups, logical size, what it
// stores and the dedup ratio between them, its last verify; verify and
// prune with their results; daily schedules and weekly restore drills.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import type { Backup, Drill, Repo, Schedule, Task, TaskRef } from '../api/types';
import { formatBytes, formatDuration, formatRelative, formatTime, stateLabel } from '../lib/format';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { refreshRepos, store } from '../state';
import { DataTable, ErrorBox, Field, InlineForm, InlineTask, Select, TextField, trackTask, useAction, useOnTaskEnd, useTask } from '../components/ui';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function TaskResult({ id, what }: { id: string | null; what: string }) {
  const t = useTask(id);
  if (!t) return null;
  if (t.state === 'running') return <InlineTask task={t} label={what} />;
  if (t.state === 'failed') return <ErrorBox message={`${what}: ${t.error || 'failed'}`} />;
  return (
    <details class="result" open>
      <summary>
        {what}: {stateLabel(t.state)}
      </summary>
      <pre class="task-log">{JSON.stringify(t.result, null, 2)}</pre>
    </details>
  );
}

function lastVerify(tasks: Task[], repo: string): Task | undefined {
  return tasks
    .filter((t) => (t.type ?? t.kind) === 'verify' && t.target === repo && t.state !== 'running')
    .sort((a, b) => (b.finished ?? 0) - (a.finished ?? 0))[0];
}

function RepoCard({ repo, backups, onChanged }: { repo: Repo; backups: Backup[]; onChanged: () => void }) {
  const tasks = useStore(store, (s) => s.tasks);
  const [taskId, setTaskId] = useState<string | null>(null);
  const [what, setWhat] = useState('');
  const [prune, setPrune] = useState({ keep_daily: '7', keep_weekly: '4', keep_last: '', dry_run: true });
  const [showPrune, setShowPrune] = useState(false);
  const { busy, error, run } = useAction();
  const mine = backups.filter((b) => b.repo === repo.name && !b.error);
  const unreachable = backups.find((b) => b.repo === repo.name && b.unreachable);
  const logical = mine.reduce((n, b) => n + (b.size ?? 0), 0);
  const read = mine.reduce((n, b) => n + (b.bytes_read ?? 0), 0);
  const stored = mine.reduce((n, b) => n + (b.bytes_uploaded ?? 0), 0);
  const ratio = stored ? read / stored : 0;
  const verified = lastVerify(tasks, repo.name);
  const base = `/api/v1/repos/${encodeURIComponent(repo.name)}`;
  useOnTaskEnd(useTask(taskId), onChanged);

  return (
    <section class="card" data-testid={`repo-${repo.name}`}>
      <h2>
        {repo.name} <span class="muted mono">{repo.url}</span>
      </h2>
      {unreachable ? <ErrorBox message={`cannot be read: ${unreachable.unreachable}`} /> : null}
      <dl class="facts">
        <dt>Encryption</dt>
        <dd>{repo.encrypted ? `yes (${repo.key})` : 'none'}</dd>
        <dt>Backups</dt>
        <dd>{mine.length}</dd>
        <dt>Size (all backups, as disks)</dt>
        <dd>{formatBytes(logical)}</dd>
        <dt>Data read</dt>
        <dd>{formatBytes(read)}</dd>
        <dt>Stored (new data written)</dt>
        <dd>{formatBytes(stored)}</dd>
        <dt>Dedup ratio</dt>
        <dd title="data read from the disks against what was written to the repository (dedup and compression); pruned backups are not counted">
          {ratio ? `${ratio.toFixed(ratio < 10 ? 1 : 0)} : 1` : '—'}
        </dd>
        <dt>Last verify</dt>
        <dd>{verified ? `${stateLabel(verified.state)} ${formatRelative(verified.finished)}${verified.error ? ': ' + verified.error : ''}` : 'not since pampad started'}</dd>
      </dl>
      <div class="row">
        <button
          type="button"
          disabled={busy}
          onClick={() =>
            run(async () => {
              const ref = await api.post<TaskRef>(`${base}/verify`, {});
              setWhat('verify');
              setTaskId(trackTask(ref, 'verify', repo.name));
            })
          }
        >
          Verify
        </button>
        <button type="button" disabled={busy} aria-expanded={showPrune} onClick={() => setShowPrune(!showPrune)}>
          Prune…
        </button>
        <button
          type="button"
          class="danger-outline"
          disabled={busy}
          onClick={() =>
            run(async () => {
              if (!window.confirm(`Forget repository ${repo.name}? Its backups stay where they are; adding it again finds them.`)) return;
              await api.del(base);
              await refreshRepos();
              onChanged();
            })
          }
        >
          Forget
        </button>
      </div>
      {showPrune ? (
        <InlineForm
          onSubmit={() => {
            const body: Record<string, unknown> = { dry_run: prune.dry_run };
            for (const k of ['keep_last', 'keep_daily', 'keep_weekly'] as const) if (prune[k].trim()) body[k] = Number(prune[k]);
            run(async () => {
              const ref = await api.post<TaskRef>(`${base}/prune`, body);
              setWhat(prune.dry_run ? 'prune (dry run)' : 'prune');
              setTaskId(trackTask(ref, 'prune', repo.name));
            });
          }}
        >
          <TextField label="Keep last" name="keep_last" type="number" min={0} value={prune.keep_last} onValue={(v) => setPrune({ ...prune, keep_last: v })} />
          <TextField label="Keep daily" name="keep_daily" type="number" min={0} value={prune.keep_daily} onValue={(v) => setPrune({ ...prune, keep_daily: v })} />
          <TextField label="Keep weekly" name="keep_weekly" type="number" min={0} value={prune.keep_weekly} onValue={(v) => setPrune({ ...prune, keep_weekly: v })} />
          <label class="check">
            <input type="checkbox" name="dry_run" checked={prune.dry_run} onChange={(e) => setPrune({ ...prune, dry_run: e.currentTarget.checked })} /> dry run (change nothing)
          </label>
          <button type="submit" disabled={busy}>
            Prune
          </button>
        </InlineForm>
      ) : null}
      <ErrorBox message={error} />
      <TaskResult id={taskId} what={what} />
    </section>
  );
}

function AddRepo({ onAdded }: { onAdded: () => void }) {
  const [f, setF] = useState({ name: '', url: '', enc: 'passphrase', file: '' });
  const { busy, error, run } = useAction();
  return (
    <InlineForm
      onSubmit={() => {
        const body: Record<string, unknown> = { name: f.name.trim(), url: f.url.trim() };
        if (f.enc === 'none') body.no_encryption = true;
        else if (f.enc === 'passphrase') body.passphrase_file = f.file.trim();
        else body.key_file = f.file.trim();
        run(async () => {
          await api.post('/api/v1/repos', body);
          setF({ name: '', url: '', enc: f.enc, file: '' });
          await refreshRepos();
          onAdded();
        });
      }}
    >
      <TextField label="Name" name="name" required value={f.name} onValue={(v) => setF({ ...f, name: v })} />
      <TextField label="Location" hint="a directory, or sftp://user@host/path" name="url" required value={f.url} onValue={(v) => setF({ ...f, url: v })} />
      <Field label="Encryption">
        <select value={f.enc} onChange={(e) => setF({ ...f, enc: e.currentTarget.value })}>
          <option value="passphrase">passphrase file</option>
          <option value="key">key file (key kept only there)</option>
          <option value="none">none</option>
        </select>
      </Field>
      {f.enc !== 'none' ? (
        <TextField label={f.enc === 'passphrase' ? 'Passphrase file on the host' : 'Key file on the host'} name={f.enc === 'passphrase' ? 'passphrase_file' : 'key_file'} required value={f.file} onValue={(v) => setF({ ...f, file: v })} />
      ) : null}
      <button type="submit" class="primary" disabled={busy}>
        Add repository
      </button>
      <ErrorBox message={error} />
    </InlineForm>
  );
}

/** Schedules and drills: their list, and running or removing one of them. */
function useJobs<T>(path: string, kind: string) {
  const list = useAsync(() => api.get<T[]>(path), []);
  const [taskId, setTaskId] = useState<string | null>(null);
  const action = useAction();
  useOnTaskEnd(useTask(taskId), list.reload);
  const item = (id: string) => `${path}/${encodeURIComponent(id)}`;
  return {
    ...action,
    list,
    taskId,
    runNow: (id: string, target: string) =>
      action.run(async () => {
        const ref = await api.post<TaskRef>(`${item(id)}/run`, {});
        setTaskId(trackTask(ref, kind, target));
      }),
    remove: (id: string) =>
      action.run(async () => {
        await api.del(item(id));
        list.reload();
      }),
    add: (body: Record<string, unknown>) =>
      action.run(async () => {
        await api.post(path, body);
        list.reload();
      }),
  };
}

/** A job's last cells: Run now and Remove. */
function JobButtons({ jobs, id, target, what }: { jobs: ReturnType<typeof useJobs>; id: string; target: string; what: string }) {
  return (
    <td class="nowrap">
      <button type="button" class="small" disabled={jobs.busy} onClick={() => jobs.runNow(id, target)}>
        Run now
      </button>
      <button type="button" class="small danger-outline" disabled={jobs.busy} aria-label={`Remove ${what} ${id}`} onClick={() => jobs.remove(id)}>
        Remove
      </button>
    </td>
  );
}

/** A job's last result, in red when it failed. */
function LastResult({ result }: { result?: string }) {
  return <td class={result?.startsWith('failed') ? 'bad-text' : ''}>{result || '—'}</td>;
}

/** A time as "3 h ago", the exact time on hover. */
function When({ at }: { at?: number }) {
  return <td title={formatTime(at)}>{formatRelative(at)}</td>;
}

function Schedules() {
  const { repos, vms } = useStore(store, (s) => ({ repos: s.repos, vms: s.vms }));
  const jobs = useJobs<Schedule>('/api/v1/schedules', 'schedule');
  const { list, busy } = jobs;
  const [f, setF] = useState({ vms: [] as string[], repo: '', daily: '02:30', keep_daily: '7', keep_weekly: '4' });

  return (
    <section class="card">
      <h2>Daily backup schedules</h2>
      <ErrorBox message={list.error} />
      <DataTable
        columns={['ID', 'VMs', 'Repository', 'Daily at', 'Keep', 'Last run', 'Last result', 'Next run', '']}
        empty={list.data?.length === 0 ? 'no schedules' : undefined}
      >
        {(list.data ?? []).map((s) => (
          <tr key={s.id}>
            <td class="mono">{s.id}</td>
            <td>{s.vms.join(', ')}</td>
            <td>{s.repo}</td>
            <td>{s.daily}</td>
            <td>
              {Object.entries(s.keep ?? {})
                .filter(([, v]) => v)
                .map(([k, v]) => `${k.replace('keep_', '')} ${v}`)
                .join(', ') || '—'}
            </td>
            <When at={s.last_run} />
            <LastResult result={s.last_result} />
            <When at={s.next_run} />
            <JobButtons jobs={jobs} id={s.id} target={s.id} what="schedule" />
          </tr>
        ))}
      </DataTable>
      <InlineForm
        onSubmit={() => {
          const keep: Record<string, number> = {};
          if (f.keep_daily.trim()) keep.keep_daily = Number(f.keep_daily);
          if (f.keep_weekly.trim()) keep.keep_weekly = Number(f.keep_weekly);
          void jobs.add({ vms: f.vms, repo: f.repo || repos[0]?.name, daily: f.daily, keep });
        }}
      >
        <Field label="VMs" hint="Ctrl-click for several">
          <select name="vms" multiple size={Math.min(4, Math.max(2, vms.length))} onChange={(e) => setF({ ...f, vms: Array.from(e.currentTarget.selectedOptions).map((o) => o.value) })}>
            {vms.map((v) => (
              <option key={v.name} value={v.name} selected={f.vms.includes(v.name)}>
                {v.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Repository">
          <Select name="repo" value={f.repo} options={repos.map((r) => r.name)} onValue={(repo) => setF({ ...f, repo })} />
        </Field>
        <TextField label="Daily at (HH:MM)" name="daily" required pattern="\d{1,2}:\d{2}" value={f.daily} onValue={(v) => setF({ ...f, daily: v })} />
        <TextField label="Keep daily" name="keep_daily" type="number" min={0} value={f.keep_daily} onValue={(v) => setF({ ...f, keep_daily: v })} />
        <TextField label="Keep weekly" name="keep_weekly" type="number" min={0} value={f.keep_weekly} onValue={(v) => setF({ ...f, keep_weekly: v })} />
        <button type="submit" disabled={busy || !repos.length || !f.vms.length}>
          Add schedule
        </button>
      </InlineForm>
      <ErrorBox message={jobs.error} />
      <TaskResult id={jobs.taskId} what="scheduled backup" />
    </section>
  );
}

function Drills() {
  const { repos, vms } = useStore(store, (s) => ({ repos: s.repos, vms: s.vms }));
  const jobs = useJobs<Drill>('/api/v1/drills', 'drill');
  const { list, busy } = jobs;
  const [f, setF] = useState({ vm: '', repo: '', day: 'sun', time: '03:00', check: '' });

  return (
    <section class="card">
      <h2>Weekly restore drills</h2>
      <p class="muted">A drill restores a VM's latest backup to a scratch VM, runs a check in it, and measures how long recovery took.</p>
      <ErrorBox message={list.error} />
      <DataTable
        columns={['ID', 'VM', 'Repository', 'When', 'Check', 'Last run', 'Last result', 'Recovery time', 'Next run', '']}
        empty={list.data?.length === 0 ? 'no drills' : undefined}
      >
        {(list.data ?? []).map((d) => (
          <tr key={d.id}>
            <td class="mono">{d.id}</td>
            <td>{d.vm}</td>
            <td>{d.repo}</td>
            <td>
              {d.day} {d.time}
            </td>
            <td class="mono">{d.check || '—'}</td>
            <When at={d.last_run} />
            <LastResult result={d.last_result} />
            <td>{d.last_recovery_seconds ? formatDuration(d.last_recovery_seconds) : '—'}</td>
            <When at={d.next_run} />
            <JobButtons jobs={jobs} id={d.id} target={d.vm} what="drill" />
          </tr>
        ))}
      </DataTable>
      <InlineForm
        onSubmit={() => {
          const body: Record<string, string> = { vm: f.vm || vms[0]?.name, repo: f.repo || repos[0]?.name, day: f.day, time: f.time };
          if (f.check.trim()) body.check = f.check.trim();
          void jobs.add(body);
        }}
      >
        <Field label="VM">
          <Select name="vm" value={f.vm} options={vms.map((v) => v.name)} onValue={(vm) => setF({ ...f, vm })} />
        </Field>
        <Field label="Repository">
          <Select name="repo" value={f.repo} options={repos.map((r) => r.name)} onValue={(repo) => setF({ ...f, repo })} />
        </Field>
        <Field label="Day">
          <Select name="day" value={f.day} options={DAYS} onValue={(day) => setF({ ...f, day })} />
        </Field>
        <TextField label="Time (HH:MM)" name="time" required value={f.time} onValue={(v) => setF({ ...f, time: v })} />
        <TextField label="Check in the guest" hint="a shell command; exit 0 = healthy" name="check" placeholder="systemctl is-system-running" value={f.check} onValue={(v) => setF({ ...f, check: v })} />
        <button type="submit" disabled={busy || !repos.length || !vms.length}>
          Add drill
        </button>
      </InlineForm>
      <ErrorBox message={jobs.error} />
      <TaskResult id={jobs.taskId} what="restore drill" />
    </section>
  );
}

export function ReposPage() {
  const repos = useStore(store, (s) => s.repos);
  const backups = useAsync(() => api.get<Backup[]>('/api/v1/backups'), []);
  useEffect(() => {
    void refreshRepos().catch(() => {});
  }, []);
  return (
    <div class="page">
      <h1>Backup repositories</h1>
      <ErrorBox message={backups.error} />
      {repos.length === 0 ? <p class="muted">No repositories yet.</p> : null}
      {repos.map((r) => (
        <RepoCard key={r.name} repo={r} backups={backups.data ?? []} onChanged={backups.reload} />
      ))}
      <section class="card">
        <h2>Add a repository</h2>
        <AddRepo onAdded={backups.reload} />
      </section>
      <Schedules />
      <Drills />
    </div>
  );
}
