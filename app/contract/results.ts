// Job results as the engine, the bench child and the tuning-log reader send them: one zod schema per
// message, used both to validate the payload where it enters app/core and to type it (z.output).
// Objects are loose (z.looseObject): a key a newer engine adds passes through untouched, while the
// keys listed here are checked. Keys starting with "_" are in-process values the engine never sends.
import { z } from 'zod';
import { InputSpecSchema } from './specs.js';
import { TuneRunSchema } from './tune-record.js';

const ms = z.number();
const msOrNull = z.number().nullable();
const int = z.number().int();

// ---- statistics and verification ----

export const LatencyStatsSchema = z.looseObject({
  p50: ms,
  p90: ms,
  p99: ms.optional(),
  min: ms,
  mean: ms,
  stddev: ms.optional(),
  runs: int,
});
export type LatencyStats = z.output<typeof LatencyStatsSchema>;

/** A non-finite metric arrives as the string "inf", "-inf" or "nan" (JSON has no such numbers). */
const metric = z.union([z.number(), z.string()]).nullable();

export const OutputCheckSchema = z.looseObject({
  index: int,
  shape: z.array(int),
  dtype: z.string(),
  ok: z.boolean(),
  max_abs: metric,
  max_rel: metric,
  atol: z.number().optional(),
  rtol: z.number().optional(),
  /** Why the output failed: dtype, shape, NaN/inf positions or the error against tolerance. */
  reason: z.string().optional(),
});
export type OutputCheck = z.output<typeof OutputCheckSchema>;

export const EdgeValuesSchema = z.looseObject({
  ok: z.boolean(),
  cases: z.array(z.looseObject({ case: z.string(), ok: z.boolean(), outputs: z.array(OutputCheckSchema).optional(), reason: z.string().optional(), skipped: z.string().optional() })),
  failed: z.array(z.string()),
});

/**
 * Where something was measured or verified (issue 25): this machine, or a server of an RPC
 * tracker's key (its name as `torchtvm rpc-server --name` gave it, and the CPU it reported). Strict.
 */
export const MeasuredOnSchema = z
  .object({
    /** "this machine", or the server's name. */
    name: z.string().max(200),
    cpu_model: z.string().max(300).nullable(),
    llvm_cpu: z.string().max(100).nullable().optional(),
    hostname: z.string().max(300).nullable().optional(),
    cores: int.nullable().optional(),
    /** Set for a server of a tracker: where it was reached. */
    tracker: z.string().max(300).optional(),
    key: z.string().max(100).optional(),
  })
  .strict();
export type MeasuredOn = z.output<typeof MeasuredOnSchema>;
/** A server of an RPC tracker's key (where a build for another CPU was verified or timed). */
export const RemoteServerSchema = MeasuredOnSchema.required({ tracker: true, key: true });
export type RemoteServer = z.output<typeof RemoteServerSchema>;

export const VerificationSchema = z.looseObject({
  ok: z.boolean(),
  outputs: z.array(OutputCheckSchema),
  checks: z.array(z.looseObject({ ok: z.boolean(), outputs: z.array(OutputCheckSchema), input_shapes: z.array(z.array(int)) })).optional(),
  /** Not run: the code needs CPU features this machine lacks (reason says which). */
  skipped: z.boolean().optional(),
  reason: z.string().optional(),
  /** The same comparison on NaN, ±inf, -0.0, huge, tiny and all-zero inputs, reported apart. */
  edge_values: EdgeValuesSchema.optional(),
  /** Where the build ran, when not here: a server of the tracker key that has the CPU it was built for (inputs and PyTorch's outputs made and compared here). */
  verified_on: RemoteServerSchema.optional(),
});
export type Verification = z.output<typeof VerificationSchema>;

// ---- inspect ----

export const GraphNodeSchema = z.looseObject({
  id: z.string(),
  /** The op, e.g. 'aten::conv2d'; 'input' and 'output' for the graph's ends. */
  op: z.string(),
  /** Inputs only: the argument's name in the TorchScript graph. */
  name: z.string().optional(),
  /** Ids of the nodes whose outputs this node reads. */
  inputs: z.array(z.string()),
  /**
   * Per output: from running the model on the input specs (graph.shapes_for), else where the
   * TorchScript graph records it. A symbolic dim is its symbol or a linear expression of it
   * ('batch', '2*seq', 'h/2'); null where unknown.
   */
  outputs: z.array(z.looseObject({ shape: z.array(z.union([int, z.string()]).nullable()).optional(), dtype: z.string().optional() })).optional(),
  /** The submodule it came from (scope), e.g. 'layer1.0.conv1'. */
  scope: z.string().optional(),
});
export type GraphNode = z.output<typeof GraphNodeSchema>;

