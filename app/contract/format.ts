// How the CLI and the app state a number, so that both say the same thing the same way: one
// formatter for a time (ms, µs, ns, s), one for a comparison ("1.65× faster" / "1.16× slower",
// never a bare 0.61×), and one verdict on whether a comparison can be trusted at all (the noise
// can explain it, or it is implausible) before it is shown in bold.

/** A time in ms with its unit: 289.8 ms, 1.25 ms, 81.6 µs, 20 ns, 12.3 s; `missing` for no value. */
export function fmtMs(ms: number | null | undefined, missing = '–'): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return missing;
  const a = Math.abs(ms);
  if (a >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (a >= 100) return `${ms.toFixed(1)} ms`;
  if (a >= 1) return `${ms.toFixed(2)} ms`;
  const us = ms * 1000;
  if (Math.abs(us) >= 1 || a === 0) return `${Math.abs(us) >= 100 || a === 0 ? us.toFixed(0) : Math.abs(us) >= 10 ? us.toFixed(1) : us.toFixed(2)} µs`;
  return `${(us * 1000).toFixed(0)} ns`;
}

/** "2.1× faster" / "1.3× slower": `candidate` against `baseline`, a ratio with its direction. */
export function fmtSpeedup(baselineMs: number | null | undefined, candidateMs: number | null | undefined): string {
  if (!baselineMs || !candidateMs || !Number.isFinite(baselineMs) || !Number.isFinite(candidateMs)) return '–';
  const r = baselineMs / candidateMs;
  if (Math.abs(r - 1) < 0.005) return 'same speed';
  const x = r >= 1 ? r : 1 / r;
  return `${x >= 10 ? x.toFixed(0) : x.toFixed(x >= 1.995 ? 1 : 2)}× ${r >= 1 ? 'faster' : 'slower'}`;
}

/** What a comparison needs of each side: its p50 and, where known, its spread. */
export interface Spread {
  p50: number;
  p90?: number;
  min?: number;
  runs?: number;
}

/** A speed-up more than this from one tune (or one compile) is not believed without a second measurement. */
export const MAX_PLAUSIBLE_SPEEDUP = 20;

export interface Comparison {
  /** faster / slower / same: trust the ratio; noise: the spreads overlap; implausible: more than 20×. */
  kind: 'faster' | 'slower' | 'same' | 'noise' | 'implausible' | 'none';
  /** baseline p50 / candidate p50 (above 1: the candidate is faster); null without both. */
  ratio: number | null;
  /** The ratio as fmtSpeedup says it ("1.65× faster"), or '–'. */
  text: string;
  /** Show the ratio in bold only when this is true: a difference the measurement supports. */
  strong: boolean;
  /** A sentence when the ratio must not be taken at face value (noise or implausible), else null. */
  warning: string | null;
}

/**
 * `candidate` against `baseline`, with a verdict: a difference inside the runs' spread (the
 * faster one's p90 reaches the slower one's p50) is noise, and a ratio past 20× is implausible;
 * both come with a warning that says to measure again instead of a bold ratio.
 */
export function compareLatency(baseline: Spread | null | undefined, candidate: Spread | null | undefined, opts: { baselineLabel?: string; candidateLabel?: string } = {}): Comparison {
  if (!baseline || !candidate || !(baseline.p50 > 0) || !(candidate.p50 > 0) || !Number.isFinite(baseline.p50) || !Number.isFinite(candidate.p50)) {
    return { kind: 'none', ratio: null, text: '–', strong: false, warning: null };
  }
  const ratio = baseline.p50 / candidate.p50;
  const text = fmtSpeedup(baseline.p50, candidate.p50);
  const x = ratio >= 1 ? ratio : 1 / ratio;
  const cand = opts.candidateLabel ?? 'the build';
  const base = opts.baselineLabel ?? 'the baseline';
  if (x > MAX_PLAUSIBLE_SPEEDUP) {
    return {
      kind: 'implausible', ratio, text, strong: false,
      warning: `${text} is implausible for one build (more than ${MAX_PLAUSIBLE_SPEEDUP}×): ${cand} ${fmtMs(candidate.p50)} against ${base} ${fmtMs(baseline.p50)} (p50). One of them was likely timed while the machine was busy or still warming up: measure again (Benchmark page, or torchtvm bench) before trusting it.`,
    };
  }
  if (text === 'same speed') return { kind: 'same', ratio, text, strong: false, warning: null };
  const [fast, slow] = ratio >= 1 ? [candidate, baseline] : [baseline, candidate];
  if (fast.p90 !== undefined && slow.p90 !== undefined && fast.p90 >= slow.p50) {
    return {
      kind: 'noise', ratio, text, strong: false,
      warning: `${text} at p50 is within the noise: the runs' spreads overlap (${cand} p50 ${fmtMs(candidate.p50)}–p90 ${fmtMs(candidate.p90)}, ${base} p50 ${fmtMs(baseline.p50)}–p90 ${fmtMs(baseline.p90)}). Measure again on a quieter machine, or with more runs, before reading a difference into it.`,
    };
  }
  return { kind: ratio >= 1 ? 'faster' : 'slower', ratio, text, strong: true, warning: null };
}

