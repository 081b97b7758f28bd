// What the graph view draws, worked out from a compile result without React: where each node runs
// (placement, several calls for a composite node), how long it takes (time), how far its value is
// from PyTorch's (error, from a compile with compare_ops), the colour scales of the three modes,
// and the rows of the per-op table. Pure functions, so that test/node can check them.
import type { CompareRow } from '../../../app/contract/build-compare.js';
import type { CompileResult, GraphNode, ModelGraph, OpComparison, OpComparisonRow, PlacedOp } from '../../../app/contract/results.js';

export type Where = 'library' | 'tvm' | 'torchscript';
/**
 * Fixed in both themes, distinct for colour-blind readers too (blue / green / vermilion), and dark
 * enough that the white labels on them keep a 4.5:1 contrast.
 */
export const WHERE_COLOR: Record<Where, string> = { library: '#2f69b3', tvm: '#23804a', torchscript: '#c24a1c' };
export const WHERE_LABEL: Record<Where, string> = { library: 'library kernel (oneDNN/MKL)', tvm: 'TVM kernel', torchscript: 'TorchScript fallback' };
export const WHERE_SHORT: Record<Where, string> = { library: 'library', tvm: 'TVM', torchscript: 'TorchScript' };

export type ColourMode = 'placement' | 'time' | 'error' | 'ab';

export const short = (op: string) => op.replace(/^aten::/, '').replace(/^prim::/, '');

/**
 * Families for matching by kind and order, from the engine's table (`placement.source_ops`: placement
 * kind -> the graph ops it can come from): kinds that share a source op are one family (conv2d,
 * depthwise_conv2d and grouped_conv2d are all aten::conv2d). A result without the table (a run
 * recorded by an older engine) has no families: its ops are matched by `node` only.
 */
function families(sourceOps: Record<string, string[]> | undefined): { ofKind: Map<string, string>; ofOp: Map<string, string> } {
  const ofKind = new Map<string, string>();
  const ofOp = new Map<string, string>();
  for (const [kind, ops] of Object.entries(sourceOps ?? {})) {
    const family = ops.map((o) => ofOp.get(o)).find((f) => f !== undefined) ?? kind;
    ofKind.set(kind, family);
    for (const o of ops) if (!ofOp.has(o)) ofOp.set(o, family);
  }
  return { ofKind, ofOp };
}

export interface PlaceMix {
  where: Where;
  calls: number;
  /** The calls' time together; null where one of them has none. */
  ms: number | null;
}

export interface NodePlacement {
  /** Where it runs; for a node whose calls run in several places, where most of its time (or most of its calls, untimed) runs. */
  where: Where;
  /** Its first call (a fused node: the call it runs in). */
  op?: PlacedOp;
  /** Every call the node makes itself (not fused ones): several for a composite node, such as a traced
   * nn.TransformerEncoderLayer that TorchScript keeps as one aten::_transformer_encoder_layer_fwd. */
  calls?: PlacedOp[];
  /** Only where its calls run in more than one place: each place with its calls and time, the majority first. */
  mix?: PlaceMix[];
  /** What the majority is of: time where every call has one, else the number of calls. */
  majorityBy?: 'time' | 'calls';
  /** The op runs inside another op's library call (its BatchNorm, residual add, activation). */
  fused?: boolean;
  /** The node whose call it runs in (fused ops). */
  root?: string;
  /** Matched by the engine's identity (node id), not by kind and order. */
  byId?: boolean;
}

/**
 * Matches a compile result to graph nodes. Heavy ops are matched by identity: the engine names the
 * graph node each placed op came from (`node`) and the nodes fused into its call (`fused`); every
 * op naming a node is that node's call, so a composite node gets all of its calls (never only the
 * first, the others left to be matched to other nodes by order). Ops it could not follow fall back
 * to order: the i-th remaining placement op of a family (conv, linear, matmul; from the engine's
 * `placement.source_ops`) is the i-th remaining graph node of that family. Other ops run in TVM
 * when the model compiled, except those in submodules or segments the coverage reports as left in
 * TorchScript.
 */
