// Shapes of job results that the CLI and the renderer read. The engine produces them; core checks
// the parts it relies on.
import type { InputSpec } from './specs.js';

export interface LatencyStats {
  p50: number;
  p90: number;
  p99?: number;
  min: number;
  mean: number;
  stddev?: number;
  runs: number;
}

export interface OutputCheck {
  index: number;
  shape: number[];
  dtype: string;
  ok: boolean;
  /** A non-finite metric arrives as the string "inf", "-inf" or "nan" (JSON has no such numbers). */
  max_abs: number | string | null;
  max_rel: number | string | null;
  atol?: number;
  rtol?: number;
  /** Why the output failed: dtype, shape, NaN/inf positions or the error against tolerance. */
  reason?: string;
}

export interface Verification {
  ok: boolean;
  outputs: OutputCheck[];
  checks?: Array<{ ok: boolean; outputs: OutputCheck[]; input_shapes: number[][] }>;
  /** Not run: the code needs CPU features this machine lacks (reason says which). */
  skipped?: boolean;
  reason?: string;
  /** The same comparison on NaN, ±inf, -0.0, huge, tiny and all-zero inputs, reported apart. */
  edge_values?: { ok: boolean; failed: string[]; cases: Array<{ case: string; ok: boolean; outputs?: OutputCheck[]; reason?: string; skipped?: string }> };
}

export interface InspectResult {
  path: string;
  /** "pt2" for a torch.export archive (TorchScript otherwise). */
  format?: 'pt2';
  /** spec: a .pt2 input's default input spec (dynamic dims as symbols with their ranges); shape only when all its dims are static. */
  inputs: Array<{ name: string; type: string; shape?: number[]; dtype?: string; spec?: InputSpec }>;
  ops: Record<string, number>;
  parameters: { count: number; bytes: number; tensors: number };
  exported: Record<string, unknown> | null;
  /** The model's graph (TorchScript), for the graph view; absent from older engines. */
  graph?: ModelGraph;
}

export interface GraphNode {
  id: string;
  /** The op, e.g. 'aten::conv2d'; 'input' and 'output' for the graph's ends. */
  op: string;
  /** Inputs only: the argument's name in the TorchScript graph. */
  name?: string;
  /** Ids of the nodes whose outputs this node reads. */
  inputs: string[];
  /**
   * Per output: from running the model on the input specs (graph.shapes_for), else where the
   * TorchScript graph records it. A symbolic dim is its symbol or a linear expression of it
   * ('batch', '2*seq', 'h/2'); null where unknown.
   */
  outputs?: Array<{ shape?: Array<number | string | null>; dtype?: string }>;
  /** The submodule it came from (scope), e.g. 'layer1.0.conv1'. */
  scope?: string;
}

export interface ModelGraph {
  nodes: GraphNode[];
  /** True when the graph was cut at the size limit. */
  truncated?: boolean;
  /** The input specs the nodes' output shapes were computed for (absent: no computed shapes). */
  shapes_for?: InputSpec[];
}

export interface CompileResult {
  model: string;
  inputs: InputSpec[];
  target: { kind: string; mcpu: string | null; features: string[] };
  num_outputs: number;
  timings_s: { import: number; build: number };
  verification: Verification;
  threads: number;
  latency_ms?: { torch: LatencyStats; tvm: LatencyStats; ratio: number };
  files: { library?: string; partitioned?: string; exported?: string; workDir?: string };
  tuning?: Record<string, unknown>;
  /** Module-level fallback: why the whole model did not import, and what got compiled. */
  fallback?: { reason: string; code: string };
  coverage?: CompileCoverage;
  /** Where each heavy op runs (library kernel or TVM) and, for library calls, how long it takes. */
  placement?: Placement;
}

export interface PlacedOp {
  /** The op's value name in the compiled graph. */
  name: string;
  /** conv2d | depthwise_conv2d | grouped_conv2d | linear | matmul */
  kind: string;
  /** Output shape as compiled (NHWC for library convolutions); symbols as strings. */
  shape: Array<number | string>;
  /** What is fused into the call: bias, scale, add (residual), relu, relu6, gelu, silu, ... */
  epilogue: string[];
  where: 'library' | 'tvm' | 'torchscript';
  /** Median time of the call inside a model run (library calls); null where not measured. */
  ms: number | null;
  /** ms as a share of the model's TVM p50. */
  share: number | null;
  func?: string;
  /** The graph node (ModelGraph id, e.g. 'n12') the op came from, where the engine could follow it. */
  node?: string;
  /** The graph nodes fused into the call (BatchNorm, residual add, activation). */
  fused?: string[];
  /** The library kernel's algorithm where it is not the default: 'winograd' (3x3 convolutions
   * that per-op placement timed faster as Winograd than as oneDNN's direct convolution). */
  algorithm?: 'winograd';
  /** Per-op placement (auto): the op timed alone, in the model's layout, as a library kernel, as
   * TVM's tuned kernel (with a tuning database) and (3x3 convolutions) as the Winograd kernel;
   * it runs where it was faster. */
  alone_ms?: { library: number; tvm?: number; winograd?: number };
}

export interface Placement {
  mode: 'auto' | 'library' | 'tvm';
  ops: PlacedOp[];
  library_ops: number;
  tvm_ops: number;
  /** Sum of the library calls' times, and the rest of the model's p50 (TVM's own kernels). */
  library_ms: number | null;
  tvm_ms: number | null;
  total_ms: number | null;
  /** How auto placed the ops: which convolutions run as Winograd and, with a tuning database, whether
   * moving ops to TVM beat the default. */
  note?: string;
  /** Per-op placement against the untuned default (the library everywhere, Winograd where it timed
   * faster; `library_ms`), fastest of interleaved model runs: the faster is kept, so a tuned build
   * is never slower than the untuned default. Only `kept: false` where every op stayed in the library. */
  per_op?: { kept: boolean; per_op_ms?: number; library_ms?: number };
}

export interface CompileCoverage {
  /** graph: runs of importable ops (loop and branch bodies included) were compiled; module: whole submodule calls. */
  level?: 'graph' | 'module';
  ops_total: number;
  ops_compiled: number;
  time_share_compiled: number;
  /** One row per segment ("segment0 (loop body: cat, linear, tanh)") or submodule. */
  modules: Array<{ name: string; compiled: boolean; reason?: string }>;
  /** Graph level: each segment's block, aten ops, and whether it runs in TVM. */
  segments?: Array<{ name: string; where: string; ops: string[]; compiled: boolean; reason?: string; torchscript_ms?: number }>;
}