/** "at batch=1, seq=128": the sizes of the symbolic dims a latency was measured at ('' when none). */
export function fmtSizes(sizes: Record<string, number> | null | undefined): string {
  const e = Object.entries(sizes ?? {});
  return e.length ? `at ${e.map(([k, v]) => `${k}=${v}`).join(', ')}` : '';
}

/** "81.6 µs p50 (p90 95.0 µs, 40 runs)": a measured latency with its spread. */
export function fmtLatency(s: Spread | null | undefined, missing = '–'): string {
  if (!s || !Number.isFinite(s.p50)) return missing;
  const spread = [s.p90 !== undefined ? `p90 ${fmtMs(s.p90)}` : '', s.runs !== undefined ? `${s.runs} runs` : ''].filter(Boolean).join(', ');
  return `${fmtMs(s.p50)} p50${spread ? ` (${spread})` : ''}`;
}

/** The latency a build result carries (its `latency_ms`), as far as the rows below need it. */
export interface LatencyReport {
  torch: Spread;
  tvm: Spread;
  torch_frozen?: Spread;
  baseline?: string;
  sizes?: Record<string, number> | null;
}

export interface LatencyRow {
  label: string;
  stats: Spread;
  /** This row against the baseline; null on the baseline's own row. */
  vs: Comparison | null;
  baseline: boolean;
}

/**
 * The rows of a latency table, named as the engine names the baseline: PyTorch as the model was
 * loaded (TorchScript, or PyTorch eager for a torch.export .pt2), PyTorch frozen where the model
 * freezes, and the build; each row against the baseline, the faster of the first two.
 */
export function latencyRows(l: LatencyReport): LatencyRow[] {
  // The baseline is the faster of TorchScript as loaded and frozen (the engine says which); records
  // from before that choice always had frozen as the baseline where it ran.
  const frozenIsBase = !!l.torch_frozen && (l.baseline === undefined || /frozen/i.test(l.baseline));
  const loaded = /eager|export/i.test(l.baseline ?? '') ? 'PyTorch eager' : 'TorchScript';
  const baseLabel = l.baseline ?? (frozenIsBase ? 'TorchScript frozen' : loaded);
  const base = frozenIsBase ? l.torch_frozen! : l.torch;
  const vs = (stats: Spread, candidateLabel: string) => compareLatency(base, stats, { candidateLabel, baselineLabel: baseLabel });
  const loadedLabel = l.torch_frozen ? loaded : baseLabel;
  const rows: LatencyRow[] = [{ label: loadedLabel, stats: l.torch, vs: frozenIsBase ? vs(l.torch, loadedLabel) : null, baseline: !frozenIsBase }];
  if (l.torch_frozen) rows.push({ label: 'TorchScript frozen', stats: l.torch_frozen, vs: frozenIsBase ? null : vs(l.torch_frozen, 'TorchScript frozen'), baseline: frozenIsBase });
  rows.push({ label: 'TVM', stats: l.tvm, vs: vs(l.tvm, 'the TVM build'), baseline: false });
  return rows;
}

/** A duration: "45 s", "3 min 05 s", "2 h 10 min". */
export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}
