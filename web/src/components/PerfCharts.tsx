// The graphs of a history (a VM's Performance tab, the Host page): a range
// picker (an hour, a day, a week, a year) and one TimeChart per ChartSpec,
// asked again every 5 s for an hour, each minute for longer ranges. Loaded
// on first use only (uPlot).
import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { api } from '../api/session';
import { getHostStats } from '../api/resources';
import type { HostSeries, Stats } from '../api/types';
import { formatDuration, formatTime } from '../lib/format';
import { type ChartSpec, HOST_CHARTS, refreshMs, SINCE_PRESETS, sinceSeconds, stepFor, timeWindow } from '../lib/stats';
import { usePoll } from '../lib/usePoll';
import { ErrorBox } from './ui';
import { TimeChart } from './TimeChart';

export function RangePicker({ value, onValue }: { value: string; onValue: (id: string) => void }) {
  return (
    <div class="segmented" role="group" aria-label="Time range">
      {SINCE_PRESETS.map((p) => (
        <button key={p.id} type="button" class={p.id === value ? 'current' : ''} aria-pressed={p.id === value} onClick={() => onValue(p.id)}>
          {p.label}
        </button>
      ))}
    </div>
  );
}

export function StatsCharts<K extends string>(props: {
  /** The history of the last `since` seconds. */
  load: (since: number) => Promise<Stats<K>>;
  charts: ChartSpec<K>[];
  /** Pointers move together across the charts of one key. */
  syncKey: string;
  /** Said above the graphs (what they are of, what is missing). */
  children?: ComponentChildren;
}) {
  const [range, setRange] = useState('1h');
  const since = sinceSeconds(range);
  const [answer, setAnswer] = useState<{ since: number; stats: Stats<K>; at: number } | null>(null);
  // An answer for a range no longer shown is dropped.
  const current = useRef(since);
  current.current = since;
  const poll = usePoll(
    async () => {
      const stats = await props.load(since);
      if (current.current === since) setAnswer({ since, stats, at: Date.now() });
    },
    refreshMs(since),
    [since],
  );
  const shown = answer?.since === since ? answer : null;
  const step = shown?.stats.step || stepFor(since);
  const span = timeWindow(since, shown?.at ?? Date.now());

  return (
    <div class="perf">
      <div class="row perf-head">
        <RangePicker value={range} onValue={setRange} />
        <span class="muted">
          a point every {formatDuration(step)}, asked again every {formatDuration(refreshMs(since) / 1000)}
          {shown ? `; last at ${formatTime(shown.at, true)}` : poll.loaded ? '' : '; loading…'}
        </span>
      </div>
      {props.children}
      <ErrorBox message={poll.error} />
      <div class="charts perf-charts">
        {props.charts.map((spec) => (
          <TimeChart key={spec.id} spec={spec} stats={shown?.stats} span={span} syncKey={props.syncKey} />
        ))}
      </div>
    </div>
  );
}

/** This host's graphs: CPU, memory, load, what KSM saves. */
export function HostCharts() {
  return <StatsCharts<HostSeries> load={(since) => getHostStats(api, since)} charts={HOST_CHARTS} syncKey="host" />;
}
