// The Host page: what this host is, its capacity (physical against what
// the running VMs committed, balloon and KSM savings, room for more VMs),
// KSM on or off, its history graphs, and its readiness checks (each with
// what it means and how to fix it). Its VMs, and the pool's other hosts,
// are on the Hosts page. pampad answers for the host it runs on only.
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { lazy, Suspense } from 'preact/compat';
import { api } from '../api/session';
import { getCapacity, setKsm, type VmSize } from '../api/resources';
import type { Capacity, HostCheck, HostInfo } from '../api/types';
import { capacityRows, dynamicText, fitsSize, fitsText, ksmText } from '../lib/capacity';
import { formatBytes } from '../lib/format';
import { isPool } from '../lib/pool';
import { hostsHref } from '../lib/router';
import { useStore } from '../lib/store';
import { useAsync } from '../lib/useAsync';
import { usePoll } from '../lib/usePoll';
import { store } from '../state';
import { ErrorBox, InlineForm, ProgressBar, TextField, useAction } from '../components/ui';

// The graphs pull in uPlot: loaded when the page shows.
const HostCharts = lazy(() => import('../components/PerfCharts').then((m) => ({ default: m.HostCharts })));

/** How often the capacity card asks again: VMs start and stop, the balloon moves. */
const CAPACITY_POLL_MS = 15_000;

function CapacityCard() {
  const [size, setSize] = useState<VmSize | undefined>(undefined);
  const [cpus, setCpus] = useState('1');
  const [memory, setMemory] = useState('256M');
  const [capacity, setCapacity] = useState<Capacity | null>(null);
  const poll = usePoll(async () => setCapacity(await getCapacity(api, size)), CAPACITY_POLL_MS, [size?.cpus, size?.memory_mib]);
  const ksm = useAction();
  const count = useAction();
  const c = capacity;
  const toggleKsm = () =>
    ksm.run(async () => {
      const k = await setKsm(api, !c?.ksm.run);
      setCapacity((old) => (old ? { ...old, ksm: k } : old));
    });
  const recount = () => {
    const s = fitsSize(cpus, memory);
    if ('error' in s) return count.setError(s.error);
    count.setError('');
    setSize(s.size);
  };

  return (
    <section class="card capacity" aria-label="Capacity" data-testid="capacity">
      <h2>
        Capacity {c ? <span class="muted">committed by the {c.vms_running ?? 0} running VM(s)</span> : null}
      </h2>
      <ErrorBox message={poll.error} />
      {!c ? (
        poll.loaded ? null : <p class="muted">Loading…</p>
      ) : (
        <dl class="facts">
          {capacityRows(c).map((r) => (
            <Fragment key={r.label}>
              <dt>{r.label}</dt>
              <dd data-testid={`capacity-${r.label.toLowerCase()}`}>
                <span class="meter-cell">
                  <ProgressBar value={r.fraction} label={`${r.label} committed`} tone={r.tone} /> {r.text}: {r.ratio}
                </span>
              </dd>
            </Fragment>
          ))}
          <dt>Dynamic memory</dt>
          <dd>{dynamicText(c) || 'no running VM has dynamic memory'}</dd>
          <dt>Balloon</dt>
          <dd>{c.balloon_saved_bytes > 0 ? `${formatBytes(c.balloon_saved_bytes)} taken back from guests now` : 'takes nothing back now'}</dd>
          <dt>KSM</dt>
          <dd>
            <span class="row">
              <span data-testid="ksm-state">{ksmText(c.ksm)}</span>
              {c.ksm.available !== false ? (
                <button
                  type="button"
                  class="small"
                  data-testid="ksm-toggle"
                  disabled={ksm.busy}
                  title="kernel samepage merging: VMs share equal memory pages, which saves memory for some CPU"
                  onClick={toggleKsm}
                >
                  {ksm.busy ? 'Asking…' : c.ksm.run ? 'Turn KSM off' : 'Turn KSM on'}
                </button>
              ) : null}
            </span>
            <ErrorBox message={ksm.error} />
          </dd>
          <dt>Room</dt>
          <dd data-testid="capacity-fits">{fitsText(c)}</dd>
        </dl>
      )}
      <InlineForm onSubmit={recount}>
        <TextField label="Count VMs of CPUs" name="fit-cpus" type="number" min={1} max={999} step={1} value={cpus} onValue={setCpus} />
        <TextField label="and memory" hint="256M, 2G" name="fit-memory" autocomplete="off" value={memory} onValue={setMemory} />
        <button type="submit">Count</button>
      </InlineForm>
      <ErrorBox message={count.error} />
    </section>
  );
}

