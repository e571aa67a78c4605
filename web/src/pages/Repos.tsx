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
import { ErrorBox, Field, ProgressBar, trackTask, useAction, useTask } from '../components/ui';

function TaskResult({ id, what }: { id: string | null; what: string }) {
  const t = useTask(id);
  if (!t) return null;
  if (t.state === 'running')
    return (
      <div class="inline-task">
        <ProgressBar value={t.progress} label={what} /> <span>{t.message}</span>
      </div>
    );
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
  const t = useTask(taskId);
  useEffect(() => {
    if (t && t.state !== 'running') onChanged();
  }, [t?.state]);

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
        <form
          class="form inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            const body: Record<string, unknown> = { dry_run: prune.dry_run };
            for (const k of ['keep_last', 'keep_daily', 'keep_weekly'] as const) if (prune[k].trim()) body[k] = Number(prune[k]);
            run(async () => {
              const ref = await api.post<TaskRef>(`${base}/prune`, body);
              setWhat(prune.dry_run ? 'prune (dry run)' : 'prune');
              setTaskId(trackTask(ref, 'prune', repo.name));
            });
          }}
        >
          <Field label="Keep last">
            <input name="keep_last" type="number" min={0} value={prune.keep_last} onInput={(e) => setPrune({ ...prune, keep_last: e.currentTarget.value })} />
          </Field>
          <Field label="Keep daily">
            <input name="keep_daily" type="number" min={0} value={prune.keep_daily} onInput={(e) => setPrune({ ...prune, keep_daily: e.currentTarget.value })} />
          </Field>
          <Field label="Keep weekly">
            <input name="keep_weekly" type="number" min={0} value={prune.keep_weekly} onInput={(e) => setPrune({ ...prune, keep_weekly: e.currentTarget.value })} />
          </Field>
          <label class="check">
            <input type="checkbox" name="dry_run" checked={prune.dry_run} onChange={(e) => setPrune({ ...prune, dry_run: e.currentTarget.checked })} /> dry run (change nothing)
          </label>
          <button type="submit" disabled={busy}>
            Prune
          </button>
        </form>
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
    <form
      class="form inline-form"
      onSubmit={(e) => {
        e.preventDefault();
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
      <Field label="Name">
        <input name="name" required value={f.name} onInput={(e) => setF({ ...f, name: e.currentTarget.value })} />
      </Field>
      <Field label="Location" hint="a directory, or sftp://user@host/path">
        <input name="url" required value={f.url} onInput={(e) => setF({ ...f, url: e.currentTarget.value })} />
      </Field>
      <Field label="Encryption">
        <select value={f.enc} onChange={(e) => setF({ ...f, enc: e.currentTarget.value })}>
          <option value="passphrase">passphrase file</option>
          <option value="key">key file (key kept only there)</option>
          <option value="none">none</option>
        </select>
      </Field>
      {f.enc !== 'none' ? (
        <Field label={f.enc === 'passphrase' ? 'Passphrase file on the host' : 'Key file on the host'}>
          <input name={f.enc === 'passphrase' ? 'passphrase_file' : 'key_file'} required value={f.file} onInput={(e) => setF({ ...f, file: e.currentTarget.value })} />
        </Field>
      ) : null}
      <button type="submit" class="primary" disabled={busy}>
        Add repository
      </button>
      <ErrorBox message={error} />
    </form>
  );
}

