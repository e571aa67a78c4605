// A host of the pool at a glance: its state badge, and the CPUs and memory
// its running VMs have committed against what it has (a bar that turns
// amber near full and red when overcommitted).
import type { PoolHost } from '../api/types';
import { formatBytes, stateLabel, stateTone } from '../lib/format';
import { hostUsage, usageTone } from '../lib/pool';
import { ProgressBar } from './ui';

export function HostStateBadge({ host }: { host: PoolHost }) {
  return <span class={`badge tone-${stateTone(host.state)}`}>{stateLabel(host.state)}</span>;
}

function UsageBar({ label, fraction, text }: { label: string; fraction: number; text: string }) {
  return (
    <span class="meter-cell">
      <ProgressBar value={fraction} label={label} tone={usageTone(fraction)} /> {text}
    </span>
  );
}

export function CpuMeter({ host }: { host: PoolHost }) {
  return <UsageBar label={`${host.name} CPUs committed`} fraction={hostUsage(host).cpu} text={`${host.cpus_committed} of ${host.cpus}`} />;
}

export function MemoryMeter({ host }: { host: PoolHost }) {
  return (
    <UsageBar
      label={`${host.name} memory committed`}
      fraction={hostUsage(host).memory}
      text={`${formatBytes(host.memory_committed)} of ${formatBytes(host.memory_bytes)}`}
    />
  );
}
