// The Storage page: pools with their free space, each pool's volumes, and
// importing an image from a host path or uploading one from the browser
// (both end in an import task), creating and deleting volumes.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api/session';
import { messageOf } from '../api/client';
import type { Pool, TaskRef, Volume } from '../api/types';
import { formatBytes, formatRate, volumeNameFor } from '../lib/format';
import { vmHref } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { useStore } from '../lib/store';
import { refreshPools, store } from '../state';
import { DataTable, DeleteButton, ErrorBox, Field, InlineForm, InlineTask, ProgressBar, Select, TextField, trackTask, useAction, useOnTaskEnd, useTask } from '../components/ui';

/** What ?format= accepts; '' lets qemu-img on the host tell. */
const UPLOAD_FORMATS = ['qcow2', 'raw', 'vmdk', 'vpc', 'vhdx'];

interface Sending {
  sent: number;
  total: number;
  started: number;
  now: number;
}

/**
 * Uploads a disk image from this computer into the pool (PUT .../upload/NAME)
 * with a progress bar and Cancel; pampad answers with the import task that
 * turns it into the volume, which onTask gets.
 */
function UploadImage({ pool, onTask }: { pool: Pool; onTask: (id: string | null) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [volume, setVolume] = useState('');
  const [format, setFormat] = useState('');
  const [sending, setSending] = useState<Sending | null>(null);
  const [error, setError] = useState('');
  const abort = useRef<AbortController | null>(null);

  const upload = async () => {
    if (!file || abort.current) return;
    const name = volume.trim();
    const ctl = new AbortController();
    abort.current = ctl;
    const started = Date.now();
    setSending({ sent: 0, total: file.size, started, now: started });
    setError('');
    try {
      const path = `/api/v1/pools/${encodeURIComponent(pool.name)}/upload/${encodeURIComponent(name)}` + (format ? `?format=${encodeURIComponent(format)}` : '');
      const ref = await api.upload<TaskRef>(path, file, {
        signal: ctl.signal,
        onProgress: (sent, total) => setSending({ sent, total, started, now: Date.now() }),
      });
      onTask(trackTask(ref, 'import', `${pool.name}/${name}`));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      abort.current = null;
      setSending(null);
    }
  };

  const seconds = sending ? (sending.now - sending.started) / 1000 : 0;
  return (
    <InlineForm onSubmit={() => void upload()}>
      <h3>Upload an image from this computer</h3>
      <Field label="Image file" hint="qcow2, raw, vmdk, vhd, vhdx; converted to qcow2">
        <input
          type="file"
          name="file"
          data-testid="upload-file"
          required
          disabled={!!sending}
          onChange={(e) => {
            const f = e.currentTarget.files?.[0] ?? null;
            setFile(f);
            if (f) setVolume(volumeNameFor(f.name));
          }}
        />
      </Field>
      <TextField label="Volume name" name="volume" required value={volume} disabled={!!sending} onValue={setVolume} />
      <Field label="Format">
        <Select name="format" value={format} options={UPLOAD_FORMATS} blank="detect" onValue={setFormat} />
      </Field>
      <button type="submit" class="primary" disabled={!!sending || !file || !volume.trim()}>
        Upload
      </button>
      {sending ? (
        <div class="inline-task">
          <ProgressBar value={sending.total ? sending.sent / sending.total : 0} label="upload" />
          <span>
            {formatBytes(sending.sent)} of {formatBytes(sending.total)}
            {seconds > 0 ? ` · ${formatRate(sending.sent / seconds)}` : ''}
          </span>
          <button type="button" class="small" onClick={() => abort.current?.abort()}>
            Cancel
          </button>
        </div>
      ) : null}
      <ErrorBox message={error} />
    </InlineForm>
  );
}

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
  const changed = async () => {
    vols.reload();
    await refreshPools();
  };

  useOnTaskEnd(task, () => void changed().catch(() => {}));

  return (
    <section class="card">
      <h2>
        Volumes in {pool.name} <span class="muted">({pool.path})</span>
      </h2>
      <ErrorBox message={vols.error} />
      <DataTable columns={['Name', 'Format', 'Size', 'Allocated', 'Used by', '']} empty={vols.data?.length === 0 ? 'no volumes' : undefined}>
        {(vols.data ?? []).map((v) => (
          <tr key={v.name}>
            <td>{v.name}</td>
            <td>{v.format}</td>
            <td>{formatBytes(v.size)}</td>
            <td>{formatBytes(v.allocated)}</td>
            <td>{v.vm ? <a href={vmHref(v.vm)}>{v.vm}</a> : <span class="muted">—</span>}</td>
            <td>
              {v.vm ? null : (
                <DeleteButton
                  label={`Delete volume ${v.name}`}
                  question={`Delete volume ${v.name} in ${pool.name}? Its data is lost.`}
                  busy={busy}
                  run={run}
                  remove={async () => {
                    await api.del(`${base}/volumes/${encodeURIComponent(v.name)}`);
                    await changed();
                  }}
                />
              )}
            </td>
          </tr>
        ))}
      </DataTable>

      <div class="forms">
        <UploadImage pool={pool} onTask={setTaskId} />
        <InlineForm
          onSubmit={() =>
            run(async () => {
              const ref = await api.post<TaskRef>(`${base}/import`, { name: importName.trim(), source: source.trim() });
              setTaskId(trackTask(ref, 'import', `${pool.name}/${importName.trim()}`));
            })
          }
        >
          <h3>Import an image from the host</h3>
          <TextField label="Volume name" name="name" required value={importName} onValue={setImportName} />
          <TextField label="Image path on the host" hint="raw, qcow2, vmdk, vhd, vhdx; in an allowed directory" name="source" required placeholder="/var/lib/pampa/images/disk.vmdk" value={source} onValue={setSource} />
          <button type="submit" class="primary" disabled={busy}>
            Import
          </button>
        </InlineForm>
        <InlineForm
          onSubmit={() =>
            run(async () => {
              await api.post(`${base}/volumes`, { name: newName.trim(), size: newSize.trim() });
              setNewName('');
              await changed();
            })
          }
        >
          <h3>New blank volume</h3>
          <TextField label="Volume name" name="name" required value={newName} onValue={setNewName} />
          <TextField label="Size" name="size" required value={newSize} onValue={setNewSize} />
          <button type="submit" disabled={busy}>
            Create volume
          </button>
        </InlineForm>
      </div>
      {task ? (
        task.state === 'running' ? (
          <InlineTask task={task} label="import" />
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
      <DataTable columns={['Pool', 'Type', 'Path', 'Free', 'Capacity', 'Used']}>
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
      </DataTable>
      <InlineForm
        onSubmit={() =>
          run(async () => {
            await api.post('/api/v1/pools', { name: name.trim(), path: path.trim() });
            setName('');
            setPath('');
            await refreshPools();
          })
        }
      >
        <TextField label="New pool name" name="name" required value={name} onValue={setName} />
        <TextField label="Directory on the host" name="path" required value={path} onValue={setPath} />
        <button type="submit" disabled={busy}>
          Add pool
        </button>
      </InlineForm>
      <ErrorBox message={error} />
      {selected ? <PoolVolumes key={selected.name} pool={selected} /> : pools.length ? <p class="muted">Pick a pool to see its volumes.</p> : null}
    </div>
  );
}
