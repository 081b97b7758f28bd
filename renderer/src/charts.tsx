// Chart helpers shared by the Tune, Tuning logs and Benchmark views: fixed series colours that
// read on both themes, time axes in ms/µs, log-scale ticks, a legend that never collides with
// the axes (HTML under the chart), a histogram for latency distributions, and the Tune view's
// live trial chart.
import { createContext, memo, useCallback, useContext, useEffect, useLayoutEffect, useMemo, useRef, useState, type MouseEvent } from 'react';
import { CartesianGrid, ComposedChart, getNiceTickValues, ResponsiveContainer, usePlotArea, XAxis, YAxis } from 'recharts';
import { fmtMs } from './components.js';
import { extendStep, minMaxPerColumn, ScatterThinner } from './downsample.js';
import type { TaskRow, TrialPoint } from './store.js';
import { recordRedraw } from './testhooks.js';

/**
 * Series colours, fixed in both themes (Tableau 10, slightly deepened): mid-lightness hues that
 * stay visible on the light panel (#fff) and the dark one (#1d2128) alike.
 */
export const SERIES = ['#4e79a7', '#f28e2b', '#e15759', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#8cd17d', '#bab0ac', '#d37295'];
export const seriesColor = (i: number) => SERIES[((i % SERIES.length) + SERIES.length) % SERIES.length];
/** The estimate line: a colour no task dot uses. */
export const EST_COLOR = '#7c5cff';

/** Axis tick text for a time in ms: short, with its unit (12 ms, 850 µs, 1.2 s). */
export function fmtAxisMs(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  if (ms === 0) return '0';
  if (ms >= 1000) return `${+(ms / 1000).toPrecision(2)} s`;
  if (ms >= 1) return `${+ms.toPrecision(3)} ms`;
  if (ms >= 0.001) return `${+(ms * 1000).toPrecision(3)} µs`;
  return `${+(ms * 1e6).toPrecision(3)} ns`;
}

/** Log scale when the values span more than this factor: one slow trial must not flatten the rest. */
export const LOG_RANGE = 10;

export function span(values: Array<number | null | undefined>): { lo: number; hi: number } | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || v === undefined || !Number.isFinite(v) || v <= 0) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? { lo, hi } : null;
}

/**
 * 1-2-5 ticks on a log axis, and its domain: the data's range padded by a quarter on each side, so
 * the fastest and slowest points never sit on the axis lines.
 */
export function logTicks(lo: number, hi: number): { ticks: number[]; domain: [number, number] } {
  const domain: [number, number] = [lo / 1.25, hi * 1.25];
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(domain[0])); e <= Math.ceil(Math.log10(domain[1])); e++) {
    for (const m of [1, 2, 5]) {
      const t = +(m * 10 ** e).toPrecision(3);
      if (t >= domain[0] && t <= domain[1]) ticks.push(t);
    }
  }
  // Over a wide range, powers of ten only: 1-2-5 ticks would crowd the axis.
  const thin = ticks.length > 7 ? ticks.filter((t) => Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9) : ticks;
  // Over a narrow range (an estimate that moved by a few %), 1-2-5 ticks leave one or none: round steps.
  if (ticks.length < 3) return { ticks: stepTicks(domain[0], domain[1]), domain };
  return { ticks: thin.length >= 2 ? thin : ticks, domain };
}

/** About `n` round ticks (steps of 1, 2 or 5 × 10^k) inside [lo, hi]. */
export function stepTicks(lo: number, hi: number, n = 4): number[] {
  const raw = (hi - lo) / n;
  if (!(raw > 0)) return [lo];
  const e = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5].find((m) => m * e >= raw) ?? 10) * e;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi * (1 + 1e-12); t += step) out.push(+t.toPrecision(6));
  return out;
}

/** Round integer ticks (multiples of 1, 2, 5 × 10^k) over [lo, hi]: trial numbers read 100, 200, not 101, 201. */
export function intTicks(lo: number, hi: number, max = 8): number[] {
  if (!(hi > lo)) return [lo];
  let step = 1;
  for (let e = 0; ; e++) {
    const m = [1, 2, 5].find((k) => (hi - lo) / (k * 10 ** e) <= max);
    if (m) {
      step = m * 10 ** e;
      break;
    }
  }
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) out.push(t);
  if (!out.length || out[0] - lo > step / 2) out.unshift(lo);
  return out;
}

