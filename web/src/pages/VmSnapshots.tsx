// The Snapshots tab: the snapshot tree with "you are here", take (with or
// without RAM), revert and delete; each runs as a task.
import { useState } from 'preact/hooks';
import { api } from '../api/session';
import { vmPath } from '../api/client';
import type { Snapshot, SnapshotTree, TaskRef, Vm } from '../api/types';
import { formatRelative, formatTime } from '../lib/format';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { store } from '../state';
import { ErrorBox, Field, ProgressBar, trackTask, useAction, useTask } from '../components/ui';

interface Node {
  snap: Snapshot;
  children: Node[];
}

function buildTree(list: Snapshot[]): Node[] {
  const nodes = new Map(list.map((s) => [s.name, { snap: s, children: [] as Node[] }]));
  const roots: Node[] = [];
  for (const n of nodes.values()) {
    const parent = n.snap.parent ? nodes.get(n.snap.parent) : undefined;
    (parent ? parent.children : roots).push(n);
  }
  const sort = (ns: Node[]) => {
    ns.sort((a, b) => (a.snap.created ?? 0) - (b.snap.created ?? 0));
    ns.forEach((n) => sort(n.children));
  };
  sort(roots);
  return roots;
}

function TaskLine({ id }: { id: string | null }) {
  const t = useTask(id);
  if (!t) return null;
  if (t.state === 'running')
    return (
      <div class="inline-task">
        <ProgressBar value={t.progress} label={t.type ?? 'task'} /> <span class="muted">{t.message}</span>
      </div>
    );
  if (t.state === 'failed') return <ErrorBox message={t.error || 'the task failed'} />;
  return <p class="ok-text">{t.type ?? 'task'}: {t.state}</p>;
}

export function VmSnapshots({ vm }: { vm: Vm }) {
  const rev = useStore(store, (s) => s.snapshotsRev[vm.name] ?? 0);
  const tree = useAsync(() => api.get<SnapshotTree>(vmPath(vm.name, '/snapshots')), [vm.name, rev]);
  const [name, setName] = useState('');
  const [memory, setMemory] = useState(false);
  const [description, setDescription] = useState('');
  const [taskId, setTaskId] = useState<string | null>(null);
  const [confirmRevert, setConfirmRevert] = useState('');
  const { busy, error, run } = useAction();
  const runs = vm.state === 'running' || vm.state === 'paused';

  const take = (e: Event) => {
    e.preventDefault();
    run(async () => {
      const ref = await api.post<TaskRef>(vmPath(vm.name, '/snapshots'), { name: name.trim(), memory, description });
      setTaskId(trackTask(ref, 'snapshot', vm.name));
      setName('');
      setDescription('');
    });
  };
  const revert = (snap: string) =>
    run(async () => {
      setConfirmRevert('');
      const ref = await api.post<TaskRef>(vmPath(vm.name, `/snapshots/${encodeURIComponent(snap)}/revert`), {});
      setTaskId(trackTask(ref, 'snapshot-revert', vm.name));
    });
  const remove = (snap: string) =>
    run(async () => {
      const ref = await api.del<TaskRef>(vmPath(vm.name, `/snapshots/${encodeURIComponent(snap)}`));
      setTaskId(trackTask(ref, 'snapshot-delete', vm.name));
    });

  const current = tree.data?.current ?? '';
  const render = (nodes: Node[], depth: number): preact.JSX.Element[] =>
    nodes.flatMap((n) => [
      <li key={n.snap.name} class={n.snap.name === current ? 'snap current' : 'snap'} data-testid={`snapshot-${n.snap.name}`} style={{ paddingLeft: `${depth * 1.25 + 0.5}rem` }}>
        <span class="snap-name">
          {depth > 0 ? <span aria-hidden="true">└ </span> : null}
          <strong>{n.snap.name}</strong>
          {n.snap.memory ? <span class="badge tone-ok" title="the VM's RAM is saved: reverting brings it back running">RAM</span> : null}
          {n.snap.name === current ? <span class="badge tone-busy">you are here</span> : null}
        </span>
        <span class="muted" title={formatTime(n.snap.created)}>
          {formatRelative(n.snap.created)}
        </span>
        <span class="snap-desc">{n.snap.description}</span>
        <span class="snap-actions">
          {confirmRevert === n.snap.name ? (
            <>
              <span>Lose what changed since?</span>
              <button type="button" class="danger" disabled={busy} onClick={() => revert(n.snap.name)}>
                Revert now
              </button>
              <button type="button" onClick={() => setConfirmRevert('')}>
                Cancel
              </button>
            </>
          ) : (
            <>
              <button type="button" class="small" disabled={busy} onClick={() => setConfirmRevert(n.snap.name)}>
                Revert
              </button>
              <button type="button" class="small danger-outline" disabled={busy} onClick={() => remove(n.snap.name)}>
                Delete
              </button>
            </>
          )}
        </span>
      </li>,
      ...render(n.children, depth + 1),
    ]);

  return (
    <div>
      <form class="form inline-form" onSubmit={take}>
        <Field label="Snapshot name">
          <input name="name" required pattern="[a-z0-9][a-z0-9._\-]{0,62}" title="lower-case letters, digits, dot, dash, underscore" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Description">
          <input name="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </Field>
        <label class="check" title={runs ? 'save the RAM too: reverting resumes the VM at this instant' : 'only a running VM has RAM to save'}>
          <input type="checkbox" name="memory" checked={memory} disabled={!runs} onChange={(e) => setMemory(e.currentTarget.checked)} />
          with memory
        </label>
        <button type="submit" class="primary" disabled={busy || !name.trim()}>
          Take snapshot
        </button>
      </form>
      <ErrorBox message={error} />
      <TaskLine id={taskId} />
      <h2>Snapshot tree</h2>
      <ErrorBox message={tree.error} />
      {tree.data && tree.data.snapshots.length === 0 ? <p class="muted">No snapshots yet.</p> : null}
      {tree.data ? <ul class="snap-tree">{render(buildTree(tree.data.snapshots), 0)}</ul> : null}
      {tree.data && tree.data.snapshots.length > 0 && !current ? <p class="muted">The VM runs from no snapshot (current position: none).</p> : null}
    </div>
  );
}
