import { describe, expect, it } from 'vitest';
import type { Stats, VmStats } from '../api/types';
import {
  axisLabel,
  chartData,
  formatTick,
  formatValue,
  HOST_CHARTS,
  lastIndices,
  latest,
  peak,
  refreshMs,
  SINCE_PRESETS,
  sinceSeconds,
  stepFor,
  tickSteps,
  timeWindow,
  VM_CHARTS,
  yRange,
} from './stats';

const MiB = 2 ** 20;
const chart = (id: string) => VM_CHARTS.find((c) => c.id === id)!;

describe('the ranges of the picker', () => {
  it('are an hour, a day, a week and a year, in seconds', () => {
    expect(SINCE_PRESETS.map((p) => [p.label, p.seconds])).toEqual([
      ['1 hour', 3600],
      ['1 day', 86400],
      ['1 week', 604800],
      ['1 year', 31536000],
    ]);
    expect(sinceSeconds('1w')).toBe(604800);
    expect(sinceSeconds('forever')).toBe(3600);
  });

  it("asks no more than pampad's history holds (366 days)", () => {
    for (const p of SINCE_PRESETS) expect(p.seconds).toBeLessThanOrEqual(366 * 86400);
  });

  it('expect the steps pampad answers with, and refresh an hour every 5 s, longer ranges each minute', () => {
    expect(SINCE_PRESETS.map((p) => stepFor(p.seconds))).toEqual([5, 60, 1800, 1800]);
    expect(SINCE_PRESETS.map((p) => refreshMs(p.seconds))).toEqual([5000, 60000, 60000, 60000]);
  });

  it('span the range up to now', () => {
    expect(timeWindow(3600, 1_700_000_000_500)).toEqual([1_699_996_400, 1_700_000_000]);
  });
});

describe('chartData', () => {
  const stats: VmStats = {
    vm: 'web',
    step: 5,
    series: {
      time: [100, 105, 110],
      cpu_percent: [10, null, 30],
      disk_read_bps: [0, 2 * MiB, 1 * MiB],
      disk_write_bps: [null, null, null],
    },
  };

  it('puts the times first, then one column per line, nulls kept as gaps', () => {
    expect(chartData(stats, chart('cpu'))).toEqual({ columns: [[100, 105, 110], [10, null, 30]], empty: false });
    expect(chartData(stats, chart('disk-bytes')).columns).toEqual([
      [100, 105, 110],
      [0, 2 * MiB, 1 * MiB],
      [null, null, null],
    ]);
  });

  it('fills a series pampad did not send with nulls, and says when nothing is known', () => {
    const memory = chartData(stats, chart('memory'));
    expect(memory.columns).toEqual([[100, 105, 110], [null, null, null], [null, null, null], [null, null, null]]);
    expect(memory.empty).toBe(true);
  });

  it('cuts or pads a series of the wrong length and drops what is not a number', () => {
    const odd = { step: 5, series: { time: [1, 6, 11], cpu_percent: [1, 'x', Infinity, 4] } } as unknown as Stats<'cpu_percent'>;
    expect(chartData(odd, chart('cpu') as never).columns).toEqual([[1, 6, 11], [1, null, null]]);
    const short = { step: 5, series: { time: [1, 6, 11], cpu_percent: [7] } };
    expect(chartData(short, chart('cpu') as never).columns).toEqual([[1, 6, 11], [7, null, null]]);
  });

  it('breaks the line where points are more than a step and a half apart', () => {
    const holed = { step: 60, series: { time: [0, 60, 600, 660], load1: [1, 2, 3, 4] } };
    const load = HOST_CHARTS.find((c) => c.id === 'load')!;
    expect(chartData(holed, load).columns).toEqual([
      [0, 60, 120, 600, 660],
      [1, 2, null, 3, 4],
    ]);
    // A step a little late is no hole.
    expect(chartData({ step: 5, series: { time: [0, 7, 12], load1: [1, 2, 3] } }, load).columns[0]).toEqual([0, 7, 12]);
  });

  it('draws nothing from no answer or an empty history (a VM that never ran)', () => {
    expect(chartData(undefined, chart('cpu'))).toEqual({ columns: [[], []], empty: true });
    expect(chartData({ step: 5, series: { time: [] } }, chart('net'))).toEqual({ columns: [[], [], []], empty: true });
  });
});