export const ModelGraphSchema = z.looseObject({
  nodes: z.array(GraphNodeSchema),
  /** True when the graph was cut at the size limit. */
  truncated: z.boolean().optional(),
  /** The input specs the nodes' output shapes were computed for (absent: no computed shapes). */
  shapes_for: z.array(InputSpecSchema).optional(),
});
export type ModelGraph = z.output<typeof ModelGraphSchema>;

export const InspectedInputSchema = z.looseObject({
  name: z.string(),
  type: z.string(),
  shape: z.array(int).optional(),
  dtype: z.string().optional(),
  /** A .pt2 input's default input spec (dynamic dims as symbols with their ranges). */
  spec: InputSpecSchema.optional(),
});

/** The engine's inspect (and the bench child's libtorch inspect, which adds input_style and metadata_source). */
export const InspectResultSchema = z.looseObject({
  path: z.string(),
  /** "pt2" for a torch.export archive (TorchScript otherwise). */
  format: z.literal('pt2').optional(),
  /** spec: a .pt2 input's default input spec; shape only when all its dims are static. */
  inputs: z.array(InspectedInputSchema),
  ops: z.record(z.string(), int),
  parameters: z.looseObject({ count: int, bytes: int, tensors: int }),
  /** The metadata a workbench export embeds (input specs, target, ...); null for other models. */
  exported: z.record(z.string(), z.unknown()).nullable(),
  /** The model's graph, for the graph view; absent when it could not be read. */
  graph: ModelGraphSchema.optional(),
});
export type InspectResult = z.output<typeof InspectResultSchema>;

// ---- the tuning summary a tune result carries ----

export const TunedTaskSchema = z.looseObject({
  id: int,
  name: z.string(),
  weight: z.number(),
  trials: int,
  errors: int,
  best_ms: msOrNull,
  /** The kernel under the default CPU schedule: what the build runs unless a record beats it. */
  default_ms: msOrNull.optional(),
  /** The op's library kernel timed alone, where it has one. */
  library_ms: msOrNull.optional(),
  /** What the build runs for this task: its best record, or the default schedule. */
  applied: z.enum(['record', 'default']).optional(),
});
export type TunedTask = z.output<typeof TunedTaskSchema>;

export const TuningSummarySchema = z.looseObject({
  trials: int,
  new_trials: int,
  budget: int,
  trials_per_task: int.nullable().optional(),
  tasks: z.array(TunedTaskSchema),
  estimated_ms: msOrNull,
  /** The estimate when this run started, before its first trial (a resume: where the run it resumed ended). */
  first_estimate_ms: msOrNull.optional(),
  measured_ms: msOrNull.optional(),
  work_dir: z.string(),
  resumed_records: int,
  /** This run's record, as the engine keeps it in the work dir (tune/runs.py). */
  run: TuneRunSchema.optional(),
  /** Whether the imported model and its tasks came from the work dir (a resume), and how long getting them took. */
  import: z.looseObject({ reused: z.boolean(), tasks_reused: z.boolean(), seconds: z.number(), cache: z.string().nullable().optional() }).optional(),
  repaired_lines: int.optional(),
  repair: z.record(z.string(), z.unknown()).optional(),
  ignored_records: z.looseObject({ other_kernels: int, other_target: int }).optional(),
  notes: z.array(z.string()),
  tune_s: z.number().optional(),
  wall_s: z.number().optional(),
  /** The estimate after each trial (for the chart of a finished run). */
  curve: z.array(z.looseObject({ total_trials: int, estimated_ms: msOrNull })),
  /** Symbolic dims: the sizes tuned at (name -> size). */
  tuned_at: z.record(z.string(), int).nullable().optional(),
  tuned_at_note: z.string().nullable().optional(),
});
export type TuningSummary = z.output<typeof TuningSummarySchema>;

// ---- compile (and the build a tune ends with) ----