/** A latency histogram: equal-width bins over [min, p99.5] (the far tail is counted in the last bin and said). */
export interface Bin {
  x0: number;
  x1: number;
  mid: number;
  [series: string]: number;
}

/**
 * Bins over [min, p99.5] (the far tail is counted in the last bin and reported). When the values
 * span more than LOG_RANGE the bins are log-spaced, so a fast cluster is not one bar beside a long tail.
 */
export function histogram(series: number[][], bins = 30): { bins: Bin[]; clipped: number; log: boolean; lo: number; hi: number } {
  const all = series.flat().filter((v) => Number.isFinite(v) && v > 0).sort((a, b) => a - b);
  if (!all.length) return { bins: [], clipped: 0, log: false, lo: 0, hi: 0 };
  const lo = all[0];
  const hi = Math.max(all[Math.min(all.length - 1, Math.floor(all.length * 0.995))], lo * 1.0001);
  const log = hi / lo > LOG_RANGE;
  const edge = (i: number) => (log ? lo * (hi / lo) ** (i / bins) : lo + ((hi - lo) * i) / bins);
  const out: Bin[] = Array.from({ length: bins }, (_, i) => ({ x0: edge(i), x1: edge(i + 1), mid: log ? Math.sqrt(edge(i) * edge(i + 1)) : (edge(i) + edge(i + 1)) / 2 }));
  const index = (v: number) => Math.floor(log ? (Math.log(v / lo) / Math.log(hi / lo)) * bins : ((v - lo) / (hi - lo)) * bins);
  let clipped = 0;
  series.forEach((vals, k) => {
    out.forEach((b) => (b[`s${k}`] = 0));
    for (const v of vals) {
      if (!(v > 0)) continue;
      let i = index(v);
      if (i >= bins) {
        clipped += v > hi ? 1 : 0;
        i = bins - 1;
      }
      out[Math.max(0, i)][`s${k}`] += 1;
    }
  });
  return { bins: out, clipped, log, lo, hi };
}

export function LegendItems({ items }: { items: Array<{ label: string; color: string; kind?: 'dot' | 'line' | 'bar'; title?: string }> }) {
  return (
    <div className="chart-legend" data-testid="chart-legend">
      {items.map((it, i) => (
        <span key={i} className="legend-item" title={it.title ?? it.label}>
          <span className={`swatch ${it.kind ?? 'dot'}`} style={{ background: it.color }} />
          {it.label}
        </span>
      ))}
    </div>
  );
}

// ---- The Tune view's live trial chart -------------------------------------------------------------
//
// Recharts draws the frame (axes, ticks, grid); the trials are drawn by TrialLayers inside the same
// SVG, on the axes' scales, from a downsampled copy of the data: a bounded number of SVG nodes
// however many trials arrive. (A recharts <Scatter> costs several components, a <g> and a store
// subscription per dot, and re-keys every dot when the axes move: 600 of them took 150-180 ms to
// redraw on the 2-core test machine.) The data reaches TrialLayers through a context, so a new
// batch of trials redraws the layers alone, for the new trials only; the recharts frame redraws
// when an axis changes, and while trials stream in the axes move in steps, a few times a tune.

/**
 * The chart redraws at most this often while trials stream in (counters and tables update every
 * frame). A redraw that adds trials to the same axes costs a few ms; one whose axes move costs
 * recharts' frame too (see CHART_BUDGET for what keeps either from crowding the page).
 */
export const CHART_INTERVAL_MS = 100;
/**
 * A redraw may take at most this share of the time: on a slow or busy machine the interval grows
 * with the measured cost of the last redraw, so streaming trials never turns into one long frame
 * after another (the counters and tables still update every frame).
 */
const CHART_BUDGET = 0.1;
/** Up to this many dots, each is its own <circle class="trial-dot">; beyond, one <path> per task draws them all. */
export const MAX_DOT_NODES = 1000;
/** About this many dots at most: the thinning cell grows with the trials, up to MAX_CELL, to keep to it. */
export const MAX_DRAWN_DOTS = 12000;
/** Dot radius (px). */
const DOT_R = 3;
/** The finest thinning cell (px): two dots within a cell overlap by two thirds or more, and one of them is drawn. */
const MIN_CELL = 2;
/** The coarsest: dots in neighbouring cells still overlap, so that a dense cloud stays solid. */
const MAX_CELL = DOT_R + 1;
/** Pixels between the plot's edges and the first and last trial (the X axis padding). */
const X_PAD = 6;
/** A dot this close to the pointer (px) shows its tooltip. */
const HOVER_PX = 10;

