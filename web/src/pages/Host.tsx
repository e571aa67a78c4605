// The Host page: what this host is, and its readiness checks (each with what
// it means and how to fix it). Its VMs and committed CPU and memory, and the
// pool's other hosts, are on the Hosts page.
import { api } from '../api/session';
import type { HostCheck, HostInfo } from '../api/types';
import { isPool } from '../lib/pool';
import { hostsHref } from '../lib/router';
import { useStore } from '../lib/store';
import { useAsync } from '../lib/useAsync';
import { store } from '../state';
import { ErrorBox } from '../components/ui';

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
