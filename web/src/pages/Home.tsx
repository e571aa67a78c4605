// The VMs at a glance: the landing page.
import { formatMib, formatRelative, stateLabel } from '../lib/format';
import { vmHref } from '../lib/router';
import { useStore } from '../lib/store';
import { store } from '../state';
import { DataTable, StateIcon } from '../components/ui';

export function HomePage() {
  const { vms, vmsLoaded, host, tasks } = useStore(store, (s) => s);
  const running = vms.filter((v) => v.state === 'running').length;
  const active = tasks.filter((t) => t.state === 'running').length;
  return (
    <div class="page">
      <h1>Virtual machines</h1>
      <p class="muted">
        {host?.hostname ?? 'This host'}: {vms.length} VM(s), {running} running, {active} task(s) running.
      </p>
      {!vmsLoaded ? (
        <p class="muted">Loading…</p>
      ) : vms.length === 0 ? (
        <p>
          No virtual machines yet. Use <strong>Create VM</strong> at the top to make one.
        </p>
      ) : (
        <DataTable columns={['Name', 'State', 'CPUs', 'Memory', 'Disks', 'Up since', 'Host']}>
          {vms.map((vm) => (
            <tr key={vm.name}>
              <td>
                <a href={vmHref(vm.name)}>{vm.name}</a>
              </td>
              <td>
                <StateIcon state={vm.state} busy={vm.busy} /> {stateLabel(vm.state)}
                {vm.busy ? <span class="muted"> ({vm.busy})</span> : null}
              </td>
              <td>{vm.cpus}</td>
              <td>{formatMib(vm.memory_mib)}</td>
              <td>{vm.disks?.length ?? 0}</td>
              <td>{vm.state === 'running' || vm.state === 'paused' ? formatRelative(vm.started) : '—'}</td>
              <td>{vm.host || '—'}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </div>
  );
}
