import type uPlot from 'uplot';

/**
 * Chart builders on uPlot (served from its npm package as `/vendor/uPlot.iife.min.js`,
 * which defines the global `uPlot`). Charts are created once with a fixed
 * height and fed with `setData`; nothing is re-created on updates.
 */

type UPlotStatic = typeof uPlot;

function lib(): UPlotStatic {
  const u = (window as unknown as { uPlot?: UPlotStatic }).uPlot;
  if (u === undefined) throw new Error('uPlot did not load (/vendor/uPlot.iife.min.js)');
  return u;
}

export type Chart = uPlot;

const MUTED = '#6a7788';
const GRID = '#eef1f5';
export const COLORS = {
  ref: '#4c78a8',
  cur: '#f58518',
  bad: '#c53030',
  ok: '#2e9e6b',
  accent: '#2f6fdf',
  label: '#8e6bbf',
} as const;

function stepped(): uPlot.Series.PathBuilder | undefined {
  return lib().paths.stepped?.({ align: 1 });
}

function axis(values?: (u: uPlot, splits: number[]) => string[], size?: number): uPlot.Axis {
  return {
    stroke: MUTED,
    grid: { stroke: GRID, width: 1 },
    ticks: { stroke: GRID, width: 1 },
    font: '11px system-ui, sans-serif',
    ...(values ? { values } : {}),
    ...(size !== undefined ? { size } : {}),
  };
}

function compact(v: number): string {
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1000) return String(v);
  if (a >= 1000) return `${(v / 1000).toFixed(a >= 10_000 ? 0 : 1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Width of an element's content box, at least `min`. */
export function widthOf(el: HTMLElement, min = 120): number {
  return Math.max(min, Math.floor(el.clientWidth));
}

/**
 * A KS-statistic sparkline: the statistic of recent windows, the critical
 * statistic (dashed) and a red dot on every drifted window.
 */
export function sparkline(el: HTMLElement, width: number, height: number): Chart {
  const U = lib();
  return new U(
    {
      width,
      height,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      padding: [3, 2, 3, 2],
      scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(0.05, max * 1.1)] } },
      axes: [{ show: false }, { show: false }],
      series: [
        {},
        { stroke: COLORS.ref, width: 1.5, points: { show: false }, spanGaps: true },
        { stroke: COLORS.bad, width: 1, dash: [3, 3], points: { show: false }, spanGaps: true },
        {
          stroke: COLORS.bad,
          width: 0,
          points: { show: true, size: 5, fill: COLORS.bad, stroke: COLORS.bad },
        },
      ],
    },
    [[], [], [], []],
    el,
  );
}

/** Overlaid step histograms (shares per bin) of the reference and the current window. */
export function histogramChart(el: HTMLElement, width: number, height: number): Chart {
  const U = lib();
  return new U(
    {
      width,
      height,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(0.01, max * 1.12)] } },
      axes: [
        axis((_u, splits) => splits.map(compact)),
        axis((_u, splits) => splits.map((v) => `${Math.round(v * 100)}%`), 44),
      ],
      series: [
        {},
        {
          label: 'Reference',
          stroke: COLORS.ref,
          fill: 'rgba(76,120,168,0.28)',
          width: 1.5,
          paths: stepped(),
          points: { show: false },
        },
        {
          label: 'Current',
          stroke: COLORS.cur,
          fill: 'rgba(245,133,24,0.30)',
          width: 1.5,
          paths: stepped(),
          points: { show: false },
        },
      ],
    },
    [[], [], []],
    el,
  );
}

/** Empirical CDFs of the reference and the current window on the histogram's bin edges. */
export function ecdfChart(el: HTMLElement, width: number, height: number): Chart {
  const U = lib();
  return new U(
    {
      width,
      height,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: false }, y: { range: [0, 1] } },
      axes: [
        axis((_u, splits) => splits.map(compact)),
        axis((_u, splits) => splits.map((v) => v.toFixed(1)), 44),
      ],
      series: [
        {},
        { label: 'Reference', stroke: COLORS.ref, width: 2, points: { show: false } },
        { label: 'Current', stroke: COLORS.cur, width: 2, points: { show: false } },
      ],
    },
    [[], [], []],
    el,
  );
}

/** Messages per second over time (telemetry, predictions, labels). */
export function throughputChart(el: HTMLElement, width: number, height: number): Chart {
  const U = lib();
  return new U(
    {
      width,
      height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [axis(), axis((_u, splits) => splits.map(compact), 48)],
      series: [
        {},
        {
          label: 'Telemetry',
          stroke: COLORS.ref,
          width: 2,
          fill: 'rgba(76,120,168,0.10)',
          points: { show: false },
        },
        { label: 'Predictions', stroke: COLORS.cur, width: 2, points: { show: false } },
        { label: 'Labels', stroke: COLORS.label, width: 1.5, points: { show: false } },
      ],
    },
    [[], [], [], []],
    el,
  );
}

/** Shares per bin, with the last value repeated so the final step closes at the last edge. */
export function stepShares(counts: readonly number[]): number[] {
  let total = 0;
  for (const c of counts) total += c;
  const out = counts.map((c) => (total > 0 ? c / total : 0));
  out.push(out[out.length - 1] ?? 0);
  return out;
}

/** Cumulative shares at each bin edge (0 at the first edge, 1 at the last). */
export function cumulativeShares(counts: readonly number[]): number[] {
  let total = 0;
  for (const c of counts) total += c;
  const out = [0];
  let run = 0;
  for (const c of counts) {
    run += c;
    out.push(total > 0 ? run / total : 0);
  }
  return out;
}
