// Chart helpers shared by the Tune, Tuning logs and Benchmark views: fixed series colours that
// read on both themes, time axes in ms/µs, log-scale ticks, a legend that never collides with
// the axes (HTML under the chart), and a histogram for latency distributions.

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
