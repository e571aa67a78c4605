// A small hand-written SVG chart: one bar per backup (oldest left) for the
// bytes it stored and one for how long it took.
import type { Backup } from '../api/types';
import { formatBytes, formatDuration, formatTime } from '../lib/format';

function Bars(props: { title: string; values: number[]; labels: string[]; format: (n: number) => string; tone: string }) {
  const w = 320;
  const h = 90;
  const max = Math.max(1, ...props.values);
  const n = props.values.length;
  const gap = 2;
  const bw = Math.max(2, (w - gap * (n + 1)) / Math.max(1, n));
  return (
    <figure class="chart">
      <figcaption>
        {props.title} <span class="muted">(max {props.format(max)})</span>
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} width="100%" height={h} role="img" aria-label={`${props.title} of the last ${n} backups`}>
        <line x1="0" y1={h - 0.5} x2={w} y2={h - 0.5} class="axis" />
        {props.values.map((v, i) => {
          const bh = Math.max(1, (v / max) * (h - 6));
          return (
            <rect key={i} class={`bar ${props.tone}`} x={gap + i * (bw + gap)} y={h - bh} width={bw} height={bh} rx="1">
              <title>{`${props.labels[i]}: ${props.format(v)}`}</title>
            </rect>
          );
        })}
      </svg>
    </figure>
  );
}

export function BackupChart({ backups }: { backups: Backup[] }) {
  const list = backups
    .filter((b) => b.created)
    .sort((a, b) => (a.created ?? 0) - (b.created ?? 0))
    .slice(-40);
  if (list.length < 1) return null;
  const labels = list.map((b) => `${formatTime(b.created)} ${b.incremental ? 'incremental' : 'full'}`);
  return (
    <div class="charts">
      <Bars title="Stored per backup" values={list.map((b) => b.bytes_uploaded ?? 0)} labels={labels} format={formatBytes} tone="bar-a" />
      <Bars title="Duration" values={list.map((b) => b.seconds ?? 0)} labels={labels} format={formatDuration} tone="bar-b" />
    </div>
  );
}
