// The model's graph, laid out by dagre (as Netron lays out its graphs), drawn as SVG with zoom,
// pan and search. After a compile, each op is coloured by one of three things (Colour by): where it
// runs (library kernel, TVM kernel, or TorchScript fallback), how long it takes (a heat scale in
// ms), or how far its output is from PyTorch's (a compile with each op compared, run on demand); with
// two builds picked on the Compare page, by what B does against A (A/B).
// A sortable per-op table sits beside the graph (below it in a narrow window).
import dagre from '@dagrejs/dagre';
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type PointerEvent as RPointerEvent, type ReactNode, type WheelEvent as RWheelEvent } from 'react';
import { ALGORITHM_LABELS, CANDIDATE_LABELS, type GraphNode, type ModelGraph, type OpComparisonRow } from '../../../app/contract/results.js';
import { describeBuild } from '../../../app/contract/builds.js';
import { fmtPlacement, fmtSideError, type CompareRow } from '../../../app/contract/build-compare.js';
import { checkRows, compareOps, go, graphShapesStatus, refreshGraphShapes } from '../actions.js';
import { Empty, JobStatus, NeedsModel, fmtMs } from '../components.js';
import { set, useStore } from '../store.js';
import { graphBuild } from '../builds.js';
import {
  AB_COLOR, AB_LABEL, AB_VERDICTS, abNodes, abVerdict, ERROR_OVER, ERROR_STEPS, WHERE_COLOR, WHERE_LABEL, WHERE_SHORT, errorColor, errorRatio, fmtNum, fmtRatio, heatScale, inkFor, nodeErrors, nodeTime, opRows, placeNodes, short,
  type ColourMode, type NodePlacement, type Where,
} from './graph-data.js';
import { OpTable } from './OpTable.js';

export { WHERE_COLOR, WHERE_LABEL, placeNodes, type NodePlacement, type Where } from './graph-data.js';

/** "1×64×56×56 float32"; symbolic dims by name ("batch×512"), unknown ones as "?"; a scalar is "scalar". */
export const shapeText = (o?: { shape?: Array<number | string | null>; dtype?: string }) =>
  o?.shape ? `${o.shape.length ? o.shape.map((d) => d ?? '?').join('×') : 'scalar'}${o.dtype ? ` ${o.dtype}` : ''}` : o?.dtype ?? '';

interface Laid {
  id: string;
  x: number;
  y: number;
  w: number;
  h: number;
  node: GraphNode;
  label: string;
  sub: string;
  /** label and sub as drawn: whole unless longer than the widest node. */
  shownLabel: string;
  shownSub: string;
}

const NODE_H = 42;
/** A node is as wide as its op name and shape need, up to this; past it the text is cut with "…" (the node's tooltip and the details panel show it whole). */
const NODE_W_MAX = 460;
const NODE_PAD = 24;
const LABEL_FONT = '600 12px system-ui, sans-serif';
const SUB_FONT = '10.5px ui-monospace, monospace';

let measureCtx: CanvasRenderingContext2D | null | undefined;
/** The drawn width of `text` in `font` (a canvas measures it as the SVG draws it); an estimate where no canvas is available. */
function textWidth(text: string, font: string, perChar: number): number {
  if (measureCtx === undefined) {
    try {
      measureCtx = typeof document === 'undefined' ? null : document.createElement('canvas').getContext('2d');
    } catch {
      measureCtx = null;
    }
  }
  if (!measureCtx) return text.length * perChar;
  measureCtx.font = font;
  // A little slack: the SVG may resolve the font family slightly wider than the canvas did.
  return measureCtx.measureText(text).width * 1.06 + 2;
}

/** `text` cut with "…" to fit `max` pixels in `font` (unchanged when it fits). */
function fitText(text: string, font: string, perChar: number, max: number): string {
  if (textWidth(text, font, perChar) <= max) return text;
  let lo = 1;
  let hi = text.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (textWidth(`${text.slice(0, mid)}…`, font, perChar) <= max) lo = mid;
    else hi = mid - 1;
  }
  return `${text.slice(0, lo)}…`;
}

export function layoutGraph(graph: ModelGraph, inputShapes: Record<string, string>): { nodes: Laid[]; edges: Array<{ from: string; to: string; points: Array<{ x: number; y: number }> }>; width: number; height: number } {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 18, ranksep: 26, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  const labels = new Map<string, { label: string; sub: string; shownLabel: string; shownSub: string }>();
  graph.nodes.forEach((n, i) => {
    const label = n.op === 'input' ? `input ${n.name ?? i}` : n.op === 'output' ? 'output' : short(n.op);
    const own = shapeText(n.outputs?.[0]);
    const sub = n.op === 'input' ? (graph.shapes_for ? own : '') || inputShapes[n.id] || own : own || (n.scope ?? '');
    // Wide enough for both lines (12px semibold op name, 10.5px monospace shape), measured, so
    // that nothing is cut short of the widest node.
    const room = NODE_W_MAX - NODE_PAD;
    const shownLabel = fitText(label, LABEL_FONT, 7.6, room);
    const shownSub = fitText(sub, SUB_FONT, 6.6, room);
    labels.set(n.id, { label, sub, shownLabel, shownSub });
    const w = Math.max(96, Math.min(NODE_W_MAX, Math.max(textWidth(shownLabel, LABEL_FONT, 7.6), textWidth(shownSub, SUB_FONT, 6.6)) + NODE_PAD));
    g.setNode(n.id, { width: w, height: NODE_H });
  });
  for (const n of graph.nodes) for (const src of n.inputs) if (g.hasNode(src)) g.setEdge(src, n.id);
  dagre.layout(g);
  const nodes: Laid[] = graph.nodes.map((n) => {
    const p = g.node(n.id) as { x: number; y: number; width: number; height: number };
    return { id: n.id, x: p.x, y: p.y, w: p.width, h: p.height, node: n, ...labels.get(n.id)! };
  });
  const edges = g.edges().map((e) => ({ from: e.v, to: e.w, points: (g.edge(e) as { points: Array<{ x: number; y: number }> }).points }));
  const gg = g.graph() as { width?: number; height?: number };
  return { nodes, edges, width: gg.width ?? 100, height: gg.height ?? 100 };
}