export function placeNodes(graph: ModelGraph, r: CompileResult | null): Map<string, NodePlacement> {
  const out = new Map<string, NodePlacement>();
  if (!r) return out;
  const ids = new Set(graph.nodes.map((n) => n.id));
  const fam = families(r.placement?.source_ops);
  const queues = new Map<string, PlacedOp[]>();
  const fusedInto: Array<[string, PlacedOp, string]> = [];
  for (const op of r.placement?.ops ?? []) {
    if (op.node && ids.has(op.node)) {
      const own = out.get(op.node);
      if (own) own.calls!.push(op);
      else out.set(op.node, { where: op.where, op, calls: [op], byId: true });
      for (const f of op.fused ?? []) if (ids.has(f)) fusedInto.push([f, op, op.node]);
      continue;
    }
    const f = fam.ofKind.get(op.kind);
    if (f) (queues.get(f) ?? queues.set(f, []).get(f)!).push(op);
  }
  // A node that makes a call of its own is that call's, even where another call names it as fused.
  for (const [f, op, root] of fusedInto) if (!out.has(f)) out.set(f, { where: op.where, op, fused: true, root, byId: true });
  for (const p of out.values()) if (p.calls && p.calls.length > 1) Object.assign(p, majority(p.calls));
  const leftModules = (r.coverage?.modules ?? []).filter((m) => !m.compiled).map((m) => m.name);
  const inFallback = (n: GraphNode) => !!n.scope && leftModules.some((m) => n.scope === m || n.scope!.startsWith(`${m}.`));
  const consumers = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) for (const i of n.inputs) (consumers.get(i) ?? consumers.set(i, []).get(i)!).push(n);
  for (const n of graph.nodes) {
    if (n.op === 'input' || n.op === 'output' || out.has(n.id)) continue;
    const f = fam.ofOp.get(n.op);
    const placed = f ? queues.get(f)?.shift() : undefined;
    if (placed) {
      out.set(n.id, { where: placed.where, op: placed, calls: [placed] });
      if (placed.where === 'library') markFused(n, placed, consumers, out);
    } else out.set(n.id, { where: inFallback(n) ? 'torchscript' : 'tvm' });
  }
  return out;
}

/** Where a composite node's calls run: by time where each has one, else by count; the majority first. */
function majority(calls: PlacedOp[]): Pick<NodePlacement, 'where' | 'mix' | 'majorityBy'> {
  const by = new Map<Where, PlaceMix>();
  for (const c of calls) {
    const m = by.get(c.where) ?? { where: c.where, calls: 0, ms: 0 };
    m.calls += 1;
    m.ms = m.ms === null || c.ms === null ? null : m.ms + c.ms;
    by.set(c.where, m);
  }
  const mix = [...by.values()];
  const timed = mix.every((m) => m.ms !== null);
  mix.sort((a, b) => (timed ? b.ms! - a.ms! : b.calls - a.calls));
  return { where: mix[0].where, majorityBy: timed ? 'time' : 'calls', ...(mix.length > 1 ? { mix } : {}) };
}

// The graph ops an epilogue entry stands for (a bias may be part of the conv/linear node itself).
const EPILOGUE_OPS: Record<string, string[]> = {
  bias: ['add', 'add_'], scale: ['batch_norm', 'mul', 'div', 'sub'], add: ['add', 'add_'],
  relu: ['relu', 'relu_'], relu6: ['relu6', 'hardtanh', 'hardtanh_', 'clamp'], gelu: ['gelu'],
  gelu_tanh: ['gelu'], silu: ['silu', 'silu_'], sigmoid: ['sigmoid'], tanh: ['tanh'], hardswish: ['hardswish', 'hardswish_'],
};

/** The ops fused into a library call (its bias, BatchNorm, residual add, activation) run there too. */
function markFused(node: GraphNode, placed: PlacedOp, consumers: Map<string, GraphNode[]>, out: Map<string, NodePlacement>): void {
  let cur = node;
  for (const name of placed.epilogue) {
    const next = consumers.get(cur.id) ?? [];
    const hit = next.length === 1 && (EPILOGUE_OPS[name] ?? []).includes(short(next[0].op)) ? next[0] : undefined;
    if (!hit) continue;
    out.set(hit.id, { where: 'library', op: placed, fused: true, root: node.id });
    cur = hit;
  }
}