describe('the charts', () => {
  it("show every series of a VM's and the host's history once", () => {
    const vm = VM_CHARTS.flatMap((c) => c.lines.map((l) => l.key));
    expect(new Set(vm).size).toBe(vm.length);
    expect(vm.sort()).toEqual(
      [
        'balloon_bytes',
        'cpu_percent',
        'disk_read_bps',
        'disk_read_iops',
        'disk_write_bps',
        'disk_write_iops',
        'memory_assigned_bytes',
        'memory_used_bytes',
        'net_rx_bps',
        'net_tx_bps',
      ].sort(),
    );
    expect(HOST_CHARTS.flatMap((c) => c.lines.map((l) => l.key)).sort()).toEqual(['cpu_percent', 'ksm_saved_bytes', 'load1', 'memory_total_bytes', 'memory_used_bytes', 'pool_total_bytes', 'pool_used_bytes']);
  });

  it('colour their lines with the theme variables', () => {
    for (const c of [...VM_CHARTS, ...HOST_CHARTS]) for (const l of c.lines) expect(l.color).toMatch(/^--[a-z-]+$/);
  });
});

describe('latest and peak', () => {
  it('skip unknown points', () => {
    expect(latest([1, 2, null, undefined])).toBe(2);
    expect(latest([null, null])).toBeNull();
    expect(latest([])).toBeNull();
    expect(peak([[1, null, 7], [null, 9]])).toBe(9);
    expect(peak([[null], []])).toBeNull();
  });
});

describe('lastIndices', () => {
  it('finds the last time and each line\'s last known point', () => {
    expect(lastIndices([[1, 2, 3], [5, null, null], [null, 4, 6], [null, null, null]])).toEqual([2, 0, 2, null]);
    expect(lastIndices([[], []])).toEqual([null, null]);
  });
});

describe('yRange', () => {
  it('starts at 0 and leaves room above the largest value', () => {
    const [bottom, top] = yRange({ unit: 'rate' }, 10 * MiB);
    expect(bottom).toBe(0);
    expect(top).toBeCloseTo(11 * MiB);
  });
  it('keeps an idle chart readable', () => {
    expect(yRange({ unit: 'rate' }, 0)).toEqual([0, 1024]);
    expect(yRange({ unit: 'iops' }, null)).toEqual([0, 10]);
  });
  it("shows CPU up to 100 % at least, a VM's beyond (several cores), the host's never beyond", () => {
    expect(yRange(chart('cpu'), 3)).toEqual([0, 100]);
    expect(yRange(chart('cpu'), 180)[1]).toBeCloseTo(198);
    expect(yRange(HOST_CHARTS[0], 100)).toEqual([0, 100]);
  });
});

describe('formatting', () => {
  it('says values with their unit, a dash when unknown', () => {
    expect(formatValue('percent', 12.345)).toBe('12 %');
    expect(formatValue('percent', 2.345)).toBe('2.3 %');
    expect(formatValue('bytes', 1.5 * 2 ** 30)).toBe('1.5 GiB');
    expect(formatValue('rate', 3 * MiB)).toBe('3 MiB/s');
    expect(formatValue('iops', 120.4)).toBe('120 IOPS');
    expect(formatValue('load', 0.4199)).toBe('0.42');
    expect(formatValue('rate', null)).toBe('—');
  });

  it('keeps ticks short', () => {
    expect(formatTick('iops', 1500)).toBe('1.5k');
    expect(formatTick('iops', 250)).toBe('250');
    expect(formatTick('percent', 50)).toBe('50 %');
    expect(formatTick('rate', 512 * MiB)).toBe('512 MiB/s');
  });

  it('titles the axes whose ticks carry no unit', () => {
    expect(axisLabel('iops')).toBe('operations/s');
    expect(axisLabel('load')).toBe('runnable tasks');
    expect(axisLabel('rate')).toBe('');
  });

  it('steps byte axes in binary units so ticks read round', () => {
    const steps = tickSteps('bytes')!;
    expect(steps).toContain(512 * MiB);
    expect(steps).toContain(2 ** 30);
    expect(steps.every((s, i) => i === 0 || s > steps[i - 1])).toBe(true);
    expect(tickSteps('percent')).toBeUndefined();
  });
});
