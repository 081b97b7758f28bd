// Two builds of one model side by side, op by op (`torchtvm compare`, the app's Compare page): where
// each op runs, how long it takes and how far it is from PyTorch in each build, with what differs
// flagged, and what differs between the builds themselves (tuned, placement, threads, ISA, library).
// Pure logic over two build records (build.json: {build, result}); no node or electron import.
import type { BuildInfo, CompileResult, PlacedOp } from './results.js';
import { describeBuild } from './builds.js';
import { fmtMs } from './format.js';
import { formatSpec } from './specs.js';

/** A build as its record holds it: its identity and the result its compile or tune reported. */
export interface BuildRecordLike {
  build: BuildInfo;
  result: CompileResult;
}

/**
 * When two times of one op differ: by more than TIME_REL_DIFF of the smaller one AND by more than
 * TIME_ABS_FLOOR_MS. The relative bound is above the run-to-run spread of one op's median inside a
 * model run (a few %); the floor keeps sub-microsecond ops, whose medians are timer-grain noise,
 * from being flagged for a 0.3 µs wobble.
 */
export const TIME_REL_DIFF = 0.1;
export const TIME_ABS_FLOOR_MS = 0.001;
/** When two errors of one op differ in magnitude: one is more than this many times the other, and the larger is above ERROR_FLOOR. */
export const ERROR_FACTOR = 10;
export const ERROR_FLOOR = 1e-6;

export type Where = PlacedOp['where'];

/** One op of one build: its placement entry and/or its row of the per-op comparison with PyTorch. */
export interface BuildOp {
  /** The value name in the compiled graph. */
  name: string;
  kind: string;
  scope?: string;
  /** Graph nodes the call computes (its node and the nodes fused into it). */
  nodes: string[];
  where: Where | null;
  /** In-model median: the placement's (library calls) or the per-op comparison's where it timed the call. */
  ms: number | null;
  max_abs: number | string | null;
  max_rel: number | string | null;
  /** Within PyTorch's tolerance (null: not compared: the build was made without compare_ops). */
  ok: boolean | null;
}

export interface OpSide {
  where: Where | null;
  ms: number | null;
  max_abs: number | string | null;
  max_rel: number | string | null;
  ok: boolean | null;
  /** The value name in that build's compiled graph. */
  name: string;
}

export interface CompareRow {
  /** Join key: the graph nodes (sorted, '+'-joined), else 'name@scope'. */
  key: string;
  /** The graph nodes the op computes in either build (its node and those fused into its call): where the graph view draws the row. */
  nodes: string[];
  /** "fc1 linear": the module path and the op's kind. */
  label: string;
  scope: string;
  kind: string;
  a: OpSide | null;
  b: OpSide | null;
  /** What differs (each false when a side is missing or unmeasured there). */
  diff: { placement: boolean; time: boolean; error: boolean; missing: boolean };
  /** Any of diff. */
  differs: boolean;
  /** b.ms / a.ms (below 1: B is faster), null without both. */
  time_ratio: number | null;
}

export interface BuildFact {
  /** What the line is about: tuned, placement, threads, target, features, library, ... */
  what: string;
  a: string;
  b: string;
  differs: boolean;
}

export interface BuildComparison {
  a: { id: string; dir: string; package: string; label: string; model: string };
  b: { id: string; dir: string; package: string; label: string; model: string };
  /** The two builds are of the same model (result.model, the file compiled); false: the rows mean little. */
  same_model: boolean;
  /** A sentence when the comparison must not be read as is (other models, other inputs, the same build twice). */
  warnings: string[];
  /** What differs between the builds themselves (and what does not), in a fixed order. */
  facts: BuildFact[];
  rows: CompareRow[];
  /** How many rows differ, by what. */
  counts: { rows: number; differing: number; placement: number; time: number; error: number; missing: number };
  /** The whole-model latency each build recorded when it was made (TVM p50), and B/A. */
  recorded_p50: { a: number | null; b: number | null; ratio: number | null };
  /** The thresholds the flags use (for the footnote). */
  thresholds: { time_rel: number; time_abs_ms: number; error_factor: number; error_floor: number };
}

const num = (x: number | string | null | undefined): number | null => {
  if (typeof x === 'number') return x;
  if (x === 'inf' || x === '-inf') return Infinity;
  return null;
};

const nodesOf = (o: { node?: string; fused?: string[] }) => [...new Set([o.node, ...(o.fused ?? [])].filter((n): n is string => !!n))].sort();

