// The HA page: which host is the pool's HA manager, how soon a lost host's
// HA VMs start elsewhere, each HA VM's state and the last decisions. A VM is
// made HA on its Configuration tab. Its state moves with the hosts' leases,
// which send no events: the open page asks every 3 s, like the Hosts page.
import { useState } from 'preact/hooks';
import { getHa } from '../api/ha';
import { api } from '../api/session';
import type { HaStatus } from '../api/types';
import { formatMs, formatTime } from '../lib/format';
import { haEvents, haRows } from '../lib/ha';
import { hostsHref, vmHref } from '../lib/router';
import { usePoll } from '../lib/usePoll';
import { DataTable, ErrorBox, StateBadge } from '../components/ui';
import { HOSTS_PAGE_POLL_MS } from './Hosts';

function HaView({ ha }: { ha: HaStatus }) {
  const rows = haRows(ha);
  const events = haEvents(ha);
  const s = ha.settings;
  return (
    <>
      <dl class="facts">
        <dt>Manager</dt>
        <dd>{ha.manager ? <a href={hostsHref(ha.manager)}>{ha.manager}</a> : 'none yet'}</dd>
        <dt>Lease</dt>
        <dd>{formatMs(s.lease_ms)}: a host silent for this long is lost, and its HA VMs start on other hosts</dd>
        <dt>Fencing after</dt>
        <dd>{formatMs(s.fence_after_ms)}: a host that could not renew its lease for this long stops its own HA VMs, before another host may start them: none runs twice</dd>
        <dt>Tries</dt>
        <dd>{s.max_tries} starts of a VM, then it is failed until someone starts it</dd>
      </dl>

      <h2>HA VMs</h2>
      <DataTable columns={['VM', 'Host', 'Priority', 'State', 'Reason']} empty={rows.length === 0 ? "no HA VMs: turn HA on in a VM's Configuration tab" : undefined}>
        {rows.map((r) => (
          <tr key={r.name} data-testid={`ha-vm-${r.name}`} data-state={r.state}>
            <td>
              <a href={vmHref(r.name)}>{r.name}</a>
            </td>
            <td>{r.where}</td>
            <td>{r.priority}</td>
            <td>
              <StateBadge state={r.state} />
            </td>
            <td>{r.why}</td>
          </tr>
        ))}
      </DataTable>

      <h2>Last events</h2>
      <DataTable columns={['Time', 'Host', 'VM', 'Message']} empty={events.length === 0 ? 'nothing has happened yet' : undefined}>
        {events.map((e) => (
          <tr key={`${e.time_ms} ${e.host} ${e.vm} ${e.message}`}>
            <td>{formatTime(e.time_ms, true)}</td>
            <td>{e.host}</td>
            <td>{e.vm ? <a href={vmHref(e.vm)}>{e.vm}</a> : '—'}</td>
            <td>{e.message}</td>
          </tr>
        ))}
      </DataTable>
    </>
  );
}

export function HaPage() {
  const [ha, setHa] = useState<HaStatus | null>(null);
  const poll = usePoll(async () => setHa(await getHa(api)), HOSTS_PAGE_POLL_MS, []);
  return (
    <div class="page">
      <h1>High availability</h1>
      <ErrorBox message={poll.error} />
      {!ha ? (
        poll.loaded ? null : <p class="muted">Loading…</p>
      ) : ha.enabled ? (
        <HaView ha={ha} />
      ) : (
        <p class="muted">
          HA needs a pool of hosts (pampad <code>--cluster</code>): this host runs alone, so there is no other host to start its VMs on.
        </p>
      )}
    </div>
  );
}