/** The latest value, but at most one change per `ms` (the last change always lands). */
export function useThrottled<T>(value: T, ms: number): T {
  const [shown, setShown] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    const wait = last.current + ms - performance.now();
    if (wait <= 0) {
      last.current = performance.now();
      setShown(value);
      return;
    }
    const t = setTimeout(() => {
      last.current = performance.now();
      setShown(value);
    }, wait);
    return () => clearTimeout(t);
  }, [value, ms]);
  return shown;
}

/**
 * Times each redraw of the chart (a change of `key`, the data drawn): from the render to the end
 * of the work its commit runs in the same task (layout effects, and recharts' second pass that
 * they set off), plus the passive effects (from the first, in <RedrawProbe>, placed first in the
 * chart, to the end of the chart's own) when React runs them in a later task. Work between the
 * two that is not the chart's, e.g. a frame with other components' updates, is not counted; nor
 * are the browser's style, layout and paint.
 */
function useRedrawTimer(key: unknown, done: (ms: number) => void): (probeKey: unknown) => void {
  const start = performance.now();
  const run = useRef<{ key: unknown; start: number; syncEnd: number; passiveStart: number } | null>(null);
  const last = useRef<unknown>(null);
  useLayoutEffect(() => {
    if (last.current === key) return;
    last.current = key;
    const r = { key, start, syncEnd: NaN, passiveStart: NaN };
    run.current = r;
    queueMicrotask(() => (r.syncEnd = performance.now()));
  });
  useEffect(() => {
    const r = run.current;
    if (!r || r.key !== key) return;
    run.current = null;
    queueMicrotask(() => {
      const end = performance.now();
      // Passive effects in the commit's own task, or in a later one.
      done(!(r.passiveStart >= r.syncEnd) ? end - r.start : r.syncEnd - r.start + (end - r.passiveStart));
    });
  });
  return useCallback((probeKey: unknown) => {
    const r = run.current;
    if (r && r.key === probeKey && Number.isNaN(r.passiveStart)) r.passiveStart = performance.now();
  }, []);
}

/** Marks the start of a commit's passive effects (its effect runs first: it is the chart's first child). */
function RedrawProbe({ at, k }: { at: (k: unknown) => void; k: unknown }) {
  useEffect(() => at(k));
  return null;
}

interface Axis {
  domain: [number, number];
  ticks?: number[];
  log: boolean;
}

/**
 * A value axis: log ticks over the data's range padded by a quarter and rounded out to fifths of
 * a decade, or round ticks from 0.
 */
function valueAxis(s: { lo: number; hi: number } | null, log: boolean): Axis {
  if (!s) return { domain: [0, 1], log: false };
  if (log) {
    const d0 = 10 ** (Math.floor(Math.log10(s.lo / 1.25) * 5) / 5);
    const d1 = 10 ** (Math.ceil(Math.log10(s.hi * 1.25) * 5) / 5);
    return { domain: [d0, d1], ticks: logTicks(d0 * 1.25, d1 / 1.25).ticks, log: true };
  }
  const ticks = getNiceTickValues([0, s.hi], 5, true);
  return { domain: [0, Math.max(s.hi, ticks[ticks.length - 1])], ticks, log: false };
}

interface ValueRange {
  lo: number;
  hi: number;
  axis: Axis;
}

/**
 * A value axis for data that streams in: when the data outgrows the axis, the new one leaves room
 * for the range to grow once more by the factor it grew by since the last redraw, and it is kept
 * while the data fits. Still data gets the tight axis.
 */
function valueRange(s: { lo: number; hi: number } | null, log: boolean, prev: ValueRange | null): ValueRange | null {
  if (!s) return null;
  const p = prev && prev.axis.log === log ? prev : null;
  const gLo = p && s.lo <= p.lo ? p.lo / s.lo : 1;
  const gHi = p && s.hi >= p.hi ? s.hi / p.hi : 1;
  const tight = valueAxis(s, log).domain;
  const ahead = valueAxis({ lo: s.lo / gLo, hi: s.hi * gHi }, log);
  if (p && s.lo <= p.lo && s.hi >= p.hi && p.axis.domain[0] <= tight[0] && p.axis.domain[1] >= tight[1]) return { lo: s.lo, hi: s.hi, axis: p.axis };
  return { lo: s.lo, hi: s.hi, axis: ahead };
}

