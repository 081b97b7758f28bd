// The model's graph, laid out by dagre (as Netron lays out its graphs), drawn as SVG with zoom,
// pan and search. After a compile, each op is coloured by where it runs (library kernel, TVM
// kernel, or TorchScript fallback), and heavy ops carry a bar for their share of the time.
import dagre from '@dagrejs/dagre';
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type PointerEvent as RPointerEvent, type WheelEvent as RWheelEvent } from 'react';
import { ALGORITHM_LABELS, CANDIDATE_LABELS, type CompileResult, type GraphNode, type ModelGraph, type PlacedOp } from '../../../app/contract/results.js';
import { describeBuild } from '../../../app/contract/builds.js';
import { checkRows, go, graphShapesStatus, refreshGraphShapes } from '../actions.js';
import { Empty, NeedsModel, fmtMs } from '../components.js';
import { useStore } from '../store.js';
import { graphBuild } from '../builds.js';

export type Where = 'library' | 'tvm' | 'torchscript';
/**
 * Fixed in both themes, distinct for colour-blind readers too (blue / green / vermilion), and dark
 * enough that the white labels on them keep a 4.5:1 contrast.
 */
export const WHERE_COLOR: Record<Where, string> = { library: '#2f69b3', tvm: '#23804a', torchscript: '#c24a1c' };
export const WHERE_LABEL: Record<Where, string> = { library: 'library kernel (oneDNN/MKL)', tvm: 'TVM kernel', torchscript: 'TorchScript fallback' };

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

export interface NodePlacement {
  where: Where;
  op?: PlacedOp;
  /** The op runs inside another op's library call (its BatchNorm, residual add, activation). */
  fused?: boolean;
  /** Matched by the engine's identity (node id), not by kind and order. */
  byId?: boolean;
}

/**
 * Matches a compile result to graph nodes. Heavy ops are matched by identity: the engine names the
 * graph node each placed op came from (`node`) and the nodes fused into its call (`fused`). Ops it
 * could not follow fall back to order: the i-th remaining placement op of a family (conv, linear,
 * matmul; from the engine's `placement.source_ops`) is the i-th remaining graph node of that family.
 * Other ops run in TVM when the model compiled, except those in submodules or segments the coverage
 * reports as left in TorchScript.
 */
export function placeNodes(graph: ModelGraph, r: CompileResult | null): Map<string, NodePlacement> {
  const out = new Map<string, NodePlacement>();
  if (!r) return out;
  const ids = new Set(graph.nodes.map((n) => n.id));
  const fam = families(r.placement?.source_ops);
  const queues = new Map<string, PlacedOp[]>();
  for (const op of r.placement?.ops ?? []) {
    if (op.node && ids.has(op.node) && !out.has(op.node)) {
      out.set(op.node, { where: op.where, op, byId: true });
      for (const f of op.fused ?? []) if (ids.has(f) && !out.has(f)) out.set(f, { where: op.where, op, fused: true, byId: true });
      continue;
    }
    const f = fam.ofKind.get(op.kind);
    if (f) (queues.get(f) ?? queues.set(f, []).get(f)!).push(op);
  }
  const leftModules = (r.coverage?.modules ?? []).filter((m) => !m.compiled).map((m) => m.name);
  const inFallback = (n: GraphNode) => !!n.scope && leftModules.some((m) => n.scope === m || n.scope!.startsWith(`${m}.`));
  const consumers = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) for (const i of n.inputs) (consumers.get(i) ?? consumers.set(i, []).get(i)!).push(n);
  for (const n of graph.nodes) {
    if (n.op === 'input' || n.op === 'output' || out.has(n.id)) continue;
    const f = fam.ofOp.get(n.op);
    const placed = f ? queues.get(f)?.shift() : undefined;
    if (placed) {
      out.set(n.id, { where: placed.where, op: placed });
      if (placed.where === 'library') markFused(n, placed, consumers, out);
    } else out.set(n.id, { where: inFallback(n) ? 'torchscript' : 'tvm' });
  }
  return out;
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
    out.set(hit.id, { where: 'library', op: placed, fused: true });
    cur = hit;
  }
}

