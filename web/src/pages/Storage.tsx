// The Storage page: pools with their free space, each pool's volumes, and
// importing an image from a host path (a task), creating and deleting volumes.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/session';
import type { Pool, TaskRef, Volume } from '../api/types';
import { formatBytes } from '../lib/format';
import { vmHref } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { refreshPools, store } from '../state';
import { ErrorBox, Field, ProgressBar, trackTask, useAction, useTask } from '../components/ui';

function PoolVolumes({ pool }: { pool: Pool }) {
  const vols = useAsync(() => api.get<Volume[]>(`/api/v1/pools/${encodeURIComponent(pool.name)}/volumes`), [pool.name]);
  const [importName, setImportName] = useState('');
  const [source, setSource] = useState('');
  const [newName, setNewName] = useState('');
  const [newSize, setNewSize] = useState('10G');
  const [taskId, setTaskId] = useState<string | null>(null);
  const task = useTask(taskId);
  const { busy, error, run } = useAction();
  const base = `/api/v1/pools/${encodeURIComponent(pool.name)}`;

  useEffect(() => {
    if (task && task.state !== 'running') {
      vols.reload();
      void refreshPools().catch(() => {});
    }
  }, [task?.state]);

  return (
    <section class="card">
      <h2>
        Volumes in {pool.name} <span class="muted">({pool.path})</span>
      </h2>
      <ErrorBox message={vols.error} />
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Format</th>
              <th>Size</th>
              <th>Allocated</th>
              <th>Used by</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(vols.data ?? []).map((v) => (
              <tr key={v.name}>
                <td>{v.name}</td>
                <td>{v.format}</td>
                <td>{formatBytes(v.size)}</td>
                <td>{formatBytes(v.allocated)}</td>
                <td>{v.vm ? <a href={vmHref(v.vm)}>{v.vm}</a> : <span class="muted">—</span>}</td>
                <td>
                  {v.vm ? null : (
                    <button
                      type="button"
                      class="small danger-outline"
                      disabled={busy}
                      aria-label={`Delete volume ${v.name}`}
                      onClick={() =>
                        run(async () => {
                          if (!window.confirm(`Delete volume ${v.name} in ${pool.name}? Its data is lost.`)) return;
                          await api.del(`${base}/volumes/${encodeURIComponent(v.name)}`);
                          vols.reload();
                          await refreshPools();
                        })
                      }
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
            {vols.data && vols.data.length === 0 ? (
              <tr>
                <td colSpan={6} class="muted">
                  no volumes
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>

      <div class="forms">
        <form
          class="form inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const ref = await api.post<TaskRef>(`${base}/import`, { name: importName.trim(), source: source.trim() });
              setTaskId(trackTask(ref, 'import', `${pool.name}/${importName.trim()}`));
            });
          }}
        >
          <h3>Import an image from the host</h3>
          <Field label="Volume name">
            <input name="name" required value={importName} onInput={(e) => setImportName(e.currentTarget.value)} />
          </Field>
          <Field label="Image path on the host" hint="raw, qcow2, vmdk, vhd, vhdx; in an allowed directory">
            <input name="source" required placeholder="/var/lib/pampa/images/disk.vmdk" value={source} onInput={(e) => setSource(e.currentTarget.value)} />
          </Field>
          <button type="submit" class="primary" disabled={busy}>
            Import
          </button>
        </form>
        <form
          class="form inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              await api.post(`${base}/volumes`, { name: newName.trim(), size: newSize.trim() });
              setNewName('');
              vols.reload();
              await refreshPools();
            });
          }}
        >
          <h3>New blank volume</h3>
          <Field label="Volume name">
            <input name="name" required value={newName} onInput={(e) => setNewName(e.currentTarget.value)} />
          </Field>
          <Field label="Size">
            <input name="size" required value={newSize} onInput={(e) => setNewSize(e.currentTarget.value)} />
          </Field>
          <button type="submit" disabled={busy}>
            Create volume
          </button>
        </form>
      </div>
      {task ? (
        task.state === 'running' ? (
          <div class="inline-task">
            <ProgressBar value={task.progress} label="import" /> <span>{task.message}</span>
          </div>
        ) : task.state === 'failed' ? (
          <ErrorBox message={task.error || 'the import failed'} />
        ) : (
          <p class="ok-text">import {task.state}</p>
        )
      ) : null}
      <ErrorBox message={error} />
    </section>
  );
}

export function StoragePage({ pool }: { pool?: string }) {
  const pools = useStore(store, (s) => s.pools);
  const [name, setName] = useState('');
  const [path, setPath] = useState('');
  const { busy, error, run } = useAction();
  const selected = pools.find((p) => p.name === pool) ?? (pools.length === 1 ? pools[0] : undefined);

  useEffect(() => {
    void refreshPools().catch(() => {});
  }, []);

  return (
    <div class="page">
      <h1>Storage</h1>
      <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>Pool</th>
              <th>Type</th>
              <th>Path</th>
              <th>Free</th>
              <th>Capacity</th>
              <th>Used</th>
            </tr>
          </thead>
          <tbody>
            {pools.map((p) => {
              const used = p.capacity ? 1 - p.available / p.capacity : 0;
              return (
                <tr key={p.name} class={selected?.name === p.name ? 'selected' : ''}>
                  <td>
                    <a href={`#/storage/${encodeURIComponent(p.name)}`}>{p.name}</a>
                  </td>
                  <td>{p.type}</td>
                  <td class="mono">{p.path}</td>
                  <td>{formatBytes(p.available)}</td>
                  <td>{formatBytes(p.capacity)}</td>
                  <td class="meter-cell">
                    <ProgressBar value={used} label={`${p.name} used`} /> {Math.round(used * 100)} %
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <form
        class="form inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          run(async () => {
            await api.post('/api/v1/pools', { name: name.trim(), path: path.trim() });
            setName('');
            setPath('');
            await refreshPools();
          });
        }}
      >
        <Field label="New pool name">
          <input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Directory on the host">
          <input name="path" required value={path} onInput={(e) => setPath(e.currentTarget.value)} />
        </Field>
        <button type="submit" disabled={busy}>
          Add pool
        </button>
      </form>
      <ErrorBox message={error} />
      {selected ? <PoolVolumes key={selected.name} pool={selected} /> : pools.length ? <p class="muted">Pick a pool to see its volumes.</p> : null}
    </div>
  );
}