// What each check is about, in a user's words.
const MEANING: Record<string, string> = {
  qemu: 'QEMU runs the virtual machines.',
  'qemu-img': 'qemu-img creates, converts and resizes disk images.',
  'kvm-device': 'Hardware virtualization: without /dev/kvm, VMs run emulated and slowly.',
  accelerator: 'What VMs actually run on: KVM (fast) or TCG (software emulation).',
  bridge: 'Networks need bridges and tap devices (iproute2).',
  dnsmasq: 'dnsmasq gives addresses (DHCP) to guests on NAT networks.',
  nftables: 'nftables lets guests on NAT networks reach outside (masquerade).',
  'ip-forward': 'The kernel must forward packets for NAT networks.',
  cgroups: 'cgroups v2 enforce per-VM CPU and memory limits.',
  uefi: 'OVMF is the UEFI firmware for VMs created with firmware uefi.',
  'disk-space': 'Free space for disks, snapshots and local backups.',
  'file-restore': 'The restore appliance lets you browse files inside backups.',
  'backup-schedules': 'Whether the daily backups last succeeded.',
  'restore-drills': 'Whether the weekly restore drills prove the backups restore.',
};

export function HostPage() {
  const host = useAsync(() => api.get<HostInfo>('/api/v1/host'), []);
  const check = useAsync(() => api.get<{ ok: boolean; checks: HostCheck[] }>('/api/v1/host/check'), []);
  const hosts = useStore(store, (s) => s.hosts);
  const pooled = isPool(hosts);

  return (
    <div class="page">
      <h1>Host {host.data?.hostname}</h1>
      <ErrorBox message={host.error} />
      {host.data ? (
        <dl class="facts">
          <dt>Hostname</dt>
          <dd>{host.data.hostname}</dd>
          <dt>pampad version</dt>
          <dd>{host.data.version}</dd>
          <dt>Accelerator</dt>
          <dd>
            {host.data.accel} <span class="muted">{host.data.accel_reason}</span>
          </dd>
          <dt>VMs</dt>
          <dd>{host.data.vms}</dd>
        </dl>
      ) : null}

      <CapacityCard />

      <h2>Performance</h2>
      <Suspense fallback={<p class="muted">Loading the graphs…</p>}>
        <HostCharts />
      </Suspense>

      <h2>
        Readiness checks{' '}
        {check.data ? <span class={`badge tone-${check.data.ok ? 'ok' : 'bad'}`}>{check.data.ok ? 'ready' : 'not ready'}</span> : null}
        <button type="button" class="small" onClick={check.reload} disabled={check.loading}>
          {check.loading ? 'Checking…' : 'Check again'}
        </button>
      </h2>
      <ErrorBox message={check.error} />
      <ul class="checks">
        {(check.data?.checks ?? []).map((c) => (
          <li key={c.name} class={`check-item tone-${c.status === 'ok' ? 'ok' : c.status === 'warn' ? 'warn' : 'bad'}`}>
            <span class={`badge tone-${c.status === 'ok' ? 'ok' : c.status === 'warn' ? 'warn' : 'bad'}`}>{c.status}</span>
            <div>
              <strong>{c.name}</strong>: {c.detail}
              {MEANING[c.name] ? <div class="muted">{MEANING[c.name]}</div> : null}
              {c.advice ? (
                <div class="advice">
                  To fix: <code>{c.advice}</code>
                </div>
              ) : null}
            </div>
          </li>
        ))}
      </ul>

      <h2>Pool</h2>
      {host.data ? (
        <p>
          {pooled ? `One of ${hosts.length} hosts in the pool: ` : 'This host runs alone (pampad without --cluster): '}
          <a href={hostsHref(host.data.hostname)}>its VMs and the CPUs and memory they have committed</a>
          {pooled ? (
            <>
              , or <a href={hostsHref()}>every host of the pool</a>
            </>
          ) : null}
          .
        </p>
      ) : null}
    </div>
  );
}
