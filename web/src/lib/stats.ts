// What the Performance graphs show: the ranges offered, which series go on
// which graph in what unit, and pampad's history (api/types.ts Stats) as the
// columns a chart draws, with gaps kept as gaps. Pure functions, unit tested
// in stats.test.ts; components/TimeChart.tsx draws them with uPlot.
import type { HostSeries, Stats, VmSeries } from '../api/types';
import { formatBytes, formatRate, formatTime } from './format';

export interface SincePreset {
  id: string;
  label: string;
  seconds: number;
}

/** The ranges of the picker; pampad keeps a year at most (366 days). */
export const SINCE_PRESETS: SincePreset[] = [
  { id: '1h', label: '1 hour', seconds: 3600 },
  { id: '1d', label: '1 day', seconds: 86400 },
  { id: '1w', label: '1 week', seconds: 7 * 86400 },
  { id: '1y', label: '1 year', seconds: 365 * 86400 },
];

/** A preset's seconds; an unknown id is the first (an hour). */
export function sinceSeconds(id: string): number {
  return (SINCE_PRESETS.find((p) => p.id === id) ?? SINCE_PRESETS[0]).seconds;
}

/** The step pampad answers a range with: the finest history that covers it. */
export function stepFor(since: number): number {
  if (since <= 3600) return 5;
  if (since <= 86400) return 60;
  return 1800;
}

/**
 * How often an open graph asks again. An hour's points are 5 s apart, so
 * every 5 s; longer ranges gain a point a minute (or each 30 min) while
 * their answer is 1,440 to 17,520 points of 11 series: once a minute is
 * enough, and spares pampad building the same megabyte 12 times a minute.
 */
export function refreshMs(since: number): number {
  return stepFor(since) <= 5 ? 5000 : 60_000;
}

/** The window a graph spans (unix seconds): the range asked for, up to now. */
export function timeWindow(since: number, nowMs: number): [number, number] {
  const now = Math.floor(nowMs / 1000);
  return [now - since, now];
}

export type Unit = 'percent' | 'bytes' | 'rate' | 'iops' | 'load';

export interface LineSpec<K extends string> {
  key: K;
  label: string;
  /** The CSS variable of its colour (styles.css), so it follows the theme. */
  color: string;
}

export interface ChartSpec<K extends string> {
  id: string;
  title: string;
  unit: Unit;
  /** What the numbers are of, under the title. */
  note?: string;
  lines: LineSpec<K>[];
  /** The y axis reaches at least this (CPU: 100 %), so a quiet VM looks quiet. */
  softMax?: number;
  /** The y axis never goes past this (a host's CPU: 100 % of all CPUs). */
  hardMax?: number;
}

export const VM_CHARTS: ChartSpec<VmSeries>[] = [
  { id: 'cpu', title: 'CPU', unit: 'percent', note: 'percent of one core', softMax: 100, lines: [{ key: 'cpu_percent', label: 'CPU', color: '--accent' }] },
  {
    id: 'memory',
    title: 'Memory',
    unit: 'bytes',
    lines: [
      { key: 'memory_assigned_bytes', label: 'assigned', color: '--accent' },
      { key: 'memory_used_bytes', label: 'used in the guest', color: '--ok' },
      { key: 'balloon_bytes', label: 'balloon', color: '--warn' },
    ],
  },
  {
    id: 'disk-bytes',
    title: 'Disk throughput',
    unit: 'rate',
    lines: [
      { key: 'disk_read_bps', label: 'read', color: '--accent' },
      { key: 'disk_write_bps', label: 'write', color: '--busy' },
    ],
  },
  {
    id: 'disk-iops',
    title: 'Disk operations',
    unit: 'iops',
    note: 'per second',
    lines: [
      { key: 'disk_read_iops', label: 'read', color: '--accent' },
      { key: 'disk_write_iops', label: 'write', color: '--busy' },
    ],
  },
  {
    id: 'net',
    title: 'Network',
    unit: 'rate',
    lines: [
      { key: 'net_rx_bps', label: 'received', color: '--accent' },
      { key: 'net_tx_bps', label: 'sent', color: '--busy' },
    ],
  },
];

export const HOST_CHARTS: ChartSpec<HostSeries>[] = [
  { id: 'cpu', title: 'CPU', unit: 'percent', note: 'percent of all CPUs', softMax: 100, hardMax: 100, lines: [{ key: 'cpu_percent', label: 'CPU', color: '--accent' }] },
  {
    id: 'memory',
    title: 'Memory',
    unit: 'bytes',
    lines: [
      { key: 'memory_total_bytes', label: 'total', color: '--idle' },
      { key: 'memory_used_bytes', label: 'used', color: '--accent' },
    ],
  },
  { id: 'load', title: 'Load', unit: 'load', note: 'runnable tasks, averaged over a minute', softMax: 1, lines: [{ key: 'load1', label: 'load', color: '--busy' }] },
  { id: 'ksm', title: 'Saved by KSM', unit: 'bytes', note: 'equal pages the VMs share', lines: [{ key: 'ksm_saved_bytes', label: 'saved', color: '--ok' }] },
  {
    id: 'pools',
    title: 'Pool space',
    unit: 'bytes',
    note: 'the file systems of this host\'s storage pools',
    lines: [
      { key: 'pool_total_bytes', label: 'total', color: '--idle' },
      { key: 'pool_used_bytes', label: 'used', color: '--accent' },
    ],
  },
];

