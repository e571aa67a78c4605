// The Performance tab: a VM's history (CPU, memory with the balloon, disk
// throughput and operations, network) over an hour, a day, a week or a
// year, with its CPU share and limits above (changed on the Configuration
// tab). Loaded on first use only (uPlot).
import { api } from '../api/session';
import { getVmStats } from '../api/resources';
import type { Vm, VmSeries } from '../api/types';
import { cpuShareText, limitText, memoryText } from '../lib/resources';
import { vmHref } from '../lib/router';
import { VM_CHARTS } from '../lib/stats';
import { StatsCharts } from '../components/PerfCharts';

export function VmPerformance({ vm }: { vm: Vm }) {
  const runs = vm.state === 'running' || vm.state === 'paused';
  const devices: { what: string; l: { iops?: number; bps?: number } }[] = [
    ...vm.disks.map((d, i) => ({ what: `disk ${i}`, l: d })),
    ...vm.nics.map((n, i) => ({ what: `NIC ${i}`, l: n })),
  ];
  const limited = devices.filter(({ l }) => !!l.iops || !!l.bps);
  return (
    <StatsCharts<VmSeries> load={(since) => getVmStats(api, vm.name, since)} charts={VM_CHARTS} syncKey={`vm-${vm.name}`}>
      <dl class="facts">
        <dt>CPU</dt>
        <dd>
          {vm.cpus} vCPU{vm.cpus === 1 ? '' : 's'}: {cpuShareText(vm)}
        </dd>
        <dt>Memory</dt>
        <dd>{memoryText(vm)}</dd>
        <dt>Limits</dt>
        <dd>
          {limited.length ? limited.map(({ what, l }) => `${what}: ${limitText(l)}`).join('; ') : 'no disk or NIC limits'} (
          <a href={vmHref(vm.name, 'config')}>change</a>)
        </dd>
      </dl>
      {!runs ? <p class="notice">The VM is {vm.state}: the graphs show what it did while it ran, and break where it did not.</p> : null}
    </StatsCharts>
  );
}