/** A build's ops: its placement entries joined with its per-op comparison rows (by value name, else by a shared graph node). */
export function buildOps(result: CompileResult): BuildOp[] {
  const ops: BuildOp[] = (result.placement?.ops ?? []).map((p) => ({
    name: p.name, kind: p.kind, scope: p.scope, nodes: nodesOf(p), where: p.where, ms: p.ms ?? null, max_abs: null, max_rel: null, ok: null,
  }));
  for (const r of result.op_comparison?.ops ?? []) {
    const nodes = nodesOf(r);
    const hit = ops.find((o) => o.name === r.op) ?? (nodes.length ? ops.find((o) => o.nodes.some((n) => nodes.includes(n))) : undefined);
    if (hit) {
      hit.max_abs = r.max_abs;
      hit.max_rel = r.max_rel;
      hit.ok = r.ok;
      if (hit.ms === null && typeof r.ms === 'number') hit.ms = r.ms;
      hit.nodes = [...new Set([...hit.nodes, ...nodes])].sort();
      hit.scope ??= r.scope;
      hit.where ??= r.where;
    } else {
      ops.push({ name: r.op, kind: r.kind, scope: r.scope, nodes, where: r.where, ms: typeof r.ms === 'number' ? r.ms : null, max_abs: r.max_abs, max_rel: r.max_rel, ok: r.ok });
    }
  }
  return ops;
}

function side(o: BuildOp): OpSide {
  return { where: o.where, ms: o.ms, max_abs: o.max_abs, max_rel: o.max_rel, ok: o.ok, name: o.name };
}

/** Whether two times of an op differ beyond the thresholds (false when either is unknown). */
export function timeDiffers(a: number | null, b: number | null): boolean {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b)) return false;
  const d = Math.abs(a - b);
  return d > TIME_ABS_FLOOR_MS && d > TIME_REL_DIFF * Math.min(a, b);
}

/** Whether two errors differ: the ok-state changed, or the magnitude by more than ERROR_FACTOR (above ERROR_FLOOR); a non-finite side against a finite one differs. */
export function errorDiffers(a: OpSide, b: OpSide): boolean {
  if (a.ok !== null && b.ok !== null && a.ok !== b.ok) return true;
  const x = num(a.max_abs);
  const y = num(b.max_abs);
  if (typeof a.max_abs === 'string' || typeof b.max_abs === 'string') return a.max_abs !== b.max_abs && !(x !== null && x === y);
  if (x === null || y === null) return false;
  const hi = Math.max(x, y);
  const lo = Math.min(x, y);
  return hi > ERROR_FLOOR && hi > ERROR_FACTOR * Math.max(lo, ERROR_FLOOR / ERROR_FACTOR);
}

/** Joins two builds' ops: by a shared graph node, else by value name and module path. Rows in A's order, then B's extra ops. */
export function joinOps(aOps: BuildOp[], bOps: BuildOp[]): Array<[BuildOp | null, BuildOp | null]> {
  const usedB = new Set<number>();
  const pairs: Array<[BuildOp | null, BuildOp | null]> = [];
  for (const a of aOps) {
    let j = a.nodes.length ? bOps.findIndex((b, i) => !usedB.has(i) && b.nodes.some((n) => a.nodes.includes(n))) : -1;
    if (j < 0) j = bOps.findIndex((b, i) => !usedB.has(i) && b.name === a.name && (b.scope ?? '') === (a.scope ?? ''));
    if (j >= 0) usedB.add(j);
    pairs.push([a, j >= 0 ? bOps[j] : null]);
  }
  bOps.forEach((b, i) => {
    if (!usedB.has(i)) pairs.push([null, b]);
  });
  return pairs;
}

const yesNo = (v: boolean) => (v ? 'yes' : 'no');