const short = (op: string) => op.replace(/^aten::/, '').replace(/^prim::/, '');
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
  const [query, setQuery] = useState('');
  const [view, setView] = useState({ x: 0, y: 0, k: 1 });
  const [selected, setSelected] = useState<string | null>(null);
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
  }, [selected, boxSize]);

  const focus = (id: string) => {
    const n = laid?.nodes.find((x) => x.id === id);
    if (!n || !box.current) return;
    const k = Math.max(view.k, 0.8);
    // Centred in the part of the box that the details panel (top right) leaves free.
    const w = box.current.clientWidth;
    const free = w - (Math.min(340, 0.45 * w) + 20);
    setView({ k, x: free / 2 - n.x * k, y: box.current.clientHeight / 2 - n.y * k });
    setSelected(id);
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
  const sel = selected ? laid?.nodes.find((n) => n.id === selected) : undefined;
  const selPlace = selected ? placement.get(selected) : undefined;
  const counts = { library: 0, tvm: 0, torchscript: 0 } as Record<Where, number>;
  const fusedCounts = { library: 0, tvm: 0, torchscript: 0 } as Record<Where, number>;
  placement.forEach((p) => {
    counts[p.where] += 1;
    if (p.fused) fusedCounts[p.where] += 1;
  });
  // Time bars are scaled to the heaviest op, so that small shares still read; the legend says so.
  let maxShare = 0;
  placement.forEach((p) => !p.fused && p.op?.share != null && (maxShare = Math.max(maxShare, p.op.share)));
  const rootOf = (p: NodePlacement | undefined) => (p?.fused && p.op?.node ? laid?.nodes.find((x) => x.id === p.op!.node) : undefined);
  const selRoot = rootOf(selPlace);
  const current = checkRows(inputs).specs;
  const shapesStale = !!graph?.shapes_for && !!current && JSON.stringify(graph.shapes_for.map((x) => x.dims)) !== JSON.stringify(current.map((x) => x.dims));
  const anyFused = [...placement.values()].some((p) => p.fused);
  // Each group's share of a model run (library calls timed inside it; TVM's kernels are the rest).
  const pl = result?.placement;
  const groupShare: Partial<Record<Where, number>> = {};
  if (pl?.library_ms != null && pl.tvm_ms != null && pl.library_ms + pl.tvm_ms > 0) {
    groupShare.library = pl.library_ms / (pl.library_ms + pl.tvm_ms);
    groupShare.tvm = pl.tvm_ms / (pl.library_ms + pl.tvm_ms);
  }

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
            <div className="graph-legend" data-testid="graph-legend">
              {result?.build && (
                <span className="legend-item" data-testid="graph-build">
                  Placement of build <b>{describeBuild(result.build)}</b> <button className="link" onClick={() => go('export')}>choose another</button>
                </span>
              )}
              {result ? (
                (Object.keys(WHERE_COLOR) as Where[]).map((w) => (
                  <span key={w} className="legend-item"><span className="swatch bar" style={{ background: WHERE_COLOR[w] }} />{WHERE_LABEL[w]} ({counts[w] - fusedCounts[w]} op{counts[w] - fusedCounts[w] === 1 ? '' : 's'}{fusedCounts[w] ? ` + ${fusedCounts[w]} fused` : ''}{groupShare[w] != null ? `; ${(groupShare[w]! * 100).toFixed(0)}% of the time` : ''})</span>
                ))
              ) : (
                <span className="hint">Compile the model to colour each op by where it runs (library kernel, TVM kernel, or TorchScript fallback).</span>
              )}
              {anyFused && <span className="legend-item"><span className="swatch bar" style={{ background: `color-mix(in srgb, ${WHERE_COLOR.library} 24%, var(--panel))`, outline: `1.5px solid ${WHERE_COLOR.library}` }} />tinted: fused into the call of the op before it</span>}
              {maxShare > 0 && <span className="hint">White bar under an op: its share of the model's time (full width = {(maxShare * 100).toFixed(1)}%, the heaviest op).</span>}
              {shapes?.state === 'no-specs' && (
                <span className="hint" data-testid="graph-shapes-status">
                  Describe the inputs on the <button className="link" onClick={() => go('inputs')}>Inputs</button> page to see each op's output shape.
                </span>
              )}
              {shapes?.state === 'pending' && <span className="hint" data-testid="graph-shapes-status">Working out each op's output shape for the current inputs…</span>}
              {shapes?.state === 'failed' && <span className="warn" data-testid="graph-shapes-status">No shapes for these inputs: {shapes.message}</span>}
              {graph.truncated && <span className="warn">The graph is large: only its first ops are drawn.</span>}
            </div>
            <div className="graph-wrap">
            <div className="graph-box" ref={box} onWheel={onWheel} onPointerDown={onDown} onPointerMove={onMove} onPointerUp={() => (drag.current = null)} data-testid="graph-view" data-placed={placement.size}>
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
                    const fill = p ? WHERE_COLOR[p.where] : undefined;
                    const root = rootOf(p);
                    const timed = !p?.fused && p?.op?.share != null && maxShare > 0;
                    return (
                      <g key={n.id} className={`graph-node${hit ? ' match' : ''}${selected === n.id ? ' selected' : ''}${p ? ' placed' : ''}${p?.fused ? ' fused' : ''}`} transform={`translate(${n.x - n.w / 2},${n.y - n.h / 2})`} data-id={n.id} data-op={n.node.op} data-where={p?.where} data-fused={p?.fused ? '1' : undefined} data-match={p ? (p.byId ? 'id' : 'order') : undefined} data-shape={n.node.outputs?.[0]?.shape ? shapeText(n.node.outputs[0]) : undefined} onClick={() => setSelected(n.id)}>
                        <title>{`${n.node.op}${n.node.scope ? ` (${n.node.scope})` : ''}${n.sub ? `\n${n.sub}` : ''}${p ? `\nruns on: ${WHERE_LABEL[p.where]}${root ? `, fused into ${short(root.node.op)}'s call` : ''}${!p.fused && p.op?.ms != null ? `, ${fmtMs(p.op.ms)}` : ''}${!p.fused && p.op?.share != null ? `, ${(p.op.share * 100).toFixed(1)}% of the time` : ''}` : ''}`}</title>
                        {/* A fused op (it runs inside another op's call) is a tint of its colour with a border of it. */}
                        <rect width={n.w} height={n.h} rx={n.node.op === 'input' || n.node.op === 'output' ? 18 : 5} style={fill ? { fill: p?.fused ? `color-mix(in srgb, ${fill} 24%, var(--panel))` : fill, stroke: hit ? '#f0b400' : selected === n.id ? 'var(--text)' : fill, strokeWidth: hit || selected === n.id ? 3 : p?.fused ? 1.5 : 1 } : undefined} />
                        <text x={n.w / 2} y={n.sub ? 16 : 25} textAnchor="middle" className="graph-label">{n.shownLabel}</text>
                        {n.sub && <text x={n.w / 2} y={31} textAnchor="middle" className="graph-sub">{n.shownSub}</text>}
                        {timed && <rect className="share-bar" x={4} y={n.h - 6} width={Math.max(3, (n.w - 8) * Math.min(1, p!.op!.share! / maxShare))} height={3} rx={1.5} />}
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
                  <button className="link" onClick={() => setSelected(null)} aria-label="Close the details">✕</button>
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
                        {selRoot ? <>, fused into the call of <button className="link" onClick={() => focus(selRoot.id)}>{short(selRoot.node.op)}</button></> : null}
                        {selPlace.op && !selPlace.byId ? <span className="hint"> (matched by kind and order)</span> : null}
                      </>
                    ) : (
                      'not compiled yet'
                    )}
                  </dd>
                  {!selPlace?.fused && selPlace?.op?.ms != null && <><dt>time</dt><dd>{fmtMs(selPlace.op.ms)}{selPlace.op.share != null ? ` · ${(selPlace.op.share * 100).toFixed(1)}% of the model's time` : ''}</dd></>}
                  {!selPlace?.fused && !!selPlace?.op?.epilogue?.length && <><dt>fuses</dt><dd>{selPlace.op.epilogue.join(', ')}</dd></>}
                  {!selPlace?.fused && selPlace?.op?.algorithm && <><dt>algorithm</dt><dd>{ALGORITHM_LABELS[selPlace.op.algorithm]}, timed faster than the default here</dd></>}
                  {!selPlace?.fused && selPlace?.op?.alone_ms && <><dt>alone</dt><dd>{Object.keys(CANDIDATE_LABELS).filter((k) => selPlace.op!.alone_ms![k] != null).map((k) => `${CANDIDATE_LABELS[k]} ${fmtMs(selPlace.op!.alone_ms![k] as number)}`).join(' · ')}</dd></>}
                </dl>
              </aside>
            )}
            </div>
            <p className="hint">Scroll to zoom, drag to pan, click an op for its details. Laid out with dagre.</p>
          </>
        )}
      </NeedsModel>
    </section>
  );
}
