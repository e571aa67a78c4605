// The Hosts page: every host of the pool with its state, the CPUs and
// memory its running VMs have committed against what it has, its VMs and
// its heartbeat, and the way to the HA page. Alone (pampad without
// --cluster) it shows this host, a pool of one, without the pool's columns.
import { heartbeatAge, isPool } from '../lib/pool';
import { hostsHref } from '../lib/router';
import { useStore } from '../lib/store';
import { usePoll } from '../lib/usePoll';
import { refreshHosts, store } from '../state';
import { CpuMeter, HostStateBadge, MemoryMeter } from '../components/HostMeters';
import { DataTable, ErrorBox } from '../components/ui';

/** How often an open Hosts page asks again (heartbeats, committed resources). */
export const HOSTS_PAGE_POLL_MS = 3000;

export function HostsPage() {
  const hosts = useStore(store, (s) => s.hosts);
  const poll = usePoll(refreshHosts, HOSTS_PAGE_POLL_MS, []);
  const pooled = isPool(hosts);
  const online = hosts.filter((h) => h.state === 'online').length;
  const columns = ['Host', 'State', 'CPUs committed', 'Memory committed', 'Running VMs'];
  if (pooled) columns.push('Heartbeat', 'Version');

  return (
    <div class="page">
      <h1>Hosts</h1>
      {pooled ? (
        <p class="muted">
          {hosts.length} host(s) in the pool, {online} online. Committed: what the running VMs were given.{' '}
          <a href="#/ha">High availability</a>: the VMs started on another host when theirs is lost.
        </p>
      ) : (
        <p class="muted">
          This host runs alone (pampad without <code>--cluster</code>): a pool of one. Started with{' '}
          <code>--cluster etcd://…</code>, hosts share their VMs and can move them between each other.
        </p>
      )}
      <ErrorBox message={poll.error} />
      <DataTable columns={columns} empty={poll.loaded && hosts.length === 0 ? 'no hosts recorded' : undefined}>
        {hosts.map((h) => (
          <tr key={h.name} data-testid={`host-${h.name}`} data-state={h.state}>
            <td>
              <a href={hostsHref(h.name)}>{h.name}</a>
              {h.url ? <div class="muted mono">{h.url}</div> : null}
            </td>
            <td>
              <HostStateBadge host={h} />
            </td>
            <td>
              <CpuMeter host={h} />
            </td>
            <td>
              <MemoryMeter host={h} />
            </td>
            <td>
              {h.running} of {h.vms}
            </td>
            {pooled ? (
              <>
                <td class={h.state === 'lost' ? 'bad-text' : ''}>{heartbeatAge(h)}</td>
                <td>{h.version}</td>
              </>
            ) : null}
          </tr>
        ))}
      </DataTable>
    </div>
  );
}