function facts(a: BuildRecordLike, b: BuildRecordLike): BuildFact[] {
  const ra = a.result;
  const rb = b.result;
  const fa = new Set(ra.target.features);
  const fb = new Set(rb.target.features);
  const onlyA = [...fa].filter((f) => !fb.has(f));
  const onlyB = [...fb].filter((f) => !fa.has(f));
  const trials = (r: CompileResult) => (r.tuning ? `${r.tuning.trials} trials` : '');
  const inputs = (r: CompileResult) => r.inputs.map(formatSpec).join(' ');
  const short = (s: string | null | undefined) => (s ? s.slice(0, 12) : '–');
  const fact = (what: string, x: string, y: string): BuildFact => ({ what, a: x, b: y, differs: x !== y });
  return [
    fact('tuned', `${yesNo(a.build.tuned)}${a.build.tuned && trials(ra) ? ` (${trials(ra)})` : ''}`, `${yesNo(b.build.tuned)}${b.build.tuned && trials(rb) ? ` (${trials(rb)})` : ''}`),
    fact('placement', ra.placement?.mode ?? '–', rb.placement?.mode ?? '–'),
    fact('threads', String(ra.threads), String(rb.threads)),
    fact('target', `${ra.target.kind} ${ra.target.mcpu ?? 'default'}`, `${rb.target.kind} ${rb.target.mcpu ?? 'default'}`),
    {
      what: 'ISA features',
      a: onlyA.length ? `${fa.size} (${onlyA.length} not in B: ${onlyA.slice(0, 6).join(' ')}${onlyA.length > 6 ? ' …' : ''})` : `${fa.size}`,
      b: onlyB.length ? `${fb.size} (${onlyB.length} not in A: ${onlyB.slice(0, 6).join(' ')}${onlyB.length > 6 ? ' …' : ''})` : `${fb.size}`,
      differs: onlyA.length > 0 || onlyB.length > 0,
    },
    fact('partly compiled', yesNo(a.build.partial), yesNo(b.build.partial)),
    fact('inputs', inputs(ra), inputs(rb)),
    fact('library sha256', short(a.build.library_sha256), short(b.build.library_sha256)),
    fact('package sha256', short(a.build.sha256), short(b.build.sha256)),
    { what: 'verified', a: ra.verification.skipped ? 'not run' : ra.verification.ok ? 'ok' : 'MISMATCH', b: rb.verification.skipped ? 'not run' : rb.verification.ok ? 'ok' : 'MISMATCH', differs: ra.verification.ok !== rb.verification.ok },
    { what: 'recorded p50', a: fmtMs(ra.latency_ms?.tvm.p50), b: fmtMs(rb.latency_ms?.tvm.p50), differs: timeDiffers(ra.latency_ms?.tvm.p50 ?? null, rb.latency_ms?.tvm.p50 ?? null) },
  ];
}

/** Two builds of one model, op by op: rows joined by graph node (else value name and module path), flags, and what differs between the builds. */
export function compareBuilds(a: BuildRecordLike, b: BuildRecordLike): BuildComparison {
  const rows: CompareRow[] = joinOps(buildOps(a.result), buildOps(b.result)).map(([x, y]) => {
    const o = (x ?? y)!;
    const sa = x ? side(x) : null;
    const sb = y ? side(y) : null;
    const kind = x?.kind ?? y!.kind;
    const scope = x?.scope ?? y?.scope ?? '';
    const diff = {
      placement: !!sa && !!sb && sa.where !== sb.where,
      time: !!sa && !!sb && timeDiffers(sa.ms, sb.ms),
      error: !!sa && !!sb && errorDiffers(sa, sb),
      missing: !sa || !sb,
    };
    const nodes = [...new Set([...(x?.nodes ?? []), ...(y?.nodes ?? [])])].sort();
    return {
      key: o.nodes.length ? nodes.join('+') : `${o.name}@${o.scope ?? ''}`,
      nodes,
      label: scope ? `${scope} ${kind}` : `${kind} ${o.name}`,
      scope,
      kind,
      a: sa,
      b: sb,
      diff,
      differs: diff.placement || diff.time || diff.error || diff.missing,
      time_ratio: sa?.ms && sb?.ms ? sb.ms / sa.ms : null,
    };
  });
  const warnings: string[] = [];
  const sameModel = a.result.model === b.result.model;
  if (!sameModel) warnings.push(`The builds are of different models (A: ${a.result.model}, B: ${b.result.model}): their ops do not correspond, so the table compares unrelated things.`);
  if (a.build.sha256 === b.build.sha256) warnings.push('A and B are the same build (one package): every difference measured between them is noise.');
  if (sameModel && JSON.stringify(a.result.inputs) !== JSON.stringify(b.result.inputs)) warnings.push('The builds were made for different input shapes or dtypes: their op times are not comparable one to one.');
  if (!a.result.op_comparison || !b.result.op_comparison) warnings.push(`No per-op errors for ${!a.result.op_comparison && !b.result.op_comparison ? 'either build' : !a.result.op_comparison ? 'build A' : 'build B'}: compile with --compare-ops (in the app: the Graph page's "Compare each op with PyTorch") to see them.`);
  const pa = a.result.latency_ms?.tvm.p50 ?? null;
  const pb = b.result.latency_ms?.tvm.p50 ?? null;
  const ident = (r: BuildRecordLike) => ({ id: r.build.id, dir: r.build.dir, package: r.build.package, label: describeBuild(r.build), model: r.result.model });
  return {
    a: ident(a),
    b: ident(b),
    same_model: sameModel,
    warnings,
    facts: facts(a, b),
    rows,
    counts: {
      rows: rows.length,
      differing: rows.filter((r) => r.differs).length,
      placement: rows.filter((r) => r.diff.placement).length,
      time: rows.filter((r) => r.diff.time).length,
      error: rows.filter((r) => r.diff.error).length,
      missing: rows.filter((r) => r.diff.missing).length,
    },
    recorded_p50: { a: pa, b: pb, ratio: pa && pb ? pb / pa : null },
    thresholds: { time_rel: TIME_REL_DIFF, time_abs_ms: TIME_ABS_FLOOR_MS, error_factor: ERROR_FACTOR, error_floor: ERROR_FLOOR },
  };
}