/** Times of an op's candidates, keyed as CANDIDATE_LABELS. */
const candidateTimes = z.looseObject({ library: ms.optional(), tvm: ms.optional(), winograd: ms.optional(), onednn: ms.optional(), torch: ms.optional(), packed: ms.optional(), small_gemm: ms.optional(), direct: ms.optional(), own: ms.optional(), separate: ms.optional() });

export const PlacedOpSchema = z.looseObject({
  /** The op's value name in the compiled graph. */
  name: z.string(),
  /** conv2d | depthwise_conv2d | grouped_conv2d | depthwise_pointwise (a depthwise convolution and the 1x1 one
   * that alone reads it, as one call) | linear | matmul | ... */
  kind: z.string(),
  /** Output shape as compiled (NHWC for library convolutions); symbols as strings. */
  shape: z.array(z.union([z.number(), z.string()])),
  /** What is fused into the call: bias, scale, add (residual), relu, relu6, gelu, silu, ... */
  epilogue: z.array(z.string()),
  func: z.string().optional(),
  /** The library kernel's algorithm where it is not the default, because it timed faster here:
   * 'winograd' (a 3x3 convolution), 'onednn' (a convolution by oneDNN in place of the runtime's
   * own depthwise loop or small GEMM), 'torch' (an LSTM / GRU by torch's kernel, a squeeze-excite
   * block by ATen's ops rather than the runtime's fused loops), 'packed' (a
   * linear or 1x1 convolution by MKL's packed GEMM, its weight packed once), 'small_gemm' (the
   * same by the runtime's own register-blocked GEMM), 'direct' (a convolution with few values
   * per output pixel, such as a stem, by the runtime's own direct loop), 'own' (an op without a library kernel, such as
   * a channels-last GroupNorm or a UNet's up-convolution, or an attention, by the runtime's own
   * kernel rather than PyTorch's). */
  algorithm: z.enum(['winograd', 'onednn', 'torch', 'packed', 'small_gemm', 'direct', 'own']).optional(),
  /** A torchtvm.aten call: the ATen op PyTorch runs for it (it timed faster than TVM's kernel). */
  aten: z.string().optional(),
  where: z.enum(['library', 'tvm', 'torchscript']),
  /** Median time of the call inside a model run (library calls); null where not measured. */
  ms: msOrNull,
  /** ms as a share of the model's TVM p50. */
  share: z.number().nullable(),
  /** Placement auto: the op timed alone, in the model's layout, as its default library call, as
   * TVM's tuned kernel (with a tuning database) and by each other algorithm it has (ALGORITHMS);
   * it runs where it was fastest. */
  alone_ms: candidateTimes.optional(),
  /** Placement auto: where a call ran more than 1.25x slower inside the model than alone (its
   * weights no longer in cache), its time inside model runs with its algorithm and with the one
   * next fastest alone; the faster there (by more than 5%) is the one it runs. */
  context_ms: candidateTimes.optional(),
  /** The submodule the op belongs to (its graph node's scope, e.g. 'layer2.0.conv2'), where the
   * model's graph records it: how the report names the row. */
  scope: z.string().optional(),
  /** The graph node (ModelGraph id, e.g. 'n12') the op came from, where the engine could follow it. */
  node: z.string().optional(),
  /** The graph nodes fused into the call (BatchNorm, residual add, activation). */
  fused: z.array(z.string()).optional(),
});
export type PlacedOp = z.output<typeof PlacedOpSchema>;

/** How the CLI and the app name each candidate of alone_ms, in the order they list them. */
export const CANDIDATE_LABELS: Record<string, string> = {
  // the library call as the default build makes it (for an op without a library kernel of its
  // own: PyTorch's kernel through torchtvm.aten)
  library: 'library',
  // TVM's kernel: tuned where the database has a record, else the default schedule
  tvm: 'TVM',
  winograd: 'Winograd',
  onednn: 'oneDNN',
  torch: "torch's kernel",
  packed: 'MKL packed',
  small_gemm: 'own GEMM',
  direct: 'own direct',
  own: 'own kernel',
  // a depthwise + 1x1 convolution pair run as one call (kind depthwise_pointwise): the two calls it replaces
  separate: 'two calls',
};

