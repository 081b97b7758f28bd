// What the graph view draws (renderer/src/views/graph-data.ts): a composite TorchScript node gets
// every one of its calls and the colour of the majority; the time and error scales; the per-op
// table's sort.
import { describe, expect, it } from 'vitest';
import type { CompareRow } from '../../app/contract/build-compare.js';
import type { CompileResult, ModelGraph, OpComparison, PlacedOp } from '../../app/contract/results.js';
import { abNodes, abVerdict, ERROR_OVER, ERROR_STEPS, errorColor, errorRatio, heatScale, inkFor, nodeErrors, nodeTime, opRows, placeNodes, sortRows, WHERE_COLOR } from '../../renderer/src/views/graph-data.js';

const op = (name: string, kind: string, where: PlacedOp['where'], ms: number | null, extra: Partial<PlacedOp> = {}): PlacedOp => ({ name, kind, where, ms, share: ms === null ? null : ms / 1, shape: [], epilogue: [], ...extra });

// input -> encoder layer (one aten::_transformer_encoder_layer_fwd node, as torch.jit.trace keeps a
// TransformerEncoderLayer under no_grad) -> linear head -> linear -> relu -> output
const graph: ModelGraph = {
  nodes: [
    { id: 'in', op: 'input', inputs: [] },
    { id: 'n1', op: 'aten::_transformer_encoder_layer_fwd', inputs: ['in'], scope: 'encoder' },
    { id: 'n2', op: 'aten::linear', inputs: ['n1'], scope: 'head' },
    { id: 'n3', op: 'aten::linear', inputs: ['n2'], scope: 'out' },
    { id: 'n4', op: 'aten::relu', inputs: ['n3'] },
    { id: 'out', op: 'output', inputs: ['n4'] },
  ],
};

function result(ops: PlacedOp[], oc?: OpComparison): CompileResult {
  return { placement: { mode: 'auto', ops, library_ops: 0, tvm_ops: 0, library_ms: null, tvm_ms: null, total_ms: null, source_ops: { linear: ['aten::linear'] } }, ...(oc ? { op_comparison: oc } : {}) } as unknown as CompileResult;
}

describe('placement of a composite node', () => {
  // The encoder layer's 7 calls: the qkv projection, attention and 5 more in the library; 2
  // linears left in TVM that take most of its time. The head's own linear names its node; the
  // last linear names none (matched by kind and order), with its relu fused.
  const calls = [
    op('addmm1', 'linear', 'library', 0.0105, { node: 'n1' }),
    op('view_10', 'attention', 'library', 0.02, { node: 'n1' }),
    op('add', 'linear', 'library', 0.006, { node: 'n1' }),
    op('ff1', 'linear', 'tvm', 0.09, { node: 'n1' }),
    op('ff2', 'linear', 'tvm', 0.08, { node: 'n1' }),
    op('add_1', 'linear', 'library', 0.009, { node: 'n1' }),
    op('relu', 'linear', 'library', 0.01, { node: 'n1' }),
  ];
  const head = op('head', 'linear', 'library', 0.05, { node: 'n2' });
  const last = op('last', 'linear', 'library', 0.04, { epilogue: ['relu'] });
  const placed = placeNodes(graph, result([...calls, head, last]));

  it('lists every call of the composite node, and none of them is matched to another node', () => {
    const p = placed.get('n1')!;
    expect(p.calls!.map((c) => c.name)).toEqual(calls.map((c) => c.name));
    expect(placed.get('n2')!.calls!.map((c) => c.name)).toEqual(['head']);
    // The ops naming n1 did not go to the queue of linears: the last linear node gets the op that names no node.
    expect(placed.get('n3')!.calls!.map((c) => c.name)).toEqual(['last']);
    expect(placed.get('n3')!.byId).toBeUndefined();
    expect(placed.get('n4')).toMatchObject({ where: 'library', fused: true, root: 'n3' });
  });

  it('is coloured by where most of its time runs, with the mix', () => {
    const p = placed.get('n1')!;
    expect(p.where).toBe('tvm'); // 170 µs in TVM, 55.5 µs in the library
    expect(p.majorityBy).toBe('time');
    expect(p.mix!.map((m) => [m.where, m.calls])).toEqual([['tvm', 2], ['library', 5]]);
    expect(p.mix![0].ms).toBeCloseTo(0.17, 9);
    // Untimed calls: by count.
    const byCount = placeNodes(graph, result(calls.map((c) => ({ ...c, ms: null, share: null })))).get('n1')!;
    expect(byCount).toMatchObject({ where: 'library', majorityBy: 'calls' });
    // One place only: no mix.
    expect(placeNodes(graph, result(calls.filter((c) => c.where === 'library'))).get('n1')!.mix).toBeUndefined();
  });

  it("sums the node's calls for its time; a fused node has none of its own", () => {
    expect(nodeTime(placed.get('n1')).ms).toBeCloseTo(0.2255, 9);
    expect(nodeTime(placed.get('n4'))).toEqual({ ms: null, share: null });
  });

  it('gives the table one row per op, fused ones named in their call\'s row', () => {
    const rows = opRows(graph, placed, new Map());
    expect(rows.map((r) => r.id)).toEqual(['n1', 'n2', 'n3']);
    expect(rows[2].fusedOps).toEqual(['relu']);
    expect(sortRows(rows, 'ms', 'desc').map((r) => r.id)).toEqual(['n1', 'n2', 'n3']);
    expect(sortRows(rows, 'ms', 'asc').map((r) => r.id)).toEqual(['n3', 'n2', 'n1']);
    expect(sortRows(rows, 'scope', 'asc').map((r) => r.scope)).toEqual(['encoder', 'head', 'out']);
  });
});