/** A chart's columns: times first (unix s), then one per line, null where unknown. */
export type Columns = [number[], ...(number | null)[][]];

export interface ChartData {
  columns: Columns;
  /** No line has a single known point in the range. */
  empty: boolean;
}

/**
 * The columns of one chart from pampad's answer. A series pampad did not
 * send is all null (an older daemon, a guest without a balloon driver); one
 * of the wrong length is cut or padded with null. Where two points are more
 * than a step and a half apart (pampad was down, the history was cut), a
 * null goes between them so the line breaks instead of bridging the hole.
 */
export function chartData<K extends string>(stats: Stats<K> | undefined, spec: ChartSpec<K>): ChartData {
  const time = stats?.series.time ?? [];
  const step = stats?.step && stats.step > 0 ? stats.step : 5;
  const raw = spec.lines.map((l) => {
    const s = (stats?.series as Partial<Record<K, (number | null)[]>> | undefined)?.[l.key] ?? [];
    return time.map((_, i) => (typeof s[i] === 'number' && Number.isFinite(s[i]) ? (s[i] as number) : null));
  });
  const times: number[] = [];
  const cols: (number | null)[][] = raw.map(() => []);
  for (let i = 0; i < time.length; i++) {
    if (i > 0 && time[i] - time[i - 1] > 1.5 * step) {
      times.push(time[i - 1] + step);
      cols.forEach((c) => c.push(null));
    }
    times.push(time[i]);
    cols.forEach((c, j) => c.push(raw[j][i]));
  }
  return { columns: [times, ...cols], empty: cols.every((c) => c.every((v) => v === null)) };
}

/** The last known value of a line, or null. */
export function latest(values: readonly (number | null | undefined)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return null;
}

/**
 * Per column, the index of its last known point (the time column's: its
 * last), or null: what the legend shows while the pointer is off the chart.
 */
export function lastIndices(columns: readonly (readonly (number | null)[])[]): (number | null)[] {
  return columns.map((c, i) => {
    if (i === 0) return c.length ? c.length - 1 : null;
    for (let j = c.length - 1; j >= 0; j--) if (c[j] !== null) return j;
    return null;
  });
}

/** The largest known value of the lines, or null. */
export function peak(lines: readonly (readonly (number | null | undefined)[])[]): number | null {
  let max: number | null = null;
  for (const values of lines) {
    for (const v of values) if (typeof v === 'number' && Number.isFinite(v) && (max === null || v > max)) max = v;
  }
  return max;
}

// The y axis of an idle chart still has a height: 1 KiB, 10 IOPS, a load of 1.
const FLOOR: Record<Unit, number> = { percent: 10, bytes: 1024, rate: 1024, iops: 10, load: 1 };

/** The y axis's span: from 0 to a little above the largest value, within the chart's soft and hard maximum. */
export function yRange(spec: Pick<ChartSpec<string>, 'unit' | 'softMax' | 'hardMax'>, dataMax: number | null): [number, number] {
  let top = Math.max(FLOOR[spec.unit], spec.softMax ?? 0, (dataMax ?? 0) * 1.1);
  if (spec.hardMax !== undefined) top = Math.min(top, spec.hardMax);
  return [0, top];
}

/** A value as the legend says it: "12.5 %", "1.5 GiB", "3 MiB/s", "120 IOPS", "0.42". */
export function formatValue(unit: Unit, v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  switch (unit) {
    case 'percent':
      return `${roundish(v)} %`;
    case 'bytes':
      return formatBytes(v);
    case 'rate':
      return formatRate(v);
    case 'iops':
      return `${roundish(v)} IOPS`;
    case 'load':
      return v.toFixed(2);
  }
}

/** A tick of the y axis: shorter than the legend ("120", "1.2k", "512 MiB/s"). */
export function formatTick(unit: Unit, v: number): string {
  switch (unit) {
    case 'percent':
      return `${roundish(v)} %`;
    case 'bytes':
      return formatBytes(v);
    case 'rate':
      return formatRate(v);
    case 'iops':
    case 'load':
      return v >= 1000 ? `${roundish(v / 1000)}k` : String(roundish(v));
  }
}

/** The y axis's title where its ticks carry no unit: IOPS and load; '' for the others ("50 %", "1 GiB", "2 MiB/s"). */
export function axisLabel(unit: Unit): string {
  return unit === 'iops' ? 'operations/s' : unit === 'load' ? 'runnable tasks' : '';
}

/** A point's time as the legend says it. */
export function formatPointTime(unixSeconds: number | null | undefined): string {
  return unixSeconds ? formatTime(unixSeconds * 1000, true) : '—';
}

/** One decimal under 10, whole numbers above. */
function roundish(v: number): number {
  return Math.abs(v) < 10 ? Math.round(v * 10) / 10 : Math.round(v);
}

/**
 * The steps between ticks of a byte axis: powers of two, so ticks read
 * "512 MiB", "1 GiB" rather than "953.67 MiB"; other units keep uPlot's
 * decimal steps (undefined).
 */
export function tickSteps(unit: Unit): number[] | undefined {
  if (unit !== 'bytes' && unit !== 'rate') return undefined;
  return Array.from({ length: 51 }, (_, n) => 2 ** n);
}