/** What each non-default library algorithm is, in a phrase. */
export const ALGORITHM_LABELS: Record<NonNullable<PlacedOp['algorithm']>, string> = {
  winograd: 'Winograd F(4×4, 3×3)',
  onednn: "oneDNN's convolution (not the runtime's own loop)",
  torch: "torch's own kernel (ATen's convolution, its LSTM/GRU, ATen's ops for a squeeze-excite block), not the runtime's",
  packed: "MKL's packed GEMM (the weight packed once)",
  small_gemm: "the runtime's own register-blocked GEMM (the weight packed once), not MKL's",
  direct: "the runtime's own direct convolution (few values per output pixel, such as a stem), not oneDNN's",
  own: "the runtime's own kernel (a channels-last GroupNorm, a UNet's up-convolution, attention), not PyTorch's",
};

export const PlacementSchema = z.looseObject({
  mode: z.enum(['auto', 'library', 'tvm']),
  ops: z.array(PlacedOpSchema),
  library_ops: int,
  tvm_ops: int,
  /** Sum of the library calls' times, and the rest of the model's p50 (TVM's own kernels). */
  library_ms: msOrNull,
  tvm_ms: msOrNull,
  total_ms: msOrNull,
  /** The profiled run's own median: the parts are its shares, scaled to total_ms (parts_of 'p50'),
   * so that they add up to the total shown; 'profiled run' when nothing was measured. */
  profiled_ms: ms.optional(),
  parts_of: z.enum(['p50', 'profiled run']).optional(),
  /** How auto placed the ops: which convolutions run as Winograd and, with a tuning database, whether
   * moving ops to TVM beat the default. */
  note: z.string().optional(),
  /** Per-op placement against the untuned default (the library everywhere, Winograd where it timed
   * faster; `library_ms`), fastest of interleaved model runs: the faster is kept, so a tuned build
   * is never slower than the untuned default. Only `kept: false` where every op stayed in the library. */
  per_op: z.looseObject({ kept: z.boolean(), per_op_ms: ms.optional(), library_ms: ms.optional() }).optional(),
  /** The engine's table of placement kind -> the graph ops (TorchScript and torch.export names, e.g.
   * "aten::conv2d") it can come from: the graph view matches an op that names no `node` to the nodes
   * of its family by order. Absent in results of older engines (match by `node` only). */
  source_ops: z.record(z.string(), z.array(z.string())).optional(),
});
export type Placement = z.output<typeof PlacementSchema>;

export const CompileCoverageSchema = z.looseObject({
  /** graph: runs of importable ops (loop and branch bodies included) were compiled; module: whole submodule calls. */
  level: z.enum(['graph', 'module']).optional(),
  ops_total: int,
  ops_compiled: int,
  time_share_compiled: z.number(),
  torchscript_ms: ms.optional(),
  /** Graph level: each segment's block, aten ops, and whether it runs in TVM. */
  segments: z.array(z.looseObject({ name: z.string(), where: z.string(), ops: z.array(z.string()), compiled: z.boolean(), reason: z.string().optional(), torchscript_ms: ms.optional() })).optional(),
  /** One row per segment ("segment0 (loop body: cat, linear, tanh)") or submodule. */
  modules: z.array(z.looseObject({ name: z.string(), compiled: z.boolean(), reason: z.string().optional() })),
});
export type CompileCoverage = z.output<typeof CompileCoverageSchema>;

export const TargetInfoSchema = z.looseObject({
  kind: z.string(),
  mcpu: z.string().nullable(),
  features: z.array(z.string()),
  /** TVM's target: its JSON config, or its string where it is not JSON. */
  target: z.unknown().optional(),
});

/**
 * A build's identity (engine deploy/builds.py): compile and tune write a build folder holding the
 * library, the packaged .pt (model.pt) and build.json; `id` is the first 12 hex digits of the
 * package's SHA-256. An export copies that package byte for byte.
 */
export const BuildInfoSchema = z.looseObject({
  id: z.string(),
  sha256: z.string(),
  library_sha256: z.string().nullable(),
  dir: z.string(),
  package: z.string(),
  created_at: z.string(),
  tuned: z.boolean(),
  /** A partly compiled model (TorchScript around compiled parts). */
  partial: z.boolean(),
});
export type BuildInfo = z.output<typeof BuildInfoSchema>;

const TensorSummarySchema = z.looseObject({ min: metric, max: metric, mean: metric, std: metric, nonfinite: int });