/**
 * A node's own time: its calls' together, as the placement report timed them inside a model run;
 * where it has none (TVM's kernels, which the report times together), the per-op comparison's time
 * of the kernel calls that compute the node (each call alone). A fused node has none of its own: it
 * is in its root's call.
 */
export function nodeTime(p: NodePlacement | undefined, err?: NodeError): { ms: number | null; share: number | null; from?: 'comparison' } {
  if (!p || p.fused) return { ms: null, share: null };
  const calls = p.calls ?? [];
  const ms = calls.filter((c) => c.ms !== null);
  const share = calls.filter((c) => c.share !== null);
  if (ms.length) return { ms: ms.reduce((s, c) => s + c.ms!, 0), share: share.length ? share.reduce((s, c) => s + c.share!, 0) : null };
  const timed = err && !err.fused ? err.rows.filter((r) => r.ms !== undefined) : [];
  if (timed.length) return { ms: timed.reduce((s, r) => s + r.ms!, 0), share: null, from: 'comparison' };
  return { ms: null, share: null };
}

// ---- error (a compile with compare_ops) ----

/** A metric as a number: "inf" -> Infinity, "nan" -> NaN, null -> null. */
export function metricNum(x: number | string | null | undefined): number | null {
  if (x === null || x === undefined) return null;
  if (typeof x === 'number') return x;
  return x === 'inf' ? Infinity : x === '-inf' ? -Infinity : NaN;
}

/**
 * The row's max abs error as a fraction of what its tolerance allows (atol + rtol × the reference's
 * largest finite magnitude): 1 is the limit. Null where the row lacks what it takes (a dtype or
 * shape mismatch, a row of an engine that did not send the scale).
 */
export function errorRatio(row: OpComparisonRow): number | null {
  const abs = metricNum(row.max_abs);
  const scale = metricNum(row.scale);
  if (abs === null || Number.isNaN(abs) || row.atol === undefined || row.rtol === undefined || scale === null || !Number.isFinite(scale)) return null;
  const limit = row.atol + row.rtol * scale;
  return limit > 0 ? abs / limit : abs === 0 ? 0 : Infinity;
}

export interface NodeError {
  /** The comparison rows of the calls this node makes (own) or runs inside (fused). */
  rows: OpComparisonRow[];
  /** The worst of them: one past the tolerance, else the largest error against its tolerance. */
  worst: OpComparisonRow;
  ratio: number | null;
  ok: boolean;
  /** The first op past the tolerance (its rows include first_failing). */
  first: boolean;
  /** The node is not the value compared: it runs inside the call whose output is. */
  fused: boolean;
}

const worse = (a: OpComparisonRow, b: OpComparisonRow) => (a.ok !== b.ok ? !a.ok : (errorRatio(a) ?? -1) > (errorRatio(b) ?? -1));

/** Each node's comparison with PyTorch: the rows naming it as their node, else those it is fused into. */
export function nodeErrors(oc: OpComparison | undefined): Map<string, NodeError> {
  const out = new Map<string, NodeError>();
  if (!oc) return out;
  const own = new Map<string, OpComparisonRow[]>();
  const inside = new Map<string, OpComparisonRow[]>();
  for (const row of oc.ops) {
    if (row.node) (own.get(row.node) ?? own.set(row.node, []).get(row.node)!).push(row);
    for (const f of row.fused ?? []) (inside.get(f) ?? inside.set(f, []).get(f)!).push(row);
  }
  for (const [id, rows] of [...inside, ...own]) {
    const fused = !own.has(id);
    const worst = rows.reduce((w, r) => (worse(r, w) ? r : w));
    out.set(id, { rows, worst, ratio: errorRatio(worst), ok: rows.every((r) => r.ok), first: !fused && !!oc.first_failing && rows.some((r) => r.op === oc.first_failing), fused });
  }
  return out;
}