const MODE_KEY = 'torchtvm.graphColour';
const MODES: Array<{ id: ColourMode; label: string; title: string }> = [
  { id: 'placement', label: 'placement', title: 'Where each op runs: library kernel, TVM kernel or TorchScript' },
  { id: 'time', label: 'time', title: "Each op's time inside a model run, on a heat scale" },
  { id: 'error', label: 'error', title: "Each op's error against PyTorch, as a share of the tolerance" },
  { id: 'ab', label: 'A/B', title: 'What build B does against build A, op by op (the two builds picked on the Compare page)' },
];
function savedMode(): ColourMode {
  try {
    const m = localStorage.getItem(MODE_KEY);
    return m === 'time' || m === 'error' ? m : 'placement';
  } catch {
    return 'placement';
  }
}

/** How a node is drawn in the current mode: its fill, a tint (it runs inside another op's call), the label colour, or greyed (nothing to show). */
interface Paint {
  fill?: string;
  tint?: boolean;
  ink: 'light' | 'dark' | 'theme';
  muted?: boolean;
}
const tintOf = (fill: string) => `color-mix(in srgb, ${fill} 24%, var(--panel))`;

/** |build − PyTorch| in 16 bins from 0 to the largest difference; bar heights on a log scale, so that a few large differences show beside many tiny ones. */
function DiffHistogram({ row }: { row: OpComparisonRow }) {
  const h = row.diff_histogram;
  if (!h || !h.counts.length) return null;
  const W = 300;
  const H = 60;
  const n = h.counts.length;
  const top = Math.max(1, ...h.counts);
  const total = h.counts.reduce((a, b) => a + b, 0);
  const bar = (c: number) => (c ? 3 + ((H - 3) * Math.log1p(c)) / Math.log1p(top) : 0);
  const scale = typeof row.scale === 'number' ? row.scale : null;
  const limit = row.atol !== undefined && row.rtol !== undefined && scale !== null ? row.atol + row.rtol * scale : null;
  const limitX = limit !== null && h.max > 0 && limit < h.max ? (limit / h.max) * W : null;
  return (
    <figure className="diff-hist" data-testid="diff-histogram">
      <svg viewBox={`0 0 ${W} ${H + 14}`} width="100%" role="img" aria-label={`Histogram of the absolute difference, ${n} bins from 0 to ${fmtNum(h.max)}`}>
        <line x1={0} x2={W} y1={H + 0.5} y2={H + 0.5} className="axis" />
        {h.counts.map((c, i) => (
          <rect key={i} x={(i * W) / n + 0.5} width={W / n - 1.5} y={H - bar(c)} height={bar(c)} className="bin">
            <title>{`${fmtNum((i * h.max) / n)} – ${fmtNum(((i + 1) * h.max) / n)}: ${c} value${c === 1 ? '' : 's'}`}</title>
          </rect>
        ))}
        {limitX !== null && (
          <g>
            <line x1={limitX} x2={limitX} y1={0} y2={H} className="limit" />
            <text x={limitX - 3} y={9} textAnchor="end" className="limit-label">tolerance</text>
          </g>
        )}
        <text x={0} y={H + 12} className="tick">0</text>
        <text x={W} y={H + 12} textAnchor="end" className="tick">{fmtNum(h.max)}</text>
      </svg>
      <figcaption className="hint">|build − PyTorch| over {total.toLocaleString('en-US')} values (both finite); heights on a log scale.</figcaption>
    </figure>
  );
}

/** Both tensors' statistics, side by side. */
function StatsTable({ row }: { row: OpComparisonRow }) {
  const st = row.stats;
  if (!st) return null;
  const keys = ['min', 'max', 'mean', 'std'] as const;
  return (
    <table className="tensor-stats" data-testid="tensor-stats">
      <thead>
        <tr><th /><th>PyTorch</th><th>build</th></tr>
      </thead>
      <tbody>
        {keys.map((k) => (
          <tr key={k}><th>{k}</th><td>{fmtNum(st.reference[k])}</td><td>{fmtNum(st.build[k])}</td></tr>
        ))}
        {(st.reference.nonfinite > 0 || st.build.nonfinite > 0) && <tr><th>NaN/inf</th><td>{st.reference.nonfinite}</td><td>{st.build.nonfinite}</td></tr>}
      </tbody>
    </table>
  );
}

/** One comparison row in a line: its errors, its fraction of the tolerance, within or not. */
function errorLine(row: OpComparisonRow): ReactNode {
  const ratio = errorRatio(row);
  return (
    <>
      <span className={row.ok ? 'ok' : 'bad'}>{row.ok ? '✓ within tolerance' : '✗ past the tolerance'}</span>
      {' · '}max abs {fmtNum(row.max_abs)} · max rel {fmtNum(row.max_rel)}
      {ratio !== null ? ` · ${fmtRatio(ratio)} of the tolerance` : ''}
      {row.nan_inf_mismatches ? ` · ${row.nan_inf_mismatches} NaN/inf mismatch${row.nan_inf_mismatches === 1 ? '' : 'es'}` : ''}
      {!row.ok && row.reason ? <div className="hint">{row.reason}</div> : null}
    </>
  );
}

