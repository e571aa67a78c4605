// The Summary tab: what the VM is and how it runs now.
import { useState } from 'preact/hooks';
import { api } from '../api/session';
import { messageOf, vmPath } from '../api/client';
import type { Vm, Volume } from '../api/types';
import { formatBytes, formatDuration, formatTime, stateLabel } from '../lib/format';
import { parseIpOutput } from '../lib/guestnet';
import { cpuShareText, limitText, memoryText } from '../lib/resources';
import { hostsHref } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { useNow } from '../lib/useNow';
import { DataTable, ErrorBox } from '../components/ui';

export function VmSummary({ vm }: { vm: Vm }) {
  const now = useNow(1000);
  const pools = [...new Set(vm.disks.map((d) => d.pool))];
  const volumes = useAsync(async () => {
    const lists = await Promise.all(pools.map((p) => api.get<Volume[]>(`/api/v1/pools/${encodeURIComponent(p)}/volumes`)));
    return lists.flat();
  }, [pools.join(','), vm.disks.length]);
  const runs = vm.state === 'running' || vm.state === 'paused';
  const agent = useAsync(
    async () => (runs ? api.get<{ agent: boolean; detail: string }>(vmPath(vm.name, '/agent')) : null),
    [vm.name, vm.state],
  );
  const [addrs, setAddrs] = useState<Map<string, string[]> | null>(null);
  const [addrError, setAddrError] = useState('');
  const [asking, setAsking] = useState(false);

  const askAddresses = async () => {
    setAsking(true);
    setAddrError('');
    try {
      const r = await api.post<{ exit_code: number; stdout: string; stderr: string }>(vmPath(vm.name, '/exec'), {
        command: ['/bin/sh', '-c', 'ip -o link; ip -o addr'],
        timeout: 20,
      });
      if (r.exit_code !== 0) throw new Error(`the guest's ip command failed: ${r.stderr || 'exit ' + r.exit_code}`);
      setAddrs(parseIpOutput(r.stdout));
    } catch (e) {
      setAddrError(messageOf(e));
    } finally {
      setAsking(false);
    }
  };

  const volumeOf = (pool: string, name: string) => volumes.data?.find((v) => v.pool === pool && v.name === name);

  return (
    <div class="summary">
      <dl class="facts">
        <dt>State</dt>
        <dd>
          {stateLabel(vm.state)}
          {vm.busy ? ` (busy: ${vm.busy})` : ''}
        </dd>
        {vm.template ? (
          <>
            <dt>Template</dt>
            <dd data-testid="summary-template">yes: it never starts or changes; make VMs from it with Clone…</dd>
          </>
        ) : null}
        <dt>CPUs</dt>
        <dd>
          {vm.cpus} <span class="muted">({cpuShareText(vm)})</span>
        </dd>
        <dt>Memory</dt>
        <dd>{memoryText(vm)}</dd>
        <dt>Uptime</dt>
        <dd>{runs && vm.started ? `${formatDuration((now - vm.started) / 1000)} (since ${formatTime(vm.started)})` : '—'}</dd>
        <dt>Accelerator</dt>
        <dd>{vm.accel || (runs ? '—' : 'not running')}</dd>
        <dt>Firmware</dt>
        <dd>{vm.firmware || 'bios'}</dd>
        <dt>Host</dt>
        <dd>{vm.host ? <a href={hostsHref(vm.host)}>{vm.host}</a> : '—'}</dd>
        <dt>Autostart</dt>
        <dd>{vm.autostart ? 'yes' : 'no'}</dd>
        {vm.ha ? (
          <>
            <dt>HA</dt>
            <dd data-testid="summary-ha">
              <a href="#/ha">on (priority {vm.ha_priority ?? 0})</a>
            </dd>
          </>
        ) : null}
        {vm.pid ? (
          <>
            <dt>QEMU pid</dt>
            <dd>{vm.pid}</dd>
          </>
        ) : null}
        {vm.cdrom ? (
          <>
            <dt>CD-ROM</dt>
            <dd class="mono">{vm.cdrom}</dd>
          </>
        ) : null}
        {vm.kernel ? (
          <>
            <dt>Kernel</dt>
            <dd class="mono">
              {vm.kernel}
              {vm.append ? ` ${vm.append}` : ''}
            </dd>
          </>
        ) : null}
        <dt>Guest agent</dt>
        <dd>{!runs ? '—' : agent.data ? (agent.data.agent ? 'answers' : agent.data.detail) : agent.error || 'asking…'}</dd>
        <dt>UUID</dt>
        <dd class="mono">{vm.uuid}</dd>
      </dl>

      <h2>Disks</h2>
      <ErrorBox message={volumes.error} />
      <DataTable columns={['#', 'Volume', 'Pool', 'Size', 'Allocated', 'Format', 'Limits']} empty={vm.disks.length === 0 ? 'no disks' : undefined}>
        {vm.disks.map((d, i) => {
          const v = volumeOf(d.pool, d.volume);
          return (
            <tr key={d.pool + '/' + d.volume}>
              <td>{i}</td>
              <td>
                {d.volume}
                {d.base ? <div class="muted" data-testid={`disk-base-${i}`}>linked to {d.base}</div> : null}
              </td>
              <td>
                <a href={`#/storage/${encodeURIComponent(d.pool)}`}>{d.pool}</a>
              </td>
              <td>{v ? formatBytes(v.size) : '…'}</td>
              <td>{v ? formatBytes(v.allocated) : '…'}</td>
              <td>{v?.format ?? ''}</td>
              <td>{limitText(d)}</td>
            </tr>
          );
        })}
      </DataTable>

      <h2>Network interfaces</h2>
      <DataTable columns={['Network', 'MAC', 'Limit', 'Addresses (from the guest agent)']}>
        {vm.nics.map((n) => (
          <tr key={n.mac}>
            <td>
              <a href="#/networks">{n.network}</a>
            </td>
            <td class="mono">{n.mac}</td>
            <td>{limitText(n)}</td>
            <td>{addrs ? (addrs.get(n.mac.toLowerCase())?.join(', ') || 'none') : '—'}</td>
          </tr>
        ))}
      </DataTable>
      {agent.data?.agent ? (
        <button type="button" onClick={askAddresses} disabled={asking}>
          {asking ? 'Asking the guest…' : addrs ? 'Ask the guest again' : 'Ask the guest for its addresses'}
        </button>
      ) : null}
      <ErrorBox message={addrError} />
    </div>
  );
}
