// One host of the pool: its state, committed CPUs and memory, the VMs it
// runs, and maintenance. Maintenance on moves its running VMs to other
// hosts in a task (the evacuation), followed here live; off takes VMs again.
import { useState } from 'preact/hooks';
import { api } from '../api/session';
import { getHost, removeHost, setMaintenance } from '../api/pool';
import type { EvacuationResult, PoolHost, Task } from '../api/types';
import { formatMib, formatMs, formatRelative, stateLabel } from '../lib/format';
import { heartbeatAge, isPool } from '../lib/pool';
import { hostsHref, navigate, vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { latestTaskId } from '../lib/tasks';
import { usePoll } from '../lib/usePoll';
import { refreshHosts, store, upsertHost } from '../state';
import { CpuMeter, HostStateBadge, MemoryMeter } from '../components/HostMeters';
import { DataTable, DeleteButton, ErrorBox, InlineTask, Modal, Notice, trackTask, useAction, useTask, VmStateCell } from '../components/ui';
import { HOSTS_PAGE_POLL_MS } from './Hosts';

/** The evacuation's progress, then what moved where, or why some VMs stayed. */
function EvacuationTask({ task: t }: { task: Task }) {
  if (t.state === 'running') return <InlineTask task={t} label="evacuation" idle="starting…" />;
  if (t.state !== 'succeeded') return <ErrorBox message={`evacuation: ${t.error || t.state}`} />;
  const moved = ((t.result ?? {}) as Partial<EvacuationResult>).moved ?? [];
  if (moved.length === 0) return <p class="ok-text">No VM was running here: nothing had to move.</p>;
  return (
    <div class="result">
      <p class="ok-text">Moved {moved.length} VM(s) away:</p>
      <DataTable columns={['VM', 'To', 'Downtime']} compact>
        {moved.map((m) => (
          <tr key={m.vm}>
            <td>
              <a href={vmHref(m.vm)}>{m.vm}</a>
            </td>
            <td>
              <a href={hostsHref(m.to)}>{m.to}</a>
            </td>
            <td>{formatMs(m.downtime_ms)}</td>
          </tr>
        ))}
      </DataTable>
    </div>
  );
}

/** Asks before maintenance goes on or off, then does it. */
function MaintenanceDialog(props: { host: PoolHost; others: number; onClose: () => void; onTask: (id: string | null) => void }) {
  const { host } = props;
  const on = !host.maintenance;
  const { busy, error, run } = useAction();
  const title = `Maintenance ${on ? 'on' : 'off'} for ${host.name}`;
  const confirm = () =>
    run(async () => {
      const reply = await setMaintenance(api, host.name, on);
      if (reply?.task) props.onTask(trackTask({ task: reply.task }, 'host-evacuate', host.name));
      await refreshHosts().catch(() => {});
      props.onClose();
    });

  return (
    <Modal title={title} onClose={props.onClose}>
      {on ? (
        <>
          <p>
            <strong>{host.name}</strong> will take no new VMs, and its {host.running} running VM(s) move live to other hosts of the pool, one after the other, in a task followed
            here. Stopped VMs stay on it.
          </p>
          {host.running > 0 && props.others === 0 ? <Notice>No other host is online: the running VMs have nowhere to go and stay here.</Notice> : null}
        </>
      ) : (
        <p>
          <strong>{host.name}</strong> will take new VMs again. VMs moved away stay where they are.
        </p>
      )}
      <ErrorBox message={error} />
      <div class="row">
        <button type="button" class={on ? 'danger' : 'primary'} disabled={busy} onClick={confirm}>
          {busy ? 'Asking…' : on ? 'Maintenance on' : 'Maintenance off'}
        </button>
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
      </div>
    </Modal>
  );
}

export function HostDetail({ name }: { name: string }) {
  const { hosts, vms } = useStore(store, (s) => ({ hosts: s.hosts, vms: s.vms }));
  // pampad keeps the history and capacity of the host it runs on only.
  const local = useStore(store, (s) => s.host?.hostname === name);
  const poll = usePoll(async () => upsertHost(await getHost(api, name)), HOSTS_PAGE_POLL_MS, [name]);
  const [asking, setAsking] = useState(false);
  const [started, setStarted] = useState<string | null>(null);
  const host = hosts.find((h) => h.name === name);
  const pooled = isPool(hosts);
  const maintenance = !!host?.maintenance;
  // The one started here; else the latest, while it runs or during the
  // maintenance it began (an older one is history: the tasks panel has it).
  const shown = useStore(store, (s) => {
    if (started) return started;
    const id = latestTaskId(s.tasks, 'host-evacuate', name);
    const t = s.tasks.find((x) => x.id === id);
    return t && (t.state === 'running' || maintenance) ? t.id : null;
  });
  const evacuation = useTask(shown);
  const removal = useAction();
  const mine = vms.filter((v) => v.host === name);
  const others = hosts.filter((h) => h.name !== name && h.state === 'online').length;

  if (!host) {
    return (
      <div class="page">
        <h1>Host {name}</h1>
        {poll.error ? <ErrorBox message={poll.error} /> : <p class="muted">Loading…</p>}
        <p>
          <a href={hostsHref()}>Every host</a>
        </p>
      </div>
    );
  }

  return (
    <div class="page">
      <header class="vm-head">
        <h1>Host {host.name}</h1>
        <HostStateBadge host={host} />
        <a href={hostsHref()} class="muted">
          every host
        </a>
      </header>
      <ErrorBox message={poll.error} />
      {pooled ? (
        <div class="actions" role="toolbar" aria-label="Host actions">
          <button
            type="button"
            class={host.maintenance ? 'primary' : ''}
            disabled={host.state === 'lost' || evacuation?.state === 'running'}
            title={host.state === 'lost' ? `${host.name} is lost: its pampad does not answer` : undefined}
            onClick={() => setAsking(true)}
          >
            {host.maintenance ? 'Maintenance off' : 'Maintenance on'}
          </button>
          {host.maintenance ? <span class="muted">in maintenance: takes no new VMs</span> : null}
          {host.state === 'lost' && host.vms === 0 ? (
            <DeleteButton
              label={`Remove host ${host.name} from the pool`}
              question={`Remove ${host.name} from the pool for good? Start its pampad with --cluster to bring it back.`}
              busy={removal.busy}
              run={removal.run}
              remove={async () => {
                await removeHost(api, host.name);
                await refreshHosts().catch(() => {});
                navigate(hostsHref());
              }}
            />
          ) : null}
        </div>
      ) : null}
      <ErrorBox message={removal.error} />
      {asking ? <MaintenanceDialog host={host} others={others} onClose={() => setAsking(false)} onTask={setStarted} /> : null}
      {evacuation ? <EvacuationTask task={evacuation} /> : null}

      <dl class="facts">
        <dt>State</dt>
        <dd>{stateLabel(host.state)}</dd>
        <dt>CPUs committed</dt>
        <dd>
          <CpuMeter host={host} />
        </dd>
        <dt>Memory committed</dt>
        <dd>
          <MemoryMeter host={host} />
        </dd>
        <dt>VMs</dt>
        <dd>
          {host.vms} ({host.running} running)
        </dd>
        <dt>pampad version</dt>
        <dd>{host.version || '—'}</dd>
        {local ? (
          <>
            <dt>Performance</dt>
            <dd>
              <a href="#/host">graphs, capacity and KSM</a> of this host (the one this console talks to)
            </dd>
          </>
        ) : null}
        {pooled ? (
          <>
            <dt>Address</dt>
            <dd class="mono">{host.url || '—'}</dd>
            <dt>Heartbeat</dt>
            <dd class={host.state === 'lost' ? 'bad-text' : ''}>{heartbeatAge(host)}</dd>
          </>
        ) : null}
        {host.pools?.length ? (
          <>
            <dt>Storage pools</dt>
            <dd>{host.pools.join(', ')}</dd>
          </>
        ) : null}
        {host.networks?.length ? (
          <>
            <dt>Networks</dt>
            <dd>{host.networks.join(', ')}</dd>
          </>
        ) : null}
      </dl>

      <h2>VMs on {host.name}</h2>
      <DataTable columns={['Name', 'State', 'CPUs', 'Memory', 'Up since']} empty={mine.length === 0 ? 'no VMs on this host' : undefined}>
        {mine.map((vm) => (
          <tr key={vm.name}>
            <td>
              <a href={vmHref(vm.name)}>{vm.name}</a>
            </td>
            <VmStateCell vm={vm} reason />
            <td>{vm.cpus}</td>
            <td>{formatMib(vm.memory_mib)}</td>
            <td>{vm.state === 'running' || vm.state === 'paused' ? formatRelative(vm.started) : '—'}</td>
          </tr>
        ))}
      </DataTable>
    </div>
  );
}