/** A round end for a trial axis past `hi`: a multiple of half its tick step (of the step under 10). */
function roundEnd(lo: number, hi: number): number {
  const ticks = intTicks(lo, hi);
  const step = ticks.length > 2 ? ticks[ticks.length - 1] - ticks[ticks.length - 2] : 1;
  const snap = step >= 10 ? step / 2 : step;
  return Math.ceil(hi / snap) * snap;
}

interface TrialRange {
  lo: number;
  hi: number;
  end: number;
}

/**
 * The trial axis: from the first trial to a round number past the last. While trials stream in,
 * it leaves room for three more batches as long as the last (the trials since the last redraw), up
 * to the tune's budget, and keeps its end while the trials fit: the axis, and with it the recharts
 * frame, moves every few redraws rather than with each. Still data gets the round end next to its
 * last trial.
 */
function trialRange(n: { lo: number; hi: number } | null, prev: TrialRange | null, budget = 0): TrialRange | null {
  if (!n) return null;
  const same = prev !== null && prev.lo === n.lo && n.hi >= prev.hi;
  if (same && n.hi <= prev.end) return { ...prev, hi: n.hi };
  const growth = same ? n.hi - prev.hi : 0;
  const ahead = Math.min(n.hi + 3 * growth, budget >= n.hi ? budget : Infinity);
  return { lo: n.lo, hi: n.hi, end: n.hi > n.lo ? roundEnd(n.lo, Math.max(n.hi, ahead)) : n.hi };
}

function trialAxis(r: TrialRange | null): Axis {
  if (!r) return { domain: [0, 1], log: false };
  if (!(r.end > r.lo)) return { domain: [r.lo - 1, r.lo + 1], ticks: [r.lo], log: false };
  return { domain: [r.lo, r.end], ticks: intTicks(r.lo, r.end), log: false };
}

/** The first of equal values (by JSON): a new object with the same values keeps the old one's identity. */
function useStable<T>(value: T): T {
  const key = JSON.stringify(value);
  return useMemo(() => value, [key]); // eslint-disable-line react-hooks/exhaustive-deps
}