describe('a depthwise + 1x1 pair run as one call', () => {
  // in -> depthwise conv -> relu6 -> 1x1 conv -> hardswish -> depthwise conv -> out: the first two
  // convolutions are one torchtvm.depthwise_pointwise call (its node the depthwise one, the 1x1
  // and both activations fused into it); the last depthwise convolution runs alone.
  const g: ModelGraph = {
    nodes: [
      { id: 'in', op: 'input', inputs: [] },
      { id: 'n1', op: 'aten::_convolution', inputs: ['in'], scope: 'blocks.0.dw.0' },
      { id: 'n2', op: 'aten::hardtanh', inputs: ['n1'] },
      { id: 'n3', op: 'aten::_convolution', inputs: ['n2'], scope: 'blocks.0.pw.0' },
      { id: 'n4', op: 'aten::hardswish', inputs: ['n3'] },
      { id: 'n5', op: 'aten::_convolution', inputs: ['n4'], scope: 'blocks.1.dw.0' },
      { id: 'out', op: 'output', inputs: ['n5'] },
    ],
  };
  const conv = ['aten::_convolution'];
  const pair = op('pw_act', 'depthwise_pointwise', 'library', 0.012, { node: 'n1', fused: ['n2', 'n3', 'n4'], scope: 'blocks.0', alone_ms: { library: 0.012, separate: 0.015 } });
  const alone = op('dw2', 'depthwise_conv2d', 'library', 0.003);
  const r = result([pair, alone]);
  r.placement!.source_ops = { depthwise_pointwise: conv, depthwise_conv2d: conv, conv2d: conv };
  const placed = placeNodes(g, r);

  it("puts the 1x1 convolution inside the pair's call, not on the next convolution's op", () => {
    expect(placed.get('n1')!.calls!.map((c) => c.name)).toEqual(['pw_act']);
    expect(placed.get('n3')).toMatchObject({ where: 'library', fused: true, root: 'n1' });
    expect(placed.get('n4')).toMatchObject({ fused: true, root: 'n1' });
    // the lone depthwise convolution (no node named) is matched by kind and order to the next conv node
    expect(placed.get('n5')!.calls!.map((c) => c.name)).toEqual(['dw2']);
  });
});