/** Green shades by the error's fraction of the tolerance (darker: nearer the limit); red past it. */
export const ERROR_STEPS: Array<{ upTo: number; color: string; label: string }> = [
  { upTo: 1e-3, color: '#d4efdb', label: '≤ 0.1%' },
  { upTo: 1e-2, color: '#9ed6ad', label: '≤ 1%' },
  { upTo: 1e-1, color: '#4fa76b', label: '≤ 10%' },
  { upTo: 1, color: '#1f6e3f', label: '≤ 100%' },
];
export const ERROR_OVER = '#c62f3b';

export function errorColor(e: NodeError): string {
  if (!e.ok) return ERROR_OVER;
  const r = e.ratio ?? 1;
  return (ERROR_STEPS.find((s) => r <= s.upTo) ?? ERROR_STEPS[ERROR_STEPS.length - 1]).color;
}

// ---- time: a heat scale ----

/** Pale to dark: lightness falls with time, so the scale reads without telling hues apart. */
const HEAT = ['#fdeaa8', '#f8c46b', '#ee9245', '#d8612e', '#b2381f', '#7a1c16'];

function hex(c: string): [number, number, number] {
  return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
}

function ramp(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (HEAT.length - 1);
  const i = Math.min(HEAT.length - 2, Math.floor(x));
  const a = hex(HEAT[i]);
  const b = hex(HEAT[i + 1]);
  const f = x - i;
  return `#${a.map((v, k) => Math.round(v + (b[k] - v) * f).toString(16).padStart(2, '0')).join('')}`;
}

export interface HeatScale {
  min: number;
  max: number;
  /** Logarithmic where the times span more than 10×, so that the small ones are told apart too. */
  log: boolean;
  color(ms: number): string;
  /** Legend steps, min to max. */
  steps: Array<{ ms: number; color: string }>;
}

export function heatScale(times: number[], steps = 5): HeatScale | null {
  const v = times.filter((t) => Number.isFinite(t) && t > 0);
  if (!v.length) return null;
  const min = Math.min(...v);
  const max = Math.max(...v);
  const log = max / min > 10;
  const t = (ms: number) => (max === min ? 1 : log ? (Math.log(ms) - Math.log(min)) / (Math.log(max) - Math.log(min)) : (ms - min) / (max - min));
  const color = (ms: number) => ramp(t(ms));
  const at = (k: number) => (k === steps - 1 ? max : k === 0 ? min : log ? Math.exp(Math.log(min) + ((Math.log(max) - Math.log(min)) * k) / (steps - 1)) : min + ((max - min) * k) / (steps - 1));
  const n = max === min ? 1 : steps;
  return { min, max, log, color, steps: Array.from({ length: n }, (_, k) => ({ ms: n === 1 ? max : at(k), color: color(n === 1 ? max : at(k)) })) };
}

/** The label colour that reads best on `fill` (a #rrggbb): white, or the dark text colour. */
export function inkFor(fill: string): 'light' | 'dark' {
  const lin = hex(fill).map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const L = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  const DARK_L = 0.0165; // #1c2330
  return 1.05 / (L + 0.05) >= (L + 0.05) / (DARK_L + 0.05) ? 'light' : 'dark';
}

// ---- the per-op table ----

export interface OpRow {
  id: string;
  /** The node's place in the graph (run order, as the model lists its ops). */
  order: number;
  op: string;
  /** The ops fused into its call (their short names). */
  fusedOps: string[];
  scope?: string;
  where?: Where;
  mix?: PlaceMix[];
  ms: number | null;
  share: number | null;
  err?: NodeError;
}

/** One row per op of the graph, except the ops fused into another op's call (they are named in its row). */
export function opRows(graph: ModelGraph, placement: Map<string, NodePlacement>, errors: Map<string, NodeError>): OpRow[] {
  const fusedOf = new Map<string, string[]>();
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  for (const [id, p] of placement) if (p.fused && p.root) (fusedOf.get(p.root) ?? fusedOf.set(p.root, []).get(p.root)!).push(short(byId.get(id)?.op ?? id));
  const rows: OpRow[] = [];
  graph.nodes.forEach((n, order) => {
    if (n.op === 'input' || n.op === 'output') return;
    const p = placement.get(n.id);
    if (p?.fused) return;
    const t = nodeTime(p, errors.get(n.id));
    rows.push({ id: n.id, order, op: short(n.op), fusedOps: fusedOf.get(n.id) ?? [], scope: n.scope, where: p?.where, mix: p?.mix, ms: t.ms, share: t.share, err: errors.get(n.id) });
  });
  return rows;
}