/** One kernel call of a build against PyTorch's value for the same node (compare_ops). */
export const OpComparisonRowSchema = z.looseObject({
  /** The value's name in the compiled graph: for a library call, the placement report's op name. */
  op: z.string(),
  /** The placement kind of a library call (conv2d, linear, ...), else the node's aten op (relu, mean, view, ...). */
  kind: z.string(),
  /** The graph node (ModelGraph id) it came from, its submodule, and the nodes fused into the call. */
  node: z.string().optional(),
  scope: z.string().optional(),
  fused: z.array(z.string()).optional(),
  where: z.enum(['library', 'tvm']),
  /** What the VM called: a fused TVM kernel (PrimFunc) or a runtime function (torchtvm.conv2d). */
  kernel: z.string(),
  /** PyTorch's shape and dtype of the value (the model's layout). */
  shape: z.array(int),
  dtype: z.string(),
  /** 'channels-last': the build keeps it NHWC; compared after moving the channels back. */
  layout: z.string().optional(),
  max_abs: metric,
  max_rel: metric,
  /** Positions where one side has NaN or an infinity (of either sign) and the other has not. */
  nan_inf_mismatches: int,
  ok: z.boolean(),
  atol: z.number().optional(),
  rtol: z.number().optional(),
  /** The largest finite magnitude of PyTorch's tensor: the row is within tolerance when max_abs <= atol + rtol x scale. */
  scale: metric.optional(),
  /** Both tensors' min, max, mean and standard deviation over their finite values, and how many values are not finite. */
  stats: z.looseObject({ reference: TensorSummarySchema, build: TensorSummarySchema }).optional(),
  /** The absolute difference where both are finite: counts in equal bins from 0 to max (16 bins). */
  diff_histogram: z.looseObject({ max: z.number(), counts: z.array(int) }).optional(),
  reason: z.string().optional(),
  /** The call's median time alone (ms, a few runs under a hook that reads the clock around each
   * call): TVM's kernels as well as library calls. On the first row of a call with several outputs. */
  ms: ms.optional(),
});
export type OpComparisonRow = z.output<typeof OpComparisonRowSchema>;

export const OpComparisonSchema = z.looseObject({
  /** In run order: errors propagate, so the first op past the tolerance is the one to look at. */
  ops: z.array(OpComparisonRowSchema),
  /** The `op` of the first row past the tolerance, or null when every op is within it. */
  first_failing: z.string().nullable(),
  tolerance: z.looseObject({ rule: z.string(), by_dtype: z.record(z.string(), z.looseObject({ atol: z.number(), rtol: z.number() })) }).optional(),
  /** Kernel calls no node of the model computes (layout transforms a pass added), with why. */
  unmapped: z.array(z.looseObject({ kernel: z.string(), where: z.string(), value: z.string().nullable().optional(), reason: z.string() })).optional(),
  /** The input shapes both sides ran at. */
  inputs: z.array(z.array(int)).optional(),
  note: z.string(),
});
export type OpComparison = z.output<typeof OpComparisonSchema>;

export const CompileResultSchema = z.looseObject({
  model: z.string(),
  inputs: z.array(InputSpecSchema),
  target: TargetInfoSchema,
  num_outputs: int,
  timings_s: z.looseObject({ import: z.number(), build: z.number() }),
  verification: VerificationSchema,
  threads: int,
  /** The build this result describes (absent in results of older versions and of the seed API). */
  build: BuildInfoSchema.optional(),
  files: z.looseObject({ library: z.string().optional(), partitioned: z.string().optional(), package: z.string().optional(), record: z.string().optional(), exported: z.string().optional() }),
  /** Module-level fallback: why the whole model did not import (code and sentence). */
  fallback: z.looseObject({ reason: z.string(), code: z.string() }).optional(),
  /** Fallback: what got compiled and what stayed in TorchScript. */
  coverage: CompileCoverageSchema.optional(),
  /** Same process, same threads, interleaved rounds; ratio = TVM p50 / TorchScript p50 (null
   * when TorchScript's p50 is 0). The baseline a build must not be slower than is TorchScript
   * frozen (torch.jit.freeze + optimize_for_inference) where the model freezes; baseline_ratio =
   * TVM p50 / the baseline's p50. Records written before the baseline existed lack those fields. */
  latency_ms: z.looseObject({
    torch: LatencyStatsSchema,
    tvm: LatencyStatsSchema,
    /** The sizes of the symbolic dims the latencies were measured at ({batch: 1}). */
    sizes: z.record(z.string(), int).optional(),
    ratio: z.number().nullable(),
    torch_frozen: LatencyStatsSchema.optional(),
    baseline: z.string().optional(),
    baseline_ratio: z.number().nullable().optional(),
    baseline_note: z.string().optional(),
    /** Where both were timed, when not here: a server of the tracker key (a build this machine cannot run). */
    measured_on: RemoteServerSchema.optional(),
  }).optional(),
  /** Present when the build is slower than its baseline (by more than 3%): by how much, and the
   * kernels that take most of its time. */
  slower: z.looseObject({
    ratio: z.number(),
    baseline: z.string(),
    tvm_ms: z.number(),
    baseline_ms: z.number(),
    costliest: z.array(z.looseObject({ kernel: z.string(), ms: z.number(), calls: z.number(), share: z.number() })),
    message: z.string(),
  }).optional(),
  /** Where each heavy op runs (library kernel or TVM) and, for library calls, how long it takes. */
  placement: PlacementSchema.optional(),
  /** Each op of the build against PyTorch's value for the same node: only when compare_ops was asked. */
  op_comparison: OpComparisonSchema.optional(),
  /** Why an export was not written (verification failed or could not run). */
  export_skipped: z.string().optional(),
  /** A tune job's summary (present on tune results only). */
  tuning: TuningSummarySchema.optional(),
});
export type CompileResult = z.output<typeof CompileResultSchema>;