function Schedules() {
  const { repos, vms } = useStore(store, (s) => ({ repos: s.repos, vms: s.vms }));
  const list = useAsync(() => api.get<Schedule[]>('/api/v1/schedules'), []);
  const [f, setF] = useState({ vms: [] as string[], repo: '', daily: '02:30', keep_daily: '7', keep_weekly: '4' });
  const [taskId, setTaskId] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const t = useTask(taskId);
  useEffect(() => {
    if (t && t.state !== 'running') list.reload();
  }, [t?.state]);

  return (
    <section class="card">
      <h2>Daily backup schedules</h2>
      <ErrorBox message={list.error} />
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>ID</th>
              <th>VMs</th>
              <th>Repository</th>
              <th>Daily at</th>
              <th>Keep</th>
              <th>Last run</th>
              <th>Last result</th>
              <th>Next run</th>
              <th />
            </tr>
          </thead>
          <tbody>
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
                <td title={formatTime(s.last_run)}>{formatRelative(s.last_run)}</td>
                <td class={s.last_result?.startsWith('failed') ? 'bad-text' : ''}>{s.last_result || '—'}</td>
                <td title={formatTime(s.next_run)}>{formatRelative(s.next_run)}</td>
                <td class="nowrap">
                  <button
                    type="button"
                    class="small"
                    disabled={busy}
                    onClick={() =>
                      run(async () => {
                        const ref = await api.post<TaskRef>(`/api/v1/schedules/${encodeURIComponent(s.id)}/run`, {});
                        setTaskId(trackTask(ref, 'schedule', s.id));
                      })
                    }
                  >
                    Run now
                  </button>
                  <button
                    type="button"
                    class="small danger-outline"
                    disabled={busy}
                    aria-label={`Remove schedule ${s.id}`}
                    onClick={() =>
                      run(async () => {
                        await api.del(`/api/v1/schedules/${encodeURIComponent(s.id)}`);
                        list.reload();
                      })
                    }
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
            {list.data && list.data.length === 0 ? (
              <tr>
                <td colSpan={9} class="muted">
                  no schedules
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <form
        class="form inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const keep: Record<string, number> = {};
          if (f.keep_daily.trim()) keep.keep_daily = Number(f.keep_daily);
          if (f.keep_weekly.trim()) keep.keep_weekly = Number(f.keep_weekly);
          run(async () => {
            await api.post('/api/v1/schedules', { vms: f.vms, repo: f.repo || repos[0]?.name, daily: f.daily, keep });
            list.reload();
          });
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
          <select name="repo" value={f.repo} onChange={(e) => setF({ ...f, repo: e.currentTarget.value })}>
            {repos.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Daily at (HH:MM)">
          <input name="daily" required pattern="\d{1,2}:\d{2}" value={f.daily} onInput={(e) => setF({ ...f, daily: e.currentTarget.value })} />
        </Field>
        <Field label="Keep daily">
          <input name="keep_daily" type="number" min={0} value={f.keep_daily} onInput={(e) => setF({ ...f, keep_daily: e.currentTarget.value })} />
        </Field>
        <Field label="Keep weekly">
          <input name="keep_weekly" type="number" min={0} value={f.keep_weekly} onInput={(e) => setF({ ...f, keep_weekly: e.currentTarget.value })} />
        </Field>
        <button type="submit" disabled={busy || !repos.length || !f.vms.length}>
          Add schedule
        </button>
      </form>
      <ErrorBox message={error} />
      <TaskResult id={taskId} what="scheduled backup" />
    </section>
  );
}

function Drills() {
  const { repos, vms } = useStore(store, (s) => ({ repos: s.repos, vms: s.vms }));
  const list = useAsync(() => api.get<Drill[]>('/api/v1/drills'), []);
  const [f, setF] = useState({ vm: '', repo: '', day: 'sun', time: '03:00', check: '' });
  const [taskId, setTaskId] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const t = useTask(taskId);
  useEffect(() => {
    if (t && t.state !== 'running') list.reload();
  }, [t?.state]);

  return (
    <section class="card">
      <h2>Weekly restore drills</h2>
      <p class="muted">A drill restores a VM's latest backup to a scratch VM, runs a check in it, and measures how long recovery took.</p>
      <ErrorBox message={list.error} />
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>ID</th>
              <th>VM</th>
              <th>Repository</th>
              <th>When</th>
              <th>Check</th>
              <th>Last run</th>
              <th>Last result</th>
              <th>Recovery time</th>
              <th>Next run</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(list.data ?? []).map((d) => (
              <tr key={d.id}>
                <td class="mono">{d.id}</td>
                <td>{d.vm}</td>
                <td>{d.repo}</td>
                <td>
                  {d.day} {d.time}
                </td>
                <td class="mono">{d.check || '—'}</td>
                <td title={formatTime(d.last_run)}>{formatRelative(d.last_run)}</td>
                <td class={d.last_result?.startsWith('failed') ? 'bad-text' : ''}>{d.last_result || '—'}</td>
                <td>{d.last_recovery_seconds ? formatDuration(d.last_recovery_seconds) : '—'}</td>
                <td title={formatTime(d.next_run)}>{formatRelative(d.next_run)}</td>
                <td class="nowrap">
                  <button
                    type="button"
                    class="small"
                    disabled={busy}
                    onClick={() =>
                      run(async () => {
                        const ref = await api.post<TaskRef>(`/api/v1/drills/${encodeURIComponent(d.id)}/run`, {});
                        setTaskId(trackTask(ref, 'drill', d.vm));
                      })
                    }
                  >
                    Run now
                  </button>
                  <button
                    type="button"
                    class="small danger-outline"
                    disabled={busy}
                    aria-label={`Remove drill ${d.id}`}
                    onClick={() =>
                      run(async () => {
                        await api.del(`/api/v1/drills/${encodeURIComponent(d.id)}`);
                        list.reload();
                      })
                    }
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
            {list.data && list.data.length === 0 ? (
              <tr>
                <td colSpan={10} class="muted">
                  no drills
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <form
        class="form inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const body: Record<string, string> = { vm: f.vm || vms[0]?.name, repo: f.repo || repos[0]?.name, day: f.day, time: f.time };
          if (f.check.trim()) body.check = f.check.trim();
          run(async () => {
            await api.post('/api/v1/drills', body);
            list.reload();
          });
        }}
      >
        <Field label="VM">
          <select name="vm" value={f.vm} onChange={(e) => setF({ ...f, vm: e.currentTarget.value })}>
            {vms.map((v) => (
              <option key={v.name} value={v.name}>
                {v.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Repository">
          <select name="repo" value={f.repo} onChange={(e) => setF({ ...f, repo: e.currentTarget.value })}>
            {repos.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Day">
          <select name="day" value={f.day} onChange={(e) => setF({ ...f, day: e.currentTarget.value })}>
            {['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'].map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Time (HH:MM)">
          <input name="time" required value={f.time} onInput={(e) => setF({ ...f, time: e.currentTarget.value })} />
        </Field>
        <Field label="Check in the guest" hint="a shell command; exit 0 = healthy">
          <input name="check" placeholder="systemctl is-system-running" value={f.check} onInput={(e) => setF({ ...f, check: e.currentTarget.value })} />
        </Field>
        <button type="submit" disabled={busy || !repos.length || !vms.length}>
          Add drill
        </button>
      </form>
      <ErrorBox message={error} />
      <TaskResult id={taskId} what="restore drill" />
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
