// The VMs at a glance: the landing page.
import { formatMib, formatRelative } from '../lib/format';
import { isPool } from '../lib/pool';
import { hostsHref, vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { store } from '../state';
import { DataTable, VmStateCell } from '../components/ui';

export function HomePage() {
  const { vms, vmsLoaded, host, tasks, hosts } = useStore(store, (s) => s);
  // Alone, every VM is this host's: the column says nothing.
  const pooled = isPool(hosts);
  const running = vms.filter((v) => v.state === 'running').length;
  const active = tasks.filter((t) => t.state === 'running').length;
  return (
    <div class="page">
      <h1>Virtual machines</h1>
      <p class="muted">
        {pooled ? `The pool (${hosts.length} hosts)` : (host?.hostname ?? 'This host')}: {vms.length} VM(s), {running} running, {active} task(s) running.
      </p>
      {!vmsLoaded ? (
        <p class="muted">Loading…</p>
      ) : vms.length === 0 ? (
        <p>
          No virtual machines yet. Use <strong>Create VM</strong> at the top to make one.
        </p>
      ) : (
        <DataTable columns={['Name', 'State', 'CPUs', 'Memory', 'Disks', 'Up since', ...(pooled ? ['Host'] : [])]}>
          {vms.map((vm) => (
            <tr key={vm.name}>
              <td>
                <a href={vmHref(vm.name)}>{vm.name}</a>
                {vm.template ? <span class="badge tree-tag">template</span> : null}
              </td>
              <VmStateCell vm={vm} />
              <td>{vm.cpus}</td>
              <td>{formatMib(vm.memory_mib)}</td>
              <td>{vm.disks?.length ?? 0}</td>
              <td>{vm.state === 'running' || vm.state === 'paused' ? formatRelative(vm.started) : '—'}</td>
              {pooled ? <td>{vm.host ? <a href={hostsHref(vm.host)}>{vm.host}</a> : '—'}</td> : null}
            </tr>
          ))}
        </DataTable>
      )}
    </div>
  );
}