/** A tune job's result: the build with the records, and the tuning summary. */
export const TuneResultSchema = CompileResultSchema.extend({ tuning: TuningSummarySchema });
export type TuneResult = z.output<typeof TuneResultSchema>;

// ---- bench: the addon's result (bench child -> core) and the bench job's result (core -> UI, CLI) ----

export const AddonStatsSchema = z.looseObject({ min: ms, max: ms, mean: ms, p50: ms, p90: ms, p99: ms, stddev: ms, runs: int });
export type AddonStats = z.output<typeof AddonStatsSchema>;

export const BenchInputSchema = z.looseObject({ name: z.string(), shape: z.array(int), dtype: z.string() });

/** Where the bench child took the input specs from: the request, the model's recorded shapes, or its export metadata. */
export const InputsFromSchema = z.enum(['request', 'model', 'metadata']);

/** What the addon's benchmark() resolves with (native/addon/src/addon.cc), plus the child's inputs_from. */
export const AddonBenchResultSchema = z.looseObject({
  threads: int,
  iterations: int,
  cancelled: z.boolean(),
  inputs: z.array(BenchInputSchema),
  models: z.array(
    z.looseObject({
      path: z.string(),
      input_style: z.enum(['list', 'positional']),
      first_ms: ms,
      stats: AddonStatsSchema,
      bare_mean_ms: ms.optional(),
    }),
  ),
  /** Added by the child: where the input specs came from. */
  inputs_from: InputsFromSchema.optional(),
});
export type AddonBenchResult = z.output<typeof AddonBenchResultSchema>;

/** first_ms (the first call, before the warm-up) and input_style (how the model was called) come from this machine's bench host; a tracker's server reports neither. */
export const BenchStatsSchema = LatencyStatsSchema.extend({ max: ms, first_ms: ms.optional(), input_style: z.string().optional() });
export type BenchStats = z.output<typeof BenchStatsSchema>;

/** What a bench job returns (the CLI's --json result). */
export const BenchResultSchema = z.looseObject({
  /** Where it was measured: this machine, or a tracker's server (absent: runs recorded before issue 25, all local). */
  measured_on: MeasuredOnSchema.optional(),
  model: z.string(),
  vs: z.string().optional(),
  threads: int,
  warmup: int,
  iterations: int,
  cancelled: z.boolean(),
  inputs: z.array(BenchInputSchema),
  inputs_from: InputsFromSchema.optional(),
  /** The model's statistics, in ms. */
  stats: BenchStatsSchema,
  /** The --vs model's statistics, in ms. */
  vs_stats: BenchStatsSchema.optional(),
  /** p50(model) / p50(vs): below 1 means the model is faster than the one it is compared with. */
  ratio: z.number().optional(),
  /** SHA-256 of each file benchmarked: an export's is its build's id (BuildInfo.sha256), as exports are copies of a build's package. */
  model_sha256: z.string().optional(),
  vs_sha256: z.string().optional(),
  /** A sweep's measurements (request.sweep); then `stats` and `inputs` are its first size's. */
  sweep: z
    .looseObject({
      symbol: z.string(),
      /** The input specs swept (the symbol's dimension takes each size in turn). */
      specs: z.array(InputSpecSchema),
      points: z.array(
        z.looseObject({
          size: int,
          stats: BenchStatsSchema,
          /** size × 1000 / p50: samples a second, one call after another. */
          throughput_per_s: z.number(),
          inputs: z.array(BenchInputSchema),
        }),
      ),
      /** The limit on p50, in ms, as requested. */
      latency_limit_ms: z.number().optional(),
      /** The size with the highest throughput whose p50 is within the limit (without a limit: the highest throughput); absent when none is. */
      best: z.looseObject({ size: int, p50: ms, throughput_per_s: z.number() }).optional(),
      /** A sentence when no size meets the limit. */
      note: z.string().optional(),
    })
    .optional(),
});
export type BenchResult = z.output<typeof BenchResultSchema>;