type Scale = (v: number) => number;
/** The axis' scale as recharts builds it (d3 linear or log over the domain, onto [r0, r1]); NaN where a log scale has no place. */
function scaleOf(a: Axis, r0: number, r1: number): Scale {
  const [d0, d1] = a.domain;
  if (a.log) {
    const l0 = Math.log(d0);
    const k = (r1 - r0) / (Math.log(d1) - l0);
    return (v) => (v > 0 ? r0 + (Math.log(v) - l0) * k : NaN);
  }
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** What the chart needs of all the trials: one pass over them, or over the new ones only. */
interface TrialSeries {
  points: TrialPoint[];
  n: { lo: number; hi: number } | null;
  lat: { lo: number; hi: number } | null;
  est: { lo: number; hi: number } | null;
  /** The estimate line's corners (it changes only when a task's best does), and its last point. */
  estCorners: number[];
  estLast: number;
  tasks: number[];
  /** Built on the previous series: the same trials and more. */
  extended: boolean;
}

/** Whether `points` is `prev` with trials appended (the store appends to a copy of its array). */
function extendsPoints(points: TrialPoint[], prev: TrialPoint[]): boolean {
  return prev.length > 0 && points.length >= prev.length && points[0] === prev[0] && points[prev.length - 1] === prev[prev.length - 1];
}

const grow = (s: { lo: number; hi: number } | null, v: number) => (!s ? { lo: v, hi: v } : v < s.lo || v > s.hi ? { lo: Math.min(s.lo, v), hi: Math.max(s.hi, v) } : s);
const positive = (v: number | null) => (v !== null && v > 0 && Number.isFinite(v) ? v : null);

function trialSeries(points: TrialPoint[], prev: TrialSeries | null): TrialSeries {
  const p = prev && extendsPoints(points, prev.points) ? prev : null;
  let { n, lat, est } = p ?? { n: null, lat: null, est: null };
  const tasks = new Set(p?.tasks);
  for (let i = p ? p.points.length : 0; i < points.length; i++) {
    const t = points[i];
    n = grow(n, t.n);
    tasks.add(t.task);
    const l = positive(t.latency);
    if (l !== null) lat = grow(lat, l);
    const e = positive(t.est);
    if (e !== null) est = grow(est, e);
  }
  const estCorners = p ? p.estCorners.slice() : [];
  const estLast = extendStep(estCorners, p ? p.estLast : -1, (i) => positive(points[i].est), p ? p.points.length : 0, points.length);
  return { points, n, lat, est, estCorners, estLast, tasks: [...tasks], extended: p !== null };
}

interface TrialAxes {
  x: Axis;
  left: Axis;
  right: Axis;
}

interface Hovered {
  point: TrialPoint;
  x: number;
  y: number;
  /** Show the tooltip left of the dot (near the right edge). */
  flip: boolean;
}

/** The trials, for TrialLayers: through a context, so that new trials do not redraw the recharts frame around them. */
const SeriesContext = createContext<TrialSeries | null>(null);

/**
 * The Tune view's chart of trials as they arrive: each trial's latency (a dot, coloured by task,
 * left axis) and the model's estimated end-to-end time, best so far (a step line, right axis).
 * `budget`, the tune's trial budget, bounds how far ahead of the trials the trial axis reaches
 * while they stream in.
 */
export const TrialChart = memo(function TrialChart({ points: live, tasks, budget = 0 }: { points: TrialPoint[]; tasks: Record<number, TaskRow>; budget?: number }) {
  const cost = useRef(0);
  const points = useThrottled(live, Math.max(CHART_INTERVAL_MS, cost.current / CHART_BUDGET));
  const probe = useRedrawTimer(points, (ms) => {
    cost.current = ms;
    recordRedraw(ms);
  });
  const last = useRef<TrialSeries | null>(null);
  const series = useMemo(() => (last.current = trialSeries(points, last.current)), [points]);
  const [scale, setScale] = useState<'auto' | 'log' | 'linear'>('auto');
  // Task names change rarely; the chart only needs them for the legend and the tooltip.
  // `tasks` is a new object on every batch (trial counts change); keyed on the names alone, so the
  // chart below is not redrawn for every batch of trials.
  const namesKey = Object.values(tasks).map((t) => `${t.id}\u0000${t.name}`).join('\u0001');
  const names = useMemo(() => Object.fromEntries(Object.values(tasks).map((t) => [t.id, t.name || `task ${t.id}`])), [namesKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const taskIds = useMemo(() => [...new Set([...Object.keys(names).map(Number), ...series.tasks])].sort((a, b) => a - b), [names, series]);
  const lat = series.lat;
  const log = scale === 'log' || (scale === 'auto' && lat !== null && lat.hi / lat.lo > LOG_RANGE);
  // Each axis stays the same object while its values stay: the recharts frame is not redrawn.
  const range = useRef<TrialRange | null>(null);
  const x = useStable(
    useMemo(() => {
      range.current = trialRange(series.n, series.extended ? range.current : null, budget);
      return trialAxis(range.current);
    }, [series, budget]),
  );
  const latRange = useRef<ValueRange | null>(null);
  const estRange = useRef<ValueRange | null>(null);
  const left = useStable(
    useMemo(() => {
      latRange.current = valueRange(series.lat, log, series.extended ? latRange.current : null);
      return latRange.current?.axis ?? valueAxis(null, log);
    }, [series, log]),
  );
  const right = useStable(
    useMemo(() => {
      estRange.current = valueRange(series.est, log, series.extended ? estRange.current : null);
      return estRange.current?.axis ?? valueAxis(null, log);
    }, [series, log]),
  );
  const axes = useMemo<TrialAxes>(() => ({ x, left, right }), [x, left, right]);
  const [hover, setHover] = useState<Hovered | null>(null);
  return (
    <div className="chart" data-testid="tune-chart" data-points={points.length} data-scale={log ? 'log' : 'linear'}>
      <RedrawProbe at={probe} k={points} />
      <div className="chart-head">
        <label>
          Latency axis{' '}
          <select aria-label="Latency axis scale" value={scale} onChange={(e) => setScale(e.target.value as typeof scale)}>
            <option value="auto">auto ({lat && lat.hi / lat.lo > LOG_RANGE ? 'log' : 'linear'})</option>
            <option value="log">log</option>
            <option value="linear">linear</option>
          </select>
        </label>
      </div>
      <div style={{ position: 'relative' }}>
        <SeriesContext.Provider value={series}>
          <TrialChartSvg axes={axes} onHover={setHover} />
        </SeriesContext.Provider>
        {hover && <TrialTooltip hover={hover} names={names} />}
      </div>
      <LegendItems items={[...taskIds.map((t) => ({ label: names[t] ?? `task ${t}`, color: seriesColor(t), kind: 'dot' as const })), { label: 'estimated end-to-end, best so far (right axis)', color: EST_COLOR, kind: 'line' as const }]} />
      {points.length > MAX_DOT_NODES && (
        <p className="hint">
          {points.length.toLocaleString('en-US')} trials, thinned where dots would overlap: per task, a dot per cell of {MIN_CELL}–{MAX_CELL} pixels, and each column&apos;s fastest and slowest trial (to the pixel) and the latest trial always.
        </p>
      )}
    </div>
  );
});

function TrialTooltip({ hover, names }: { hover: Hovered; names: Record<number, string> }) {
  const p = hover.point;
  return (
    <div className="chart-tooltip" data-testid="trial-tooltip" style={{ position: 'absolute', left: hover.x, top: hover.y, transform: hover.flip ? 'translate(calc(-100% - 12px), 12px)' : 'translate(12px, 12px)', pointerEvents: 'none', whiteSpace: 'nowrap', zIndex: 1 }}>
      <b style={{ color: seriesColor(p.task) }}>{names[p.task] ?? `task ${p.task}`}</b>
      trial {p.n}: {p.latency === null ? 'failed' : fmtMs(p.latency)}
      {p.server && <> on <span data-testid="trial-server">{p.server}</span></>}
      <br />
      best so far for this task: {fmtMs(p.best)}
      {p.est !== null && (
        <>
          <br />
          estimated end-to-end: {fmtMs(p.est)}
        </>
      )}
    </div>
  );
}

/** The recharts frame, redrawn only when the axes change. */
const MARGIN = { top: 8, right: 12, bottom: 24, left: 12 };

/** Where recharts' <Text> puts a line's baseline for its vertical anchor. */
const TICK_DY = { start: '0.71em', middle: '0.355em', end: '0' } as const;

/**
 * A tick label as recharts draws it, without its <Text>: that one measures every label in the
 * DOM to wrap it (a forced layout for each new label), and these never wrap.
 */
function AxisTick(p: { x?: number; y?: number; textAnchor?: 'start' | 'middle' | 'end' | 'inherit'; verticalAnchor?: keyof typeof TICK_DY; fill?: string; className?: string; index?: number; payload?: { value: number }; tickFormatter?: (v: number, i: number) => string }) {
  const v = p.payload?.value ?? 0;
  return (
    <text x={p.x} y={p.y} dy={TICK_DY[p.verticalAnchor ?? 'end']} textAnchor={p.textAnchor} fill={p.fill} className={p.className}>
      {p.tickFormatter ? p.tickFormatter(v, p.index ?? 0) : v}
    </text>
  );
}
const X_PADDING = { left: X_PAD, right: X_PAD };
const X_LABEL = { value: 'trial (all tasks, in the order measured)', position: 'insideBottom', offset: -14, fill: 'var(--muted)', fontSize: 12 } as const;
const LAT_LABEL = { value: 'kernel latency', angle: -90, position: 'insideLeft', offset: -2, fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } } as const;
const LAT_LOG_LABEL = { ...LAT_LABEL, value: 'kernel latency (log)' } as const;
const EST_LABEL = { value: 'model, estimated', angle: 90, position: 'insideRight', offset: -2, fill: EST_COLOR, fontSize: 12, style: { textAnchor: 'middle' } } as const;

/**
 * The recharts frame, redrawn only when an axis changes; each axis' element is kept while its
 * own domain and ticks stay, so that React skips it.
 */
const TrialChartSvg = memo(function TrialChartSvg({ axes, onHover }: { axes: TrialAxes; onHover: (h: Hovered | null) => void }) {
  const { x, left, right } = axes;
  const xAxis = useMemo(() => <XAxis dataKey="n" type="number" domain={x.domain} ticks={x.ticks} tick={AxisTick} interval={0} tickCount={0} allowDataOverflow padding={X_PADDING} allowDecimals={false} stroke="var(--muted)" height={36} label={X_LABEL} />, [x]);
  const leftAxis = useMemo(() => <YAxis yAxisId="task" dataKey="latency" type="number" width={78} stroke="var(--muted)" scale={left.log ? 'log' : 'auto'} domain={left.domain} ticks={left.ticks} tick={AxisTick} interval={0} tickCount={0} allowDataOverflow tickFormatter={fmtAxisMs} label={left.log ? LAT_LOG_LABEL : LAT_LABEL} />, [left]);
  const rightAxis = useMemo(() => <YAxis yAxisId="total" dataKey="est" type="number" orientation="right" width={78} stroke={EST_COLOR} scale={right.log ? 'log' : 'auto'} domain={right.domain} ticks={right.ticks} tick={AxisTick} interval={0} tickCount={0} allowDataOverflow tickFormatter={fmtAxisMs} label={EST_LABEL} />, [right]);
  return (
    <ResponsiveContainer width="100%" height={340}>
      <ComposedChart margin={MARGIN}>
        <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
        {xAxis}
        {leftAxis}
        {rightAxis}
        <TrialLayers axes={axes} onHover={onHover} />
      </ComposedChart>
    </ResponsiveContainer>
  );
});

const round1 = (v: number) => Math.round(v * 10) / 10;

/**
 * The trials' dots and the estimate line, inside the recharts SVG on its plot area, downsampled to
 * what the plot's pixels can show (ScatterThinner; the line's corners, minMaxPerColumn): in O(n)
 * when the axes or the plot change, in O(new trials) when trials are only added.
 */
function TrialLayers({ axes, onHover }: { axes: TrialAxes; onHover: (h: Hovered | null) => void }) {
  const series = useContext(SeriesContext);
  const plot = usePlotArea();
  const px = plot?.x ?? 0;
  const py = plot?.y ?? 0;
  const pw = plot?.width ?? 0;
  const ph = plot?.height ?? 0;
  const dots = useRef<Dots | null>(null);
  const geo = useMemo(() => {
    if (!series || pw <= 0 || ph <= 0) return null;
    dots.current = drawDots(dots.current, series, axes, px, py, pw, ph);
    return { ...dots.current, est: estPath(series, axes, px, py, pw, ph) };
  }, [series, axes, px, py, pw, ph]);
  const shown = useRef(-1);
  const onMove = useCallback(
    (e: MouseEvent<SVGGElement>) => {
      const svg = e.currentTarget.ownerSVGElement;
      if (!geo || !series || !svg) return;
      const box = svg.getBoundingClientRect();
      const mx = e.clientX - box.left;
      const my = e.clientY - box.top;
      let best = -1;
      let bestD = HOVER_PX * HOVER_PX;
      for (let k = 0; k < geo.count; k++) {
        const d = (geo.dx[k] - mx) ** 2 + (geo.dy[k] - my) ** 2;
        if (d <= bestD) {
          bestD = d;
          best = k;
        }
      }
      if (best === shown.current) return;
      shown.current = best;
      onHover(best < 0 ? null : { point: series.points[geo.kept[best]], x: geo.dx[best], y: geo.dy[best], flip: geo.dx[best] > px + pw * 0.6 });
    },
    [geo, series, onHover, px, pw],
  );
  const onLeave = useCallback(() => {
    shown.current = -1;
    onHover(null);
  }, [onHover]);
  if (!geo || !series) return null;
  const pts = series.points;
  const many = geo.count > MAX_DOT_NODES;
  return (
    <g className="trial-layers" data-drawn={geo.count} data-cell={round1(geo.thinner.cell)} onMouseMove={onMove} onMouseLeave={onLeave}>
      <rect x={px} y={py} width={pw} height={ph} fill="transparent" />
      {many
        ? [...geo.paths].sort((a, b) => a[0] - b[0]).map(([t, d]) => <path key={t} className="trial-dots" data-task={t} d={d} fill="none" stroke={seriesColor(t)} strokeOpacity={0.75} strokeWidth={2 * DOT_R} strokeLinecap="round" />)
        : geo.kept.slice(0, geo.count).map((i, k) => <circle key={i} className="trial-dot" cx={geo.dx[k]} cy={geo.dy[k]} r={DOT_R} fill={seriesColor(pts[i].task)} fillOpacity={0.75} />)}
      {geo.est && <path className="est-line" d={geo.est} fill="none" stroke={EST_COLOR} strokeWidth={2} pointerEvents="none" />}
    </g>
  );
}

/**
 * The dots drawn: the trials ScatterThinner keeps (and the last trial), their positions in pixels
 * and, per task, a path with a dot per zero-length segment drawn with a round cap as wide as a dot
 * (arcs cost the browser some 30 times as much to build). Kept from one redraw to the next: when
 * only trials were added (the same axes, the same plot), only those are thinned and drawn.
 */
interface Dots {
  points: TrialPoint[];
  axes: TrialAxes;
  plot: string;
  thinner: ScatterThinner;
  /** Indices of the drawn trials (the first `count` entries: arrays grow in place). */
  kept: number[];
  dx: number[];
  dy: number[];
  count: number;
  paths: Map<number, string>;
}

function drawDots(prev: Dots | null, series: TrialSeries, axes: TrialAxes, px: number, py: number, pw: number, ph: number): Dots {
  const pts = series.points;
  const plot = `${px} ${py} ${pw} ${ph}`;
  let d: Dots;
  let from = 0;
  // Trials added to the same axes and plot: only those to draw, unless the dots have outgrown
  // the budget (a denser cloud, as trials accumulate, wants a coarser cell).
  if (prev && prev.axes === axes && prev.plot === plot && extendsPoints(pts, prev.points) && prev.count <= 1.5 * MAX_DRAWN_DOTS) {
    d = { ...prev, points: pts };
    from = prev.points.length;
  } else {
    // The finest cell that keeps about to the dot budget (dense clouds: up to a dot's width).
    let drawable = 0;
    for (const p of pts) if (p.latency !== null && p.latency > 0) drawable++;
    const cell = Math.min(MAX_CELL, Math.max(MIN_CELL, MIN_CELL * Math.sqrt(drawable / MAX_DRAWN_DOTS)));
    d = { points: pts, axes, plot, thinner: new ScatterThinner(pw, ph, cell), kept: [], dx: [], dy: [], count: 0, paths: new Map() };
  }
  const sx = scaleOf(axes.x, X_PAD, pw - X_PAD);
  const sy = scaleOf(axes.left, ph, 0);
  const add = (i: number, x: number, y: number) => {
    const k = d.count++;
    d.kept[k] = i;
    d.dx[k] = round1(x + px);
    d.dy[k] = round1(y + py);
    const t = pts[i].task;
    d.paths.set(t, `${d.paths.get(t) ?? ''}M${d.dx[k]} ${d.dy[k]}h0`);
  };
  let lastDrawable = -1;
  let lx = 0;
  let ly = 0;
  for (let i = from; i < pts.length; i++) {
    const p = pts[i];
    const l = p.latency;
    if (l === null || !(l > 0)) continue;
    const x = sx(p.n);
    const y = sy(l);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    lastDrawable = i;
    lx = x;
    ly = y;
    if (d.thinner.add(x, y, p.task)) add(i, x, y);
  }
  // The latest trial is always drawn.
  if (lastDrawable >= 0 && d.kept[d.count - 1] !== lastDrawable) add(lastDrawable, lx, ly);
  return d;
}

/** The estimate, a stepAfter line through its corners (at most four a pixel column) to its last point. */
function estPath(series: TrialSeries, axes: TrialAxes, px: number, py: number, pw: number, ph: number): string {
  const pts = series.points;
  const sx = scaleOf(axes.x, px + X_PAD, px + pw - X_PAD);
  const se = scaleOf(axes.right, py + ph, py);
  const ex = (i: number) => sx(pts[i].n);
  const ey = (i: number) => se(pts[i].est!);
  const corners = series.estLast >= 0 && series.estCorners[series.estCorners.length - 1] !== series.estLast ? [...series.estCorners, series.estLast] : series.estCorners;
  let est = '';
  for (const i of minMaxPerColumn(corners.filter((i) => Number.isFinite(ey(i))), ex, ey)) est += est ? `H${round1(ex(i))}V${round1(ey(i))}` : `M${round1(ex(i))} ${round1(ey(i))}`;
  return est;
}
