// A history graph drawn with uPlot: the lines of one ChartSpec (lib/stats.ts)
// over a time window, gaps kept as gaps (nulls break the line), the unit on
// the y axis, and a legend that follows the pointer and shows the latest
// values while it is off the chart. It takes its container's width (and
// follows it), its colours from the theme's variables (and follows a theme
// change), and is destroyed when unmounted.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Stats } from '../api/types';
import { axisLabel, type ChartSpec, chartData, formatPointTime, formatTick, formatValue, lastIndices, tickSteps, yRange } from '../lib/stats';

/** Bumped when the theme changes (the toggle, or the system's scheme), so charts redraw in its colours. */
function useThemeKey(): number {
  const [key, setKey] = useState(0);
  useEffect(() => {
    const bump = () => setKey((k) => k + 1);
    const watch = new MutationObserver(bump);
    watch.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
    const scheme = window.matchMedia?.('(prefers-color-scheme: dark)');
    scheme?.addEventListener('change', bump);
    return () => {
      watch.disconnect();
      scheme?.removeEventListener('change', bump);
    };
  }, []);
  return key;
}

/** What the legend shows while the pointer is off the chart: each line's latest point. */
function showLatest(u: uPlot): void {
  if (u.status === 1 && u.cursor.idx == null) u.setLegend({ idxs: lastIndices(u.data as (number | null)[][]) }, false);
}

const MIN_WIDTH = 200;

export function TimeChart<K extends string>(props: {
  spec: ChartSpec<K>;
  stats: Stats<K> | undefined;
  /** The time span shown (unix seconds), whatever the data covers. */
  span: [number, number];
  /** Of the plot, without the legend (CSS pixels). */
  height?: number;
  /** Charts with the same key move their pointers together. */
  syncKey?: string;
}) {
  const { spec, stats, span, height = 170, syncKey } = props;
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const theme = useThemeKey();
  const data = useMemo(() => chartData(stats, spec), [stats, spec]);
  // The latest of each, for the chart's range functions and its re-creation.
  const spanRef = useRef(span);
  spanRef.current = span;
  const dataRef = useRef(data);
  dataRef.current = data;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const css = getComputedStyle(document.documentElement);
    const color = (name: string) => css.getPropertyValue(name).trim() || '#888';
    const text = color('--muted');
    const grid = color('--border');
    const font = `12px ${css.getPropertyValue('--font').trim() || 'sans-serif'}`;
    const axis: uPlot.Axis = { stroke: text, font, labelFont: font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1, size: 4 } };
    const label = axisLabel(spec.unit);
    const opts: uPlot.Options = {
      width: Math.max(MIN_WIDTH, el.clientWidth),
      height,
      // Unix seconds on x; no drag to zoom (the next refresh would undo it).
      cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 6 }, ...(syncKey ? { sync: { key: syncKey } } : {}) },
      legend: { live: true },
      scales: {
        x: { time: true, range: () => spanRef.current },
        y: { range: (_u, _min, max) => yRange(spec, Number.isFinite(max) ? max : null) },
      },
      axes: [
        { ...axis, space: 60 },
        {
          ...axis,
          size: 78,
          label: label || undefined,
          labelSize: label ? 18 : undefined,
          incrs: tickSteps(spec.unit),
          values: (_u, splits) => splits.map((v) => formatTick(spec.unit, v)),
        },
      ],
      series: [
        { label: 'time', value: (_u, v) => formatPointTime(v) },
        ...spec.lines.map(
          (l): uPlot.Series => ({
            label: l.label,
            stroke: color(l.color),
            width: 1.5,
            spanGaps: false,
            // uPlot's default: dots only where points are sparse (a VM that just started).
            points: { size: 4 },
            value: (_u, v) => formatValue(spec.unit, v),
          }),
        ),
      ],
      hooks: { setCursor: [showLatest], setData: [showLatest] },
    };
    const u = new uPlot(opts, dataRef.current.columns as uPlot.AlignedData, el);
    plot.current = u;
    showLatest(u);
    let width = el.clientWidth;
    const resize = new ResizeObserver(() => {
      if (el.clientWidth === width) return;
      width = el.clientWidth;
      u.setSize({ width: Math.max(MIN_WIDTH, width), height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [spec, theme, syncKey, height]);

  // New points, or the window moved on: the same chart, redrawn.
  useEffect(() => {
    plot.current?.setData(data.columns as uPlot.AlignedData);
  }, [data, span[0], span[1]]);

  return (
    <figure class="chart time-chart" aria-label={`${spec.title} over time`} data-testid={`chart-${spec.id}`}>
      <figcaption>
        {spec.title} {spec.note ? <span class="muted">({spec.note})</span> : null}
      </figcaption>
      <div class="time-chart-plot">
        <div ref={box} class="time-chart-box" />
        {data.empty ? <p class="time-chart-empty muted">no figures in this range</p> : null}
      </div>
    </figure>
  );
}