/** "library → TVM", or the one placement when it did not change; '–' for a side without the op. */
export function fmtPlacement(a: Where | null | undefined, b: Where | null | undefined): string {
  const w = (x: Where | null | undefined) => (x === undefined ? '–' : x === null ? '?' : x === 'tvm' ? 'TVM' : x === 'torchscript' ? 'TorchScript' : 'library');
  return a === b ? w(a) : `${w(a)} → ${w(b)}`;
}

/** An error figure: '1.2e-6', 'inf', '–'. */
export function fmtError(x: number | string | null | undefined): string {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'string') return x;
  return x === 0 ? '0' : x.toExponential(1);
}

/** "2.5 µs ok" / "3.1e-2 FAIL" / "–": one side's error with its verdict. */
export function fmtSideError(s: OpSide | null): string {
  if (!s || s.ok === null) return '–';
  return `${fmtError(s.max_abs)} ${s.ok ? 'ok' : 'FAIL'}`;
}

/** What differs on a row, in words: "placement, time (2.1× slower in B)". */
export function rowDiffText(r: CompareRow): string {
  const parts: string[] = [];
  if (r.diff.missing) parts.push(r.a ? 'only in A' : 'only in B');
  if (r.diff.placement) parts.push('placement');
  if (r.diff.time && r.time_ratio) parts.push(`time ${r.time_ratio > 1 ? `${r.time_ratio.toFixed(r.time_ratio >= 10 ? 0 : 1)}× slower` : `${(1 / r.time_ratio).toFixed(1 / r.time_ratio >= 10 ? 0 : 1)}× faster`} in B`);
  if (r.diff.error) parts.push('error');
  return parts.join(', ');
}

export interface HistogramOverlay {
  lo: number;
  hi: number;
  /** Log-spaced bins (the values span more than 10×: a fast cluster beside a long tail). */
  log: boolean;
  /** Each bin's lower edge (and hi as the last bin's upper one). */
  edges: number[];
  /** Counts per bin, per side. */
  a: number[];
  b: number[];
}

/** Both sides' latencies in the same bins, from the lowest value to the higher of both p99s (the slowest 1% counted in the last bin); log-spaced past a 10× span. */
export function overlayHistogram(a: number[], b: number[], bins = 20): HistogramOverlay | null {
  const all = [...a, ...b].filter((x) => Number.isFinite(x) && x > 0).sort((x, y) => x - y);
  if (!all.length) return null;
  const lo = all[0];
  let hi = all[Math.min(all.length - 1, Math.floor(0.99 * (all.length - 1)))];
  if (hi <= lo) hi = lo * 1.01;
  const log = hi / lo > 10;
  const edges = Array.from({ length: bins }, (_, i) => (log ? lo * (hi / lo) ** (i / bins) : lo + ((hi - lo) * i) / bins));
  const index = (x: number) => Math.floor(log ? (Math.log(x / lo) / Math.log(hi / lo)) * bins : ((x - lo) / (hi - lo)) * bins);
  const count = (xs: number[]) => {
    const c = new Array<number>(bins).fill(0);
    for (const x of xs) if (Number.isFinite(x) && x > 0) c[Math.min(bins - 1, Math.max(0, index(x)))] += 1;
    return c;
  };
  return { lo, hi, log, edges, a: count(a), b: count(b) };
}