export function GraphView() {
  const state = useStore();
  const { inspect, inputs } = state;
  // The build selected on the Export page (the newest for these inputs by default): see builds.ts.
  const result = graphBuild(state, checkRows(inputs).specs);
  const graph = inspect?.graph;
  // Input nodes show the shapes the user gave (TorchScript does not keep them).
  const inputShapes = useMemo(() => {
    const m: Record<string, string> = {};
    graph?.nodes.filter((n) => n.op === 'input').forEach((n, i) => {
      const r = inputs[i];
      if (r?.dims) m[n.id] = `${r.dims.replace(/\s*,\s*/g, '×')} ${r.dtype}`;
    });
    return m;
  }, [graph, inputs]);
  const laid = useMemo(() => (graph ? layoutGraph(graph, inputShapes) : null), [graph, inputShapes]);
  // Per-op shapes follow the input specs: ask the engine again (debounced) when they change.
  const [, redraw] = useState(0);
  useEffect(() => {
    if (!graph) return;
    let live = true;
    const t = setTimeout(() => {
      const done = refreshGraphShapes();
      redraw((x) => x + 1); // "working out the shapes…"
      void done.then(() => live && redraw((x) => x + 1)); // or why they could not be
    }, 400);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [graph, inputs]);
  const shapes = graphShapesStatus();
  const placement = useMemo(() => (graph ? placeNodes(graph, result) : new Map<string, NodePlacement>()), [graph, result]);
  const comparison = result?.op_comparison;
  const errors = useMemo(() => nodeErrors(comparison), [comparison]);
  const rows = useMemo(() => (graph ? opRows(graph, placement, errors) : []), [graph, placement, errors]);
  const times = useMemo(() => {
    const m = new Map<string, number>();
    placement.forEach((p, id) => {
      const t = nodeTime(p, errors.get(id)).ms;
      if (t !== null) m.set(id, t);
    });
    return m;
  }, [placement, errors]);
  const heat = useMemo(() => heatScale([...times.values()]), [times]);
  // The Compare page's two builds, when they are of the model on screen.
  const graphCompare = useStore((s) => (s.graphCompare && s.graphCompare.a.model === s.modelPath ? s.graphCompare : undefined));
  const ab = useMemo(() => (graphCompare ? abNodes(graphCompare.rows) : null), [graphCompare]);
  const [savedModeState, setModeState] = useState<ColourMode>(() => (graphCompare ? 'ab' : savedMode()));
  const mode: ColourMode = savedModeState === 'ab' && !ab ? 'placement' : savedModeState;
  const setMode = (m: ColourMode) => {
    setModeState(m);
    if (m === 'ab') return; // A/B lasts while its comparison does: not kept for the next model
    try {
      localStorage.setItem(MODE_KEY, m);
    } catch {
      /* not kept */
    }
  };
  const [query, setQuery] = useState('');
  const [view, setView] = useState({ x: 0, y: 0, k: 1 });
  const [selected, setSelected] = useState<string | null>(null);
  // The comparison row whose statistics the details show (a composite node has several).
  const [statsRow, setStatsRow] = useState<string | null>(null);
  // The compile job that was in the slot when "Compare each op" was pressed: a new one is the comparison.
  const [askedAfter, setAskedAfter] = useState<string | undefined | null>(null);
  const box = useRef<HTMLDivElement>(null);
  const drag = useRef<{ x: number; y: number; vx: number; vy: number } | null>(null);
  const matches = useMemo(() => {
    const q = query.trim().toLowerCase();
    if (!q || !laid) return new Set<string>();
    // Ops, submodules and shapes ("56×56", or "56x56" as typed on a keyboard).
    const qs = q.replace(/x/g, '×');
    return new Set(laid.nodes.filter((n) => n.label.toLowerCase().includes(q) || n.node.op.toLowerCase().includes(q) || (n.node.scope ?? '').toLowerCase().includes(q) || (/\d/.test(q) && n.sub.toLowerCase().includes(qs))).map((n) => n.id));
  }, [query, laid]);

  const fitWidth = () => {
    if (!laid || !box.current) return;
    const k = Math.min(1, (box.current.clientWidth - 20) / laid.width);
    setView({ x: (box.current.clientWidth - laid.width * k) / 2, y: 10, k });
  };
  const fitAll = () => {
    if (!laid || !box.current) return;
    const k = Math.min(1, (box.current.clientWidth - 20) / laid.width, (box.current.clientHeight - 20) / laid.height);
    setView({ x: (box.current.clientWidth - laid.width * k) / 2, y: (box.current.clientHeight - laid.height * k) / 2, k });
  };
  // Fit the width when a graph first shows (wide graphs would otherwise start half off screen), but
  // not when the same graph comes back with its shapes: the user's zoom and pan stay.
  const fitted = useRef('');
  useEffect(() => {
    const key = laid ? `${inspect?.path}:${laid.nodes.length}` : '';
    if (!laid || key === fitted.current) return;
    fitted.current = key;
    fitWidth();
  }, [laid]);

  // The details panel floats over the graph's top right: a selected op must not end up under it
  // (at 1024 px it takes almost half the box), nor out of view after the window is resized. After
  // each selection and resize, the view pans just enough to show the op in the part of the box the
  // panel leaves free; the user's own panning afterwards is left alone.
  const panel = useRef<HTMLElement>(null);
  const [boxSize, setBoxSize] = useState('');
  const hasGraph = !!laid;
  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => setBoxSize(`${el.clientWidth}x${el.clientHeight}`));
    ro.observe(el);
    return () => ro.disconnect();
  }, [hasGraph]);
  useLayoutEffect(() => {
    const el = box.current;
    const nodeEl = selected && el ? el.querySelector(`[data-id="${CSS.escape(selected)}"]`) : null;
    if (!el || !nodeEl) return;
    const b = el.getBoundingClientRect();
    const r = nodeEl.getBoundingClientRect();
    const p = panel.current?.getBoundingClientRect();
    const M = 12;
    const shift = (lo: number, hi: number, a: number, z: number) => (z - a > hi - lo ? (lo + hi) / 2 - (a + z) / 2 : a < lo ? lo - a : z > hi ? hi - z : 0);
    const dy = shift(b.top + M, b.bottom - M, r.top, r.bottom);
    // Beside the panel only where the op, once moved, lies at the panel's height.
    const besidePanel = p && r.bottom + dy > p.top - M && r.top + dy < p.bottom + M;
    const dx = shift(b.left + M, besidePanel ? p.left - 2 * M : b.right - M, r.left, r.right);
    if (Math.abs(dx) >= 1 || Math.abs(dy) >= 1) setView((v) => ({ ...v, x: v.x + dx, y: v.y + dy }));
  }, [selected, boxSize, mode]);

  const select = (id: string | null) => {
    setSelected(id);
    setStatsRow(null);
  };
  const focus = (id: string) => {
    const n = laid?.nodes.find((x) => x.id === id);
    if (!n || !box.current) return;
    const k = Math.max(view.k, 0.8);
    // Centred in the part of the box that the details panel (top right) leaves free.
    const w = box.current.clientWidth;
    const free = w - (Math.min(340, 0.45 * w) + 20);
    setView({ k, x: free / 2 - n.x * k, y: box.current.clientHeight / 2 - n.y * k });
    select(id);
  };
  /** A row of the table: select the op, centre it, and bring the graph into the window where the table sits below it. */
  const focusFromTable = (id: string) => {
    focus(id);
    const r = box.current?.getBoundingClientRect();
    if (r && (r.top < 0 || r.bottom > window.innerHeight)) box.current!.scrollIntoView({ block: 'nearest' });
  };
  const onWheel = (e: RWheelEvent) => {
    const rect = box.current!.getBoundingClientRect();
    const px = e.clientX - rect.left;
    const py = e.clientY - rect.top;
    const k = Math.min(4, Math.max(0.05, view.k * Math.exp(-e.deltaY * 0.0015)));
    setView({ k, x: px - ((px - view.x) * k) / view.k, y: py - ((py - view.y) * k) / view.k });
  };
  const onDown = (e: RPointerEvent) => {
    drag.current = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
    (e.target as Element).setPointerCapture?.(e.pointerId);
  };
  const onMove = (e: RPointerEvent) => {
    const d = drag.current;
    if (d) setView((v) => ({ ...v, x: d.vx + e.clientX - d.x, y: d.vy + e.clientY - d.y }));
  };
  const byId = useMemo(() => new Map((laid?.nodes ?? []).map((n) => [n.id, n])), [laid]);
  const sel = selected ? byId.get(selected) : undefined;
  const selPlace = selected ? placement.get(selected) : undefined;
  const counts = { library: 0, tvm: 0, torchscript: 0 } as Record<Where, number>;
  const fusedCounts = { library: 0, tvm: 0, torchscript: 0 } as Record<Where, number>;
  placement.forEach((p) => {
    counts[p.where] += 1;
    if (p.fused) fusedCounts[p.where] += 1;
  });
  // Time bars are scaled to the heaviest op, so that small shares still read; the legend says so.
  let maxShare = 0;
  placement.forEach((p) => {
    const s = nodeTime(p).share;
    if (s !== null) maxShare = Math.max(maxShare, s);
  });
  const rootOf = (p: NodePlacement | undefined) => (p?.fused && p.root ? byId.get(p.root) : undefined);
  const selRoot = rootOf(selPlace);
  const current = checkRows(inputs).specs;
  const shapesStale = !!graph?.shapes_for && !!current && JSON.stringify(graph.shapes_for.map((x) => x.dims)) !== JSON.stringify(current.map((x) => x.dims));
  const anyFused = [...placement.values()].some((p) => p.fused);
  const anyMixed = [...placement.values()].some((p) => p.mix);
  // Each group's share of a model run (library calls timed inside it; TVM's kernels are the rest).
  const pl = result?.placement;
  const groupShare: Partial<Record<Where, number>> = {};
  if (pl?.library_ms != null && pl.tvm_ms != null && pl.library_ms + pl.tvm_ms > 0) {
    groupShare.library = pl.library_ms / (pl.library_ms + pl.tvm_ms);
    groupShare.tvm = pl.tvm_ms / (pl.library_ms + pl.tvm_ms);
  }
  const opNodes = laid ? laid.nodes.filter((n) => n.node.op !== 'input' && n.node.op !== 'output') : [];
  const untimed = opNodes.filter((n) => !placement.get(n.id)?.fused && !times.has(n.id)).length;
  const timedByComparison = opNodes.filter((n) => nodeTime(placement.get(n.id), errors.get(n.id)).from === 'comparison').length;
  const notCompared = opNodes.filter((n) => !errors.has(n.id)).length;
  const firstRow = comparison?.first_failing ? comparison.ops.find((o) => o.op === comparison.first_failing) : undefined;
  const firstNode = firstRow?.node ? byId.get(firstRow.node) : undefined;
  const failing = comparison?.ops.filter((o) => !o.ok).length ?? 0;

  // The comparison job: the compile in the slot when its request asked for compare_ops, or one
  // started from this page's button.
  const compileRun = state.project?.runs.find((x) => x.job === state.compileJob);
  const compareJob = (compileRun?.request.kind === 'compile' && compileRun.request.compare_ops) || (askedAfter !== null && state.compileJob && state.compileJob !== askedAfter) ? state.compileJob : undefined;
  const compareState = compareJob ? state.jobs[compareJob]?.state : undefined;
  const comparing = askedAfter !== null && !compareJob ? true : compareState === 'running' || compareState === 'queued';
  const compileBusy = !!state.compileJob && ['running', 'queued'].includes(state.jobs[state.compileJob]?.state ?? '');
  // The latest compile has a comparison, but the graph shows another build (one chosen on the Export page).
  const otherCompared = !comparison && state.compile?.op_comparison && state.compile.build && state.compile !== result ? state.compile : null;

  const paintOf = (id: string, op: string): Paint => {
    const p = placement.get(id);
    if (op === 'input' || op === 'output' || !result) return { ink: 'theme' };
    if (mode === 'placement') return p ? { fill: WHERE_COLOR[p.where], tint: p.fused, ink: p.fused ? 'theme' : 'light' } : { ink: 'theme' };
    if (mode === 'time') {
      const rootMs = p?.fused && p.root ? times.get(p.root) : undefined;
      if (rootMs !== undefined && heat) return { fill: heat.color(rootMs), tint: true, ink: 'theme' };
      const ms = times.get(id);
      if (ms === undefined || !heat) return { ink: 'theme', muted: true };
      const fill = heat.color(ms);
      return { fill, ink: inkFor(fill) };
    }
    if (mode === 'ab') {
      const row = ab?.get(id);
      if (!row) return { ink: 'theme', muted: true };
      const fill = AB_COLOR[abVerdict(row)];
      return p?.fused ? { fill, tint: true, ink: 'theme' } : { fill, ink: inkFor(fill) };
    }
    const e = errors.get(id);
    if (!e) return { ink: 'theme', muted: !!comparison };
    const fill = errorColor(e);
    return e.fused ? { fill, tint: true, ink: 'theme' } : { fill, ink: inkFor(fill) };
  };

  const selErr = selected ? errors.get(selected) : undefined;
  const shownRow = selErr ? (selErr.rows.find((r) => r.op === statsRow) ?? selErr.worst) : undefined;
  const selTime = nodeTime(selPlace, selErr);
  // A composite node's kernels that the placement report does not list (TVM's own, such as its layer
  // norms), where the per-op comparison found them.
  const selOtherKernels = selPlace?.calls && selErr && !selErr.fused ? selErr.rows.filter((r) => !selPlace.calls!.some((c) => c.name === r.op)) : [];

  const modeControl = (
    <span className="segmented" role="radiogroup" aria-label="Colour by" data-testid="colour-by">
      <span className="segmented-label">Colour by</span>
      {MODES.filter((m) => m.id !== 'ab' || ab).map((m) => (
        <button key={m.id} role="radio" aria-checked={mode === m.id} className={mode === m.id ? 'on' : undefined} data-mode={m.id} title={m.title} onClick={() => setMode(m.id)}>
          {m.label}
        </button>
      ))}
    </span>
  );

  const buildLine = result?.build && (
    <span className="legend-item" data-testid="graph-build">
      Build <b>{describeBuild(result.build)}</b> <button className="link" onClick={() => go('export')}>choose another</button>
    </span>
  );

  let legend: ReactNode;
  if (mode === 'placement') {
    legend = result ? (
      <>
        {(Object.keys(WHERE_COLOR) as Where[]).map((w) => (
          <span key={w} className="legend-item"><span className="swatch bar" style={{ background: WHERE_COLOR[w] }} />{WHERE_LABEL[w]} ({counts[w] - fusedCounts[w]} op{counts[w] - fusedCounts[w] === 1 ? '' : 's'}{fusedCounts[w] ? ` + ${fusedCounts[w]} fused` : ''}{groupShare[w] != null ? `; ${(groupShare[w]! * 100).toFixed(0)}% of the time` : ''})</span>
        ))}
        {anyFused && <span className="legend-item"><span className="swatch bar" style={{ background: tintOf(WHERE_COLOR.library), outline: `1.5px solid ${WHERE_COLOR.library}` }} />tinted: fused into the call of the op before it</span>}
        {anyMixed && <span className="legend-item"><span className="swatch bar mixed-swatch" />striped top: its calls run in several places (coloured by where most of its time runs)</span>}
        {maxShare > 0 && <span className="hint">White bar under an op: its share of the model's time (full width = {(maxShare * 100).toFixed(1)}%, the heaviest op).</span>}
      </>
    ) : (
      <span className="hint">Compile the model to colour each op by where it runs (library kernel, TVM kernel, or TorchScript fallback).</span>
    );
  } else if (mode === 'time') {
    legend = !result ? (
      <span className="hint">Compile the model to colour each op by its time.</span>
    ) : heat ? (
      <>
        <span className="legend-item heat-legend" data-testid="time-legend" data-min-ms={heat.min} data-max-ms={heat.max} data-scale={heat.log ? 'log' : 'linear'}>
          <span className="legend-title">Time per op{heat.log ? ' (log scale)' : ''}:</span>
          {heat.steps.map((st, i) => (
            <span key={i} className="heat-step"><span className="swatch bar" style={{ background: st.color }} />{fmtMs(st.ms)}</span>
          ))}
        </span>
        {timedByComparison > 0 && (
          <span className="legend-item" data-testid="time-from-comparison" data-count={timedByComparison}>
            {timedByComparison} TVM op{timedByComparison === 1 ? '' : 's'} timed by the per-op comparison (each kernel call alone)
          </span>
        )}
        {untimed > 0 && (
          <span className="legend-item" data-testid="time-untimed">
            <span className="swatch bar untimed-swatch" />
            grey: no time of its own ({untimed} op{untimed === 1 ? '' : 's'}){pl?.tvm_ms != null ? `: TVM's kernels are timed together, ${fmtMs(pl.tvm_ms)} in all` : ''}
          </span>
        )}
        {anyFused && <span className="legend-item"><span className="swatch bar" style={{ background: tintOf(heat.color(heat.max)), outline: `1.5px solid ${heat.color(heat.max)}` }} />tinted: counted in the call it is fused into</span>}
      </>
    ) : (
      <span className="hint">This build has no per-op times: its library calls were not timed (nothing placed in a library kernel).</span>
    );
  } else if (mode === 'ab' && graphCompare) {
    const verdicts = graphCompare.rows.map(abVerdict);
    const moved = graphCompare.rows.filter((r) => r.diff.placement).length;
    legend = (
      <>
        <span className="legend-item" data-testid="ab-builds">
          <b>A</b> {graphCompare.a.label} · <b>B</b> {graphCompare.b.label} <button className="link" onClick={() => go('compare')}>Compare page</button>{' '}
          <button className="link" onClick={() => { set({ graphCompare: undefined }); setMode('placement'); }}>stop comparing</button>
        </span>
        <span className="legend-item heat-legend" data-testid="ab-legend" data-differing={graphCompare.counts.differing} data-rows={graphCompare.rows.length}>
          <span className="legend-title">B against A:</span>
          {AB_VERDICTS.filter((v) => verdicts.includes(v)).map((v) => (
            <span key={v} className="heat-step" data-verdict={v}><span className="swatch bar" style={{ background: AB_COLOR[v] }} />{AB_LABEL[v]} ({verdicts.filter((x) => x === v).length})</span>
          ))}
        </span>
        {moved > 0 && <span className="legend-item" data-testid="ab-moved"><span className="swatch bar moved-swatch" />dashed outline: runs elsewhere in B ({moved})</span>}
        <span className="hint">Times: each op's, recorded with its build; they differ past {Math.round(graphCompare.thresholds.time_rel * 100)}%.</span>
      </>
    );
  } else {
    legend = comparison?.ops.length ? (
      <>
        <span className="legend-item heat-legend" data-testid="error-legend" data-failing={failing} data-compared={comparison.ops.length}>
          <span className="legend-title">Max error, share of the tolerance:</span>
          {ERROR_STEPS.map((st) => (
            <span key={st.label} className="heat-step"><span className="swatch bar" style={{ background: st.color }} />{st.label}</span>
          ))}
          <span className="heat-step"><span className="swatch bar" style={{ background: ERROR_OVER }} />past it ({failing})</span>
        </span>
        {firstRow ? (
          <span className="legend-item" data-testid="first-failing">
            <span className="swatch bar first-swatch" />
            first past the tolerance:{' '}
            {firstNode ? <button className="link" onClick={() => focus(firstNode.id)}>{short(firstNode.node.op)}{firstRow.scope ? ` (${firstRow.scope})` : ''}</button> : <code>{firstRow.op}</code>}
            <span className="hint"> — the ops after it see its error too</span>
          </span>
        ) : (
          <span className="legend-item ok" data-testid="first-failing">Every op within the tolerance ({comparison.ops.length} calls compared).</span>
        )}
        {notCompared > 0 && <span className="legend-item"><span className="swatch bar untimed-swatch" />grey: not compared ({notCompared}: inside a kernel, or no value of its own)</span>}
      </>
    ) : comparison ? (
      <span className="warn" data-testid="error-legend">{comparison.note}</span>
    ) : null;
  }

  const compareOffer = mode === 'error' && !comparison?.ops.length && (
    <div className="compare-offer" data-testid="compare-offer">
      <p>
        {result ? 'This build has no per-op comparison with PyTorch.' : 'No build yet.'} Comparing each op runs a compile of the model for the current inputs and target, then PyTorch and the
        build node by node, keeping every op's output (longer than a plain compile). It runs on demand only, never in the default build.
      </p>
      <div className="row">
        <button className="primary" data-testid="compare-ops" disabled={comparing || compileBusy || !current} onClick={() => {
          setAskedAfter(state.compileJob);
          void compareOps();
        }}>
          Compare each op with PyTorch
        </button>
        {!current && <span className="hint">Describe the inputs on the <button className="link" onClick={() => go('inputs')}>Inputs</button> page first.</span>}
        {compileBusy && !comparing && <span className="hint">A compile is running: compare when it has finished.</span>}
        {otherCompared && (
          <span className="hint">
            The latest compile ({describeBuild(otherCompared.build!)}) has one: <button className="link" onClick={() => set({ buildChoice: 'untuned' })}>show it</button>
          </span>
        )}
      </div>
      {compareJob && <JobStatus jobId={compareJob} what="The per-op comparison" quietSuccess />}
    </div>
  );

  return (
    <section>
      <h2>Graph</h2>
      <NeedsModel>
        {!graph || !laid ? (
          <Empty title="No graph for this model">
            <p>The engine did not return a graph for this file (older engine, or a format it cannot read as a graph).</p>
          </Empty>
        ) : (
          <>
            <div className="row">
              <input className="grow" value={query} onChange={(e) => setQuery(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && matches.size && focus([...matches][0])} placeholder="Search ops, submodules or shapes, e.g. conv, layer2.1, 56x56 (Enter jumps to the first)" aria-label="Search the graph" />
              <span className="hint" data-testid="graph-matches">{query.trim() ? `${matches.size} match${matches.size === 1 ? '' : 'es'}` : `${laid.nodes.length - 2} ops`}</span>
              <button onClick={() => setView((v) => ({ ...v, k: Math.min(4, v.k * 1.25) }))} aria-label="Zoom in">+</button>
              <button onClick={() => setView((v) => ({ ...v, k: Math.max(0.05, v.k / 1.25) }))} aria-label="Zoom out">−</button>
              <button onClick={fitWidth}>Fit width</button>
              <button onClick={fitAll}>Fit all</button>
            </div>
            <div className="graph-legend" data-testid="graph-legend" data-mode={mode}>
              {modeControl}
              {buildLine}
              {legend}
              {shapes?.state === 'no-specs' && (
                <span className="hint" data-testid="graph-shapes-status">
                  Describe the inputs on the <button className="link" onClick={() => go('inputs')}>Inputs</button> page to see each op's output shape.
                </span>
              )}
              {shapes?.state === 'pending' && <span className="hint" data-testid="graph-shapes-status">Working out each op's output shape for the current inputs…</span>}
              {shapes?.state === 'failed' && <span className="warn" data-testid="graph-shapes-status">No shapes for these inputs: {shapes.message}</span>}
              {graph.truncated && <span className="warn">The graph is large: only its first ops are drawn.</span>}
            </div>
            {compareOffer}
            <div className="graph-layout">
            <div className="graph-wrap">
            <div className="graph-box" ref={box} onWheel={onWheel} onPointerDown={onDown} onPointerMove={onMove} onPointerUp={() => (drag.current = null)} data-testid="graph-view" data-placed={placement.size} data-mode={mode}>
              <svg width="100%" height="100%" role="img" aria-label="Model graph">
                <defs>
                  <marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                    <path d="M0,0 L8,4 L0,8 z" fill="var(--muted)" />
                  </marker>
                </defs>
                <g transform={`translate(${view.x},${view.y}) scale(${view.k})`}>
                  {laid.edges.map((e, i) => (
                    <polyline key={i} className="graph-edge" points={e.points.map((p) => `${p.x},${p.y}`).join(' ')} markerEnd="url(#arrow)" />
                  ))}
                  {laid.nodes.map((n) => {
                    const p = placement.get(n.id);
                    const hit = matches.has(n.id);
                    const paint = paintOf(n.id, n.node.op);
                    const root = rootOf(p);
                    const e = errors.get(n.id);
                    const t = nodeTime(p, e);
                    const timed = mode !== 'error' && t.share !== null && maxShare > 0;
                    const first = mode === 'error' && !!e?.first;
                    const abRow = mode === 'ab' ? ab?.get(n.id) : undefined;
                    const moved = !!abRow?.diff.placement && !p?.fused;
                    const fill = paint.fill ? (paint.tint ? tintOf(paint.fill) : paint.fill) : undefined;
                    const mixW = p?.mix ? p.mix.reduce((s, m) => s + (p.majorityBy === 'time' ? m.ms ?? 0 : m.calls), 0) : 0;
                    let mixX = 4;
                    return (
                      <g
                        key={n.id}
                        className={`graph-node${hit ? ' match' : ''}${selected === n.id ? ' selected' : ''}${p ? ' placed' : ''}${p?.fused ? ' fused' : ''} ink-${paint.ink}${paint.muted ? ' muted' : ''}`}
                        transform={`translate(${n.x - n.w / 2},${n.y - n.h / 2})`}
                        data-id={n.id} data-op={n.node.op} data-where={p?.where} data-fused={p?.fused ? '1' : undefined} data-match={p ? (p.byId ? 'id' : 'order') : undefined}
                        data-shape={n.node.outputs?.[0]?.shape ? shapeText(n.node.outputs[0]) : undefined}
                        data-ms={t.ms ?? undefined} data-calls={p?.calls && p.calls.length > 1 ? p.calls.length : undefined} data-mixed={p?.mix ? '1' : undefined}
                        data-error={e ? (e.ok ? 'ok' : 'over') : undefined} data-first={e?.first ? '1' : undefined} data-fill={paint.fill}
                        data-ab={abRow ? abVerdict(abRow) : undefined} data-ab-moved={moved ? '1' : undefined}
                        onClick={() => select(n.id)}
                      >
                        <title>{`${n.node.op}${n.node.scope ? ` (${n.node.scope})` : ''}${n.sub ? `\n${n.sub}` : ''}${p ? `\nruns on: ${WHERE_LABEL[p.where]}${p.mix ? ` (mostly; ${p.calls!.length} calls)` : ''}${root ? `, fused into ${short(root.node.op)}'s call` : ''}${t.ms !== null ? `, ${fmtMs(t.ms)}` : ''}${t.share !== null ? `, ${(t.share * 100).toFixed(1)}% of the time` : ''}` : ''}${e ? `\nvs PyTorch: ${e.ok ? 'within' : 'past'} the tolerance (${fmtRatio(e.ratio)} of it)` : ''}`}</title>
                        {first && <rect className="first-outline" x={-5} y={-5} width={n.w + 10} height={n.h + 10} rx={8} />}
                        {moved && <rect className="moved-outline" x={-5} y={-5} width={n.w + 10} height={n.h + 10} rx={8} />}
                        {/* A fused op (it runs inside another op's call) is a tint of its colour with a border of it. */}
                        <rect width={n.w} height={n.h} rx={n.node.op === 'input' || n.node.op === 'output' ? 18 : 5} style={fill ? { fill, stroke: hit ? '#f0b400' : selected === n.id ? 'var(--text)' : paint.ink === 'dark' ? `color-mix(in srgb, ${paint.fill} 62%, #000)` : paint.fill, strokeWidth: hit || selected === n.id ? 3 : paint.tint ? 1.5 : 1 } : undefined} />
                        {mode === 'placement' && p?.mix && mixW > 0 && p.mix.map((m) => {
                          const w = ((n.w - 8) * (p.majorityBy === 'time' ? m.ms ?? 0 : m.calls)) / mixW;
                          const x = mixX;
                          mixX += w;
                          return <rect key={m.where} className="mix-seg" x={x} y={3} width={Math.max(0, w)} height={4} style={{ fill: WHERE_COLOR[m.where] }} />;
                        })}
                        <text x={n.w / 2} y={n.sub ? 16 : 25} textAnchor="middle" className="graph-label">{n.shownLabel}</text>
                        {n.sub && <text x={n.w / 2} y={31} textAnchor="middle" className="graph-sub">{n.shownSub}</text>}
                        {timed && <rect className="share-bar" x={4} y={n.h - 6} width={Math.max(3, (n.w - 8) * Math.min(1, t.share! / maxShare))} height={3} rx={1.5} />}
                      </g>
                    );
                  })}
                </g>
              </svg>
            </div>
            {sel && (
              // Beside the graph, as Netron's sidebar: it stays in view at any window size.
              <aside className="graph-details" data-testid="graph-selected" aria-label="Op details" ref={panel}>
                <div className="graph-details-head">
                  <h3 title={sel.node.op}>{sel.node.op}</h3>
                  <button className="link" onClick={() => select(null)} aria-label="Close the details">✕</button>
                </div>
                <dl>
                  {sel.node.scope && <><dt>submodule</dt><dd><code>{sel.node.scope}</code></dd></>}
                  {sel.sub && <><dt>output</dt><dd><code>{sel.sub}</code>{shapesStale ? <span className="hint"> (for the previous input specs; updating)</span> : null}</dd></>}
                  {(sel.node.outputs?.length ?? 0) > 1 && <><dt>outputs</dt><dd>{sel.node.outputs!.map((o, i) => <div key={i}><code>{shapeText(o) || '?'}</code></div>)}</dd></>}
                  <dt>runs on</dt>
                  <dd>
                    {selPlace ? (
                      <>
                        <span className="where-chip" style={{ background: WHERE_COLOR[selPlace.where] }}>{WHERE_LABEL[selPlace.where]}</span>
                        {selPlace.mix ? <span className="hint"> mostly ({selPlace.majorityBy === 'time' ? 'most of its time' : 'most of its calls'}); {selPlace.mix.map((m) => `${m.calls} in ${WHERE_SHORT[m.where]}`).join(', ')}</span> : null}
                        {selRoot ? <>, fused into the call of <button className="link" onClick={() => focus(selRoot.id)}>{short(selRoot.node.op)}</button></> : null}
                        {selPlace.op && !selPlace.byId ? <span className="hint"> (matched by kind and order)</span> : null}
                      </>
                    ) : (
                      'not compiled yet'
                    )}
                  </dd>
                  {selTime.ms !== null && <><dt>time</dt><dd>{fmtMs(selTime.ms)}{selTime.share !== null ? ` · ${(selTime.share * 100).toFixed(1)}% of the model's time` : ''}{(selPlace?.calls?.length ?? 0) > 1 ? ` (its ${selPlace!.calls!.length} calls)` : ''}{selTime.from === 'comparison' ? ' (its kernel alone, timed by the per-op comparison)' : ''}</dd></>}
                  {(selPlace?.calls?.length ?? 0) > 1 && (
                    <>
                      <dt>calls</dt>
                      <dd>
                        <table className="calls-table" data-testid="node-calls">
                          <tbody>
                            {selPlace!.calls!.map((c) => (
                              <tr key={c.name}>
                                <td><code>{c.name}</code> <span className="hint">{c.kind}</span></td>
                                <td><span className="swatch dot" style={{ background: WHERE_COLOR[c.where] }} /> {WHERE_SHORT[c.where]}</td>
                                <td className="num">{fmtMs(c.ms)}</td>
                              </tr>
                            ))}
                          </tbody>
                          {selOtherKernels.length > 0 && (
                            <tbody className="other-kernels" data-testid="node-other-kernels">
                              {selOtherKernels.map((r) => (
                                <tr key={r.op} title="A kernel the per-op comparison found in this op; TVM's own kernels are timed together, not one by one">
                                  <td><code>{r.op}</code>{r.op.startsWith(r.kind) ? null : <span className="hint"> {r.kind}</span>}</td>
                                  <td><span className="swatch dot" style={{ background: WHERE_COLOR[r.where] }} /> {WHERE_SHORT[r.where]}</td>
                                  <td className="num hint">–</td>
                                </tr>
                              ))}
                            </tbody>
                          )}
                        </table>
                        <div className="hint">
                          {selOtherKernels.length ? `The last ${selOtherKernels.length}: found by the per-op comparison; ` : comparison ? '' : 'Kernels of its own in TVM (a layer norm, say) are not in the placement report: compare each op with PyTorch to list them. '}
                          {pl?.tvm_ms != null && pl.tvm_ms > 0 ? `TVM's kernels are timed together (${fmtMs(pl.tvm_ms)} for the whole model).` : ''}
                        </div>
                      </dd>
                    </>
                  )}
                  {!selPlace?.fused && selPlace?.calls?.length === 1 && selPlace.op && (
                    <>
                      {!!selPlace.op.epilogue?.length && <><dt>fuses</dt><dd>{selPlace.op.epilogue.join(', ')}</dd></>}
                      {mode !== 'error' && selPlace.op.algorithm && <><dt>algorithm</dt><dd>{ALGORITHM_LABELS[selPlace.op.algorithm]}, timed faster than the default here</dd></>}
                      {mode !== 'error' && selPlace.op.alone_ms && <><dt>alone</dt><dd>{Object.keys(CANDIDATE_LABELS).filter((k) => selPlace.op!.alone_ms![k] != null).map((k) => `${CANDIDATE_LABELS[k]} ${fmtMs(selPlace.op!.alone_ms![k] as number)}`).join(' · ')}</dd></>}
                      {mode !== 'error' && selPlace.op.context_ms && <><dt>in the model</dt><dd>{Object.entries(selPlace.op.context_ms).filter(([, v]) => v != null).map(([k, v]) => `${CANDIDATE_LABELS[k] ?? k} ${fmtMs(v as number)}`).join(' · ')}</dd></>}
                    </>
                  )}
                  {selErr && shownRow && (
                    <>
                      <dt>vs PyTorch</dt>
                      <dd data-testid="node-error">
                        {selErr.fused && <div className="hint">Runs inside the call of {shownRow.node && byId.get(shownRow.node) ? short(byId.get(shownRow.node)!.node.op) : shownRow.op}; its output is what was compared:</div>}
                        {selErr.rows.length > 1 && (
                          <div className="hint">
                            {selErr.rows.length} calls compared; showing{' '}
                            <select aria-label="Comparison shown" value={shownRow.op} onChange={(e) => setStatsRow(e.target.value)}>
                              {selErr.rows.map((r) => <option key={r.op} value={r.op}>{r.op} ({r.kind}, {r.where}){r.ok ? '' : ' ✗'}</option>)}
                            </select>
                          </div>
                        )}
                        {errorLine(shownRow)}
                        {shownRow.layout && <div className="hint">Compared in the model's layout (the build keeps it {shownRow.layout}).</div>}
                      </dd>
                      {mode === 'error' && shownRow.stats && <><dt>values</dt><dd><StatsTable row={shownRow} /></dd></>}
                      {mode === 'error' && shownRow.diff_histogram && <><dt>difference</dt><dd><DiffHistogram row={shownRow} /></dd></>}
                    </>
                  )}
                  {mode === 'ab' && selected && <AbDetails row={ab?.get(selected)} />}
                  {mode === 'error' && !selErr && comparison?.ops.length ? <><dt>vs PyTorch</dt><dd className="hint">Not compared: no kernel call of the build computes this op's value on its own (it is inside a kernel, or made by a layout change).</dd></> : null}
                </dl>
              </aside>
            )}
            </div>
            <OpTable rows={rows} selected={selected} onSelect={focusFromTable} comparison={comparison} />
            </div>
            <p className="hint">Scroll to zoom, drag to pan, click an op (or a row of the table) for its details. Laid out with dagre.</p>
          </>
        )}
      </NeedsModel>
    </section>
  );
}

/** The selected op in both builds (A/B mode). */
function AbDetails({ row }: { row: CompareRow | undefined }) {
  if (!row) return <><dt>A → B</dt><dd className="hint">No call of either build computes this op on its own (it is inside a kernel, or made by a layout change).</dd></>;
  return (
    <>
      <dt>A → B</dt>
      <dd data-testid="ab-details">
        <div>{fmtPlacement(row.a?.where, row.b?.where)}{row.diff.placement ? ' (moved)' : ''}</div>
        <div>time {fmtMs(row.a?.ms)} → {fmtMs(row.b?.ms)}{row.time_ratio !== null ? ` (${row.time_ratio > 1 ? `${row.time_ratio.toFixed(2)}× slower` : `${(1 / row.time_ratio).toFixed(2)}× faster`} in B${row.diff.time ? '' : ', within the noise threshold'})` : ''}</div>
        <div>error {fmtSideError(row.a)} → {fmtSideError(row.b)}</div>
      </dd>
    </>
  );
}