/** The engine's bench_remote (torchtvm.remote.bench.bench_remote via service/methods.py): one model timed on a tracker's server. */
export const RemoteBenchResultSchema = z.looseObject({
  p50: ms,
  p90: ms,
  p99: ms,
  mean: ms,
  min: ms,
  max: ms,
  runs: int,
  warmup: int,
  threads: int,
  /** The shapes timed (each symbolic size at its sample). */
  inputs: z.array(BenchInputSchema),
  inputs_from: InputsFromSchema.optional(),
  model: z.string(),
  tracker: z.string(),
  key: z.string(),
  measured_on: z.looseObject({
    name: z.string(),
    cpu_model: z.string().nullable().optional(),
    llvm_cpu: z.string().nullable().optional(),
    hostname: z.string().nullable().optional(),
    cores: int.nullable().optional(),
  }),
});
export type RemoteBenchResult = z.output<typeof RemoteBenchResultSchema>;
export type BenchSweepResult = NonNullable<BenchResult['sweep']>;
export type BenchSweepPoint = BenchSweepResult['points'][number];

// ---- the tuning-log reader (engine `tuning_log` -> core -> UI, CLI `log`) ----

export const TuningLogTaskSchema = z.looseObject({
  workload: int,
  hash: z.string(),
  name: z.string(),
  weight: z.number().nullable(),
  records: int,
  failures: int,
  best_ms: msOrNull,
  /** The default schedule's and the library kernel's times the tune kept in the work dir (estimate). */
  default_ms: msOrNull.optional(),
  library_ms: msOrNull.optional(),
  /** Best-so-far after each record, in file order (null until one succeeds). */
  curve: z.array(msOrNull),
});
export type TuningTask = z.output<typeof TuningLogTaskSchema>;

export const TuningLogSchema = z.looseObject({
  dir: z.string(),
  tasks: z.array(TuningLogTaskSchema),
  records: int,
  failures: int,
  /** The tune's estimate (tune/estimate.py): Σ weight × (best record or default schedule, or the
   * library kernel where faster) over the tasks the workbench weighed; null when one has no time. */
  estimated_ms: msOrNull,
  skipped: z.looseObject({ workload_lines: int, record_lines: int, reasons: z.array(z.string()) }),
  targets: z.array(z.string()),
  model: z.string().nullable(),
  named_by: z.enum(['workbench', 'parsed', 'index']),
  /** The workbench's record of each tuning run in this work dir, oldest first (absent: older engines). */
  runs: z.array(TuneRunSchema).optional(),
});
export type TuningLog = z.output<typeof TuningLogSchema>;

const sideSchema = z.looseObject({ records: int, best_ms: msOrNull });
export const LogComparisonSchema = z.looseObject({
  a: z.looseObject({ dir: z.string(), records: int, estimated_ms: msOrNull }),
  b: z.looseObject({ dir: z.string(), records: int, estimated_ms: msOrNull }),
  tasks: z.array(
    z.looseObject({
      key: z.string(),
      name: z.string(),
      a: sideSchema.nullable(),
      b: sideSchema.nullable(),
      /** b's best / a's best: below 1 means b is faster. */
      ratio: z.number().nullable(),
    }),
  ),
  only_in_a: int,
  only_in_b: int,
});
export type LogComparison = z.output<typeof LogComparisonSchema>;
export type TaskComparison = LogComparison['tasks'][number];