describe('time and error scales', () => {
  it('spans the times min to max in 5 steps, logarithmic over more than 10x', () => {
    const h = heatScale([0.012, 0.05, 0.4, 5.94])!;
    expect(h.log).toBe(true);
    expect(h.steps).toHaveLength(5);
    expect(h.steps[0].ms).toBe(0.012);
    expect(h.steps[4].ms).toBe(5.94);
    expect(h.steps[2].ms).toBeCloseTo(Math.sqrt(0.012 * 5.94), 9);
    expect(heatScale([1, 2])!.log).toBe(false);
    expect(heatScale([])).toBeNull();
    // The palest step takes dark labels, the darkest white ones.
    expect(inkFor(h.steps[0].color)).toBe('dark');
    expect(inkFor(h.steps[4].color)).toBe('light');
    expect(inkFor(WHERE_COLOR.library)).toBe('light');
  });

  it('rates each op against its tolerance and names the first past it', () => {
    const row = (op: string, node: string, maxAbs: number, ok: boolean, fused?: string[]) => ({ op, kind: 'conv2d', node, where: 'library' as const, kernel: 'torchtvm.conv2d', shape: [1], dtype: 'float32', max_abs: maxAbs, max_rel: 0, nan_inf_mismatches: 0, ok, atol: 1e-4, rtol: 1e-3, scale: 2, ...(fused ? { fused } : {}) });
    const oc: OpComparison = { ops: [row('a', 'n2', 1e-6, true, ['n4']), row('b', 'n3', 0.5, false)], first_failing: 'b', note: '' };
    expect(errorRatio(oc.ops[0])).toBeCloseTo(1e-6 / 2.1e-3, 12);
    const e = nodeErrors(oc);
    expect(e.get('n2')).toMatchObject({ ok: true, first: false, fused: false });
    expect(e.get('n4')).toMatchObject({ ok: true, fused: true });
    expect(e.get('n3')).toMatchObject({ ok: false, first: true });
    expect(errorColor(e.get('n2')!)).toBe(ERROR_STEPS[0].color);
    expect(errorColor(e.get('n3')!)).toBe(ERROR_OVER);
    const rows = opRows(graph, placeNodes(graph, result([])), e);
    expect(sortRows(rows, 'error', 'desc').map((r) => r.id)).toEqual(['n3', 'n2', 'n4', 'n1']); // n4 shares n2's call; n1 was not compared
  });

  it("times a TVM node by its kernel calls in the per-op comparison; the placement report's time comes first", () => {
    const row = (op: string, node: string, where: 'tvm' | 'library', ms?: number, fused?: string[]) => ({ op, kind: 'linear', node, where, kernel: 'k', shape: [1], dtype: 'float32', max_abs: 0, max_rel: 0, nan_inf_mismatches: 0, ok: true, ...(ms !== undefined ? { ms } : {}), ...(fused ? { fused } : {}) });
    const oc: OpComparison = { ops: [row('a', 'n2', 'library', 0.5), row('b', 'n3', 'tvm', 0.03, ['n4']), row('c', 'n3', 'tvm', 0.01), row('d', 'n1', 'tvm')], first_failing: null, note: '' };
    const e = nodeErrors(oc);
    const placed = placeNodes(graph, result([op('head', 'linear', 'library', 0.05, { node: 'n2' })]));
    expect(nodeTime(placed.get('n2'), e.get('n2'))).toMatchObject({ ms: 0.05 }); // the in-model time, not the alone one
    expect(nodeTime(placed.get('n2'), e.get('n2')).from).toBeUndefined();
    expect(nodeTime(placed.get('n3'), e.get('n3')).ms).toBeCloseTo(0.04, 12); // both of its calls
    expect(nodeTime(placed.get('n3'), e.get('n3')).from).toBe('comparison');
    expect(nodeTime(placed.get('n4'), e.get('n4')).ms).toBeNull(); // fused into n3's kernel: no time of its own
    expect(nodeTime(placed.get('n1'), e.get('n1')).ms).toBeNull(); // compared, not timed
    expect(opRows(graph, placed, e).find((r) => r.id === 'n3')!.ms).toBeCloseTo(0.04, 12);
  });
});

describe('A/B: two builds op by op', () => {
  const side = (where: 'library' | 'tvm', ms: number | null, ok: boolean | null = true) => ({ where, ms, ok, max_abs: 0, max_rel: 0, name: 'v' });
  const row = (nodes: string[], a: ReturnType<typeof side> | null, b: ReturnType<typeof side> | null, diff: Partial<CompareRow['diff']> = {}): CompareRow => {
    const d = { placement: false, time: false, error: false, missing: !a || !b, ...diff };
    return { key: nodes.join('+'), nodes, label: '', scope: '', kind: 'linear', a, b, diff: d, differs: Object.values(d).some(Boolean), time_ratio: a?.ms && b?.ms ? b.ms / a.ms : null };
  };
  it('says what B does against A in one word, the error first', () => {
    expect(abVerdict(row(['n2'], side('library', 1), side('tvm', 2), { placement: true, time: true }))).toBe('slower');
    expect(abVerdict(row(['n2'], side('library', 2), side('tvm', 1), { placement: true, time: true }))).toBe('faster');
    expect(abVerdict(row(['n2'], side('library', 2), side('library', 1, false), { time: true, error: true }))).toBe('error');
    expect(abVerdict(row(['n2'], side('library', 1), side('library', 1.01)))).toBe('same');
    expect(abVerdict(row(['n2'], side('tvm', null), side('tvm', 1)))).toBe('untimed');
    expect(abVerdict(row(['n2'], side('tvm', 1), null))).toBe('missing');
  });
  it('gives each node the first row naming it, its own or fused', () => {
    const r1 = row(['n3', 'n4'], side('library', 1), side('library', 1));
    const r2 = row(['n4'], side('tvm', 1), side('tvm', 1));
    const m = abNodes([r1, r2]);
    expect(m.get('n3')).toBe(r1);
    expect(m.get('n4')).toBe(r1);
    expect(m.has('n1')).toBe(false);
  });
});