export type SortKey = 'order' | 'op' | 'scope' | 'where' | 'ms' | 'share' | 'error';

/** How a row sorts by the error column: past the tolerance above all, then by its fraction of the tolerance. */
export function errorRank(e: NodeError | undefined): number | null {
  if (!e) return null;
  if (!e.ok) return 1e12 + (e.ratio !== null && Number.isFinite(e.ratio) ? e.ratio : 1e11);
  return e.ratio;
}

/** The rows sorted by `key`; rows without a value (no time, not compared) go last in either direction. */
export function sortRows(rows: OpRow[], key: SortKey, dir: 'asc' | 'desc'): OpRow[] {
  const value = (r: OpRow): number | string | null => {
    switch (key) {
      case 'order': return r.order;
      case 'op': return r.op;
      case 'scope': return r.scope ?? null;
      case 'where': return r.where ? WHERE_SHORT[r.where] : null;
      case 'ms': return r.ms;
      case 'share': return r.share;
      case 'error': return errorRank(r.err);
    }
  };
  const sign = dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === null || vb === null) return va === vb ? a.order - b.order : va === null ? 1 : -1;
    const c = typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va).localeCompare(String(vb), undefined, { numeric: true });
    return c !== 0 ? sign * c : a.order - b.order;
  });
}

/** A small number as it reads best: 0, 3.1e-7, 0.0123, 12.3. */
export function fmtNum(x: number | string | null | undefined): string {
  const v = metricNum(x);
  if (v === null) return '–';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a < 1e-3 || a >= 1e5 ? v.toExponential(2) : Number(v.toPrecision(3)).toString();
}

/** An error's fraction of the tolerance as a percentage: "0.4%", "<0.01%", "310%". */
export function fmtRatio(r: number | null): string {
  if (r === null) return '–';
  if (!Number.isFinite(r)) return '∞';
  const p = r * 100;
  return p === 0 ? '0%' : p < 0.01 ? '<0.01%' : p < 10 ? `${Number(p.toPrecision(2))}%` : `${Math.round(p)}%`;
}

// ---- A/B: two builds of the model, op by op (app/contract/build-compare.ts) ----

/** What an op's row says of B against A, one word: its fill in the A/B mode. */
export type AbVerdict = 'error' | 'slower' | 'faster' | 'same' | 'untimed' | 'missing';
/** Red and green for slower and faster (with the words in the legend and details, not the hue alone), amber for an error that changed. */
export const AB_COLOR: Record<AbVerdict, string> = { error: '#a35200', slower: '#c62f3b', faster: '#23804a', same: '#5f6b7a', untimed: '#9aa3ae', missing: '#7b4fc9' };
export const AB_LABEL: Record<AbVerdict, string> = {
  error: 'error changed',
  slower: 'slower in B',
  faster: 'faster in B',
  same: 'same time',
  untimed: 'not timed in both',
  missing: 'in one build only',
};
/** The legend's order. */
export const AB_VERDICTS: AbVerdict[] = ['slower', 'faster', 'error', 'same', 'untimed', 'missing'];

export function abVerdict(r: CompareRow): AbVerdict {
  if (r.diff.missing) return 'missing';
  if (r.diff.error) return 'error';
  if (r.diff.time) return (r.time_ratio ?? 1) > 1 ? 'slower' : 'faster';
  return r.a?.ms != null && r.b?.ms != null ? 'same' : 'untimed';
}

/** Each graph node's row: the first row (in run order) that names the node as its own or as fused into its call. */
export function abNodes(rows: CompareRow[]): Map<string, CompareRow> {
  const out = new Map<string, CompareRow>();
  for (const r of rows) for (const n of r.nodes) if (!out.has(n)) out.set(n, r);
  return out;
}
