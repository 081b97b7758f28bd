// Job requests, their events and outcomes: one schema per message, used to validate every payload
// that crosses a process boundary (IPC, WebSocket, engine stdio) and to type it.
import { z } from 'zod';
import { ErrorInfoSchema, parseWire } from './errors.js';
import { BenchResultSchema, CompileResultSchema, InspectResultSchema, TuneResultSchema } from './results.js';
import { InputSpecSchema } from './specs.js';

const path = z.string().min(1).max(4096);
const target = z.string().min(1).max(2000).default('llvm');
const threads = z.number().int().min(1).max(1024).optional();
/** The most inputs a model may be described with: the engine's limit too (common/specs.py MAX_INPUTS). */
export const MAX_INPUTS = 1024;
const inputSpecs = z.array(InputSpecSchema).max(MAX_INPUTS, `at most ${MAX_INPUTS} inputs can be described`);

/** A job's time limit when its request names none, by kind (seconds): past it the job is stopped and fails with timed_out. */
export const DEFAULT_TIMEOUT_S = { inspect: 600, compile: 3600, tune: 24 * 3600, export: 600, bench: 3600 } as const;
/** An RPC tracker's HOST:PORT and a key of its servers, as the tune request takes them (issue 25). */
const trackerAddress = z.string().regex(/^.+:\d{1,5}$/).max(300);
const rpcKey = z.string().regex(/^[A-Za-z0-9_.-]+$/).max(100);
/** Seconds a job may run before it is stopped (default: DEFAULT_TIMEOUT_S of its kind); the CLI's --timeout. */
const timeout_s = z.number().int().min(1).max(7 * 24 * 3600).optional();

export const InspectRequestSchema = z.object({
  kind: z.literal('inspect'),
  model: path,
  timeout_s,
  /** Input specs to run the model on (fake tensors) so that the graph's ops show their output shapes and dtypes; without them, the model's own where it states them. */
  inputs: inputSpecs.optional(),
});

export const CompileRequestSchema = z.object({
  kind: z.literal('compile'),
  model: path,
  timeout_s,
  /** One spec per model input; may be empty for a torch.export .pt2, whose own shapes, dynamic dims and ranges are then used. */
  inputs: inputSpecs,
  target,
  threads,
  /** Where the build and its artifacts go; defaults to the model's project folder. */
  out_dir: path.optional(),
  /** Write the deployable .pt here (atomically). */
  export_path: path.optional(),
  /** Measure TVM and TorchScript latency after verifying. */
  measure: z.boolean().default(true),
  /**
   * Fallback is the default: when the whole model does not import, the parts that do compile and
   * the rest stays in TorchScript. `fallback: false` or `strict: true` asks for all or nothing
   * (the job fails naming every unsupported op or construct).
   */
  fallback: z.boolean().optional(),
  strict: z.boolean().optional(),
  /**
   * Where conv2d / linear / matmul run: `auto` (default: the library kernels, oneDNN and MKL, where
   * they have one; after tuning, whichever of library and tuned TVM kernels is faster), `library`,
   * or `tvm` (TVM's own kernels only, for comparison).
   */
  placement: z.enum(['auto', 'library', 'tvm']).optional(),
  /** Export although verification failed or could not run here (a build for another CPU): the CLI's --export-unverified. */
  export_unverified: z.boolean().optional(),
  /**
   * The folders the job may write in, checked again by the engine at each write (a folder swapped
   * for a symlink after the job started must not take the export outside). Set by `torchtvm serve`
   * to its own allowed folders, replacing any a client sent; absent elsewhere (nothing restricted).
   */
  write_roots: z.array(path).max(64).optional(),
  /** Export although the edge-value pass (NaN, inf, -0.0, huge and tiny inputs) found outputs that differ from PyTorch's: the CLI's --accept-edge-mismatch. */
  accept_edge_mismatch: z.boolean().optional(),
  /**
   * Compare each op of the build with PyTorch's value for the same node, node by node, on the
   * verification's random inputs (result: op_comparison): the CLI's --compare-ops. On request only;
   * it runs the model once more in PyTorch and the build once under the VM's instrument hook.
   */
  compare_ops: z.boolean().optional(),
  /**
   * The user confirmed replacing export_path although it is the source model or a file the workbench
   * did not write (the CLI's --force). Without it such a job is refused before building
   * (error codes export_is_source, export_exists).
   */
  overwrite: z.boolean().optional(),
  /** Create missing parent folders of export_path, out_dir and work_dir (the CLI's --mkdir); without it: error folder_missing. */
  create_parent: z.boolean().optional(),
  /**
   * An RPC tracker (HOST:PORT) and a key of its servers (issue 25): where this machine cannot run
   * the build (a target for another CPU) and the key's servers can, the build is verified and timed
   * on one of them (result: verification.verified_on, latency_ms.measured_on). Without a target
   * the build is for their CPU. A tune measures its trials there. Both or neither.
   */
  tracker: z.string().regex(/^.+:\d{1,5}$/).max(300).optional(),
  key: z.string().regex(/^[A-Za-z0-9_.-]+$/).max(100).optional(),
});

export const TuneRequestSchema = CompileRequestSchema.extend({
  kind: z.literal('tune'),
  trials: z.number().int().min(1).max(100000),
  trials_per_task: z.number().int().min(1).max(100000).optional(),
  /** Candidates measured per search round (the engine picks up to 16): smaller rounds stream trials sooner. */
  trials_per_iter: z.number().int().min(1).max(64).optional(),
  /** The MetaSchedule work dir (database, imported model); defaults to the model's project folder. */
  work_dir: path.optional(),
  /** Sizes to tune symbolic dims at (name -> size within its range); default: each symbol's sample size. */
  tune_sizes: z.record(z.string(), z.number().int().min(1)).optional(),
  /** Measure the trials on an RPC tracker's servers (HOST:PORT) of `key`; the target is their CPU; builds stay here. */
  tracker: z.string().regex(/^.+:\d{1,5}$/).max(300).optional(),
  key: z.string().regex(/^[A-Za-z0-9_.-]+$/).max(100).optional(),
});

/**
 * Exports a build (a build folder that a compile or tune wrote): its packaged .pt is copied to
 * export_path byte for byte; nothing is imported, placed or built again. The result is the build's
 * own result (verification, latency, placement) with files.exported, or export_skipped.
 */
export const ExportRequestSchema = z.object({
  kind: z.literal('export'),
  /** The model the build was made from (the run belongs to it; the export may not replace it). */
  model: path,
  build: path,
  export_path: path,
  timeout_s,
  export_unverified: z.boolean().optional(),
  accept_edge_mismatch: z.boolean().optional(),
  overwrite: z.boolean().optional(),
  create_parent: z.boolean().optional(),
  write_roots: z.array(path).max(64).optional(),
});

/** The most sizes one batch sweep measures. */
export const MAX_SWEEP_SIZES = 32;

/**
 * A sweep over a symbolic dimension (issue 24): the model is measured at each size, one benchmark
 * per size, on the one module. The limit applies to each size's p50.
 */
export const BenchSweepRequestSchema = z.object({
  /** The symbol to sweep; default: the one named batch, else the first symbolic dimension of the inputs. */
  symbol: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a symbol is a name like batch or seq').optional(),
  /** The sizes; default: every size when the symbol's range holds at most 8, else its lower bound, the powers of two inside it and its upper bound. */
  sizes: z.array(z.number().int().min(1).max(1 << 20)).min(1).max(MAX_SWEEP_SIZES, `at most ${MAX_SWEEP_SIZES} sizes`).optional(),
  /** The best size is the one with the highest throughput whose p50 is at most this. */
  latency_limit_ms: z.number().positive().finite().optional(),
});
export type BenchSweepRequest = z.output<typeof BenchSweepRequestSchema>;

export const BenchRequestSchema = z
  .object({
    kind: z.literal('bench'),
    model: path,
    timeout_s,
    /** Interleave with a second model and report the ratio of medians. */
    vs: path.optional(),
    inputs: inputSpecs.optional(),
    warmup: z.number().int().min(0).max(10000).default(10),
    iterations: z.number().int().min(1).max(1000000).default(100),
    threads,
    /** Measure at each size of a symbolic dimension instead of once (not with vs). */
    sweep: BenchSweepRequestSchema.optional(),
    /**
     * Benchmark on a server of `key` at this RPC tracker (HOST:PORT) instead of here (issue 25): the
     * model is uploaded, timed there, and the result's measured_on names the server. Both or neither;
     * not with vs or sweep.
     */
    tracker: trackerAddress.optional(),
    key: rpcKey.optional(),
  })
  .refine((r) => !(r.sweep && r.vs), { message: 'a sweep measures one model: leave out vs (compare two models without a sweep)', path: ['sweep'] })
  .refine((r) => (r.tracker === undefined) === (r.key === undefined), { message: 'tracker and key go together: give both to benchmark on a server of the key, or neither to benchmark on this machine', path: ['key'] })
  .refine((r) => r.tracker === undefined || (r.vs === undefined && r.sweep === undefined), { message: 'a benchmark on a tracker\'s server measures one model: leave out vs and sweep (compare two models, or sweep, on this machine)', path: ['tracker'] });

export const JobRequestSchema = z.discriminatedUnion('kind', [
  InspectRequestSchema,
  CompileRequestSchema,
  TuneRequestSchema,
  ExportRequestSchema,
  BenchRequestSchema,
]);
export type JobRequest = z.input<typeof JobRequestSchema>;
export type ParsedJobRequest = z.output<typeof JobRequestSchema>;
export type JobKind = JobRequest['kind'];
export type InspectRequest = z.output<typeof InspectRequestSchema>;
export type CompileRequest = z.output<typeof CompileRequestSchema>;
export type TuneRequest = z.output<typeof TuneRequestSchema>;
export type BenchRequest = z.output<typeof BenchRequestSchema>;

/**
 * Request keys before the wire became snake_case end to end (old name -> name). Run records
 * (runs/<job>/request.json, run.json) written by older versions hold the old names.
 */
export const LEGACY_REQUEST_KEYS = {
  outDir: 'out_dir',
  exportPath: 'export_path',
  createParent: 'create_parent',
  trialsPerTask: 'trials_per_task',
  trialsPerIter: 'trials_per_iter',
  workDir: 'work_dir',
  tuneSizes: 'tune_sizes',
} as const;

/** A stored request with its legacy camelCase keys renamed (a key already under its new name wins); anything else is returned as is. */
export function upgradeStoredRequest(raw: unknown): unknown {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const renamed = Object.hasOwn(LEGACY_REQUEST_KEYS, k) ? LEGACY_REQUEST_KEYS[k as keyof typeof LEGACY_REQUEST_KEYS] : k;
    if (renamed !== k && Object.hasOwn(raw, renamed)) continue;
    out[renamed] = v;
  }
  return out;
}

export const JobStateSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobStateSchema>;

// ---- events: one stream, the same over IPC, WebSocket and the engine's stdio ----
// Engine-sent data objects are loose: a key a newer engine adds passes through to the UI and the run
// record; the keys listed are checked where the event enters app/core.

export const JobStateDataSchema = z.object({ state: JobStateSchema, kind: z.string() });

export const ProgressDataSchema = z.looseObject({
  stage: z.string(),
  message: z.string(),
  fraction: z.number().min(0).max(1).optional(),
});

export const TrialDataSchema = z.looseObject({
  task_id: z.number().int(),
  task_name: z.string(),
  trial: z.number().int(),
  /** Total trials measured so far, across tasks. */
  total_trials: z.number().int(),
  latency_ms: z.number().nullable(),
  error: z.string().nullable().optional(),
  best_ms: z.number().nullable(),
  estimated_total_ms: z.number().nullable(),
  /** The engine's clock (Unix seconds) when the trial was recorded: the ETA uses this run's own rate. */
  time_s: z.number().optional(),
  /** The server that measured it, for a tune over an RPC tracker (its --name, else HOST:PORT). */
  server: z.string().nullable().optional(),
});
export type TrialData = z.output<typeof TrialDataSchema>;

export const TasksDataSchema = z.looseObject({
  tasks: z.array(
    z.looseObject({
      id: z.number().int(),
      name: z.string(),
      weight: z.number(),
      /** The kernel under the default CPU schedule (what the build runs unless a record beats it). */
      default_ms: z.number().nullable().optional(),
      /** The op's library kernel timed alone, where it has one. */
      library_ms: z.number().nullable().optional(),
      /** Records of this task already in the work dir (a resume), and the best of them. */
      records: z.number().int().optional(),
      best_ms: z.number().nullable().optional(),
    }),
  ),
  /** The work dir's total trial budget, and the records it already held when this run started. */
  budget: z.number().int().optional(),
  resumed_records: z.number().int().optional(),
  /** The estimate before this run's first trial (a resume: where the run it resumed ended). */
  estimated_ms: z.number().nullable().optional(),
});

export const BenchSampleDataSchema = z.object({
  model: z.string(),
  iteration: z.number().int(),
  latency_ms: z.number(),
});

export const LogDataSchema = z.looseObject({ level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string() });

const jobId = z.string().min(1);
export const JobStateEventSchema = z.object({ event: z.literal('job.state'), job: jobId, data: JobStateDataSchema });
export const ProgressEventSchema = z.object({ event: z.literal('job.progress'), job: jobId, data: ProgressDataSchema });
export const TrialEventSchema = z.object({ event: z.literal('tune.trial'), job: jobId, data: TrialDataSchema });
export const TasksEventSchema = z.object({ event: z.literal('tune.tasks'), job: jobId, data: TasksDataSchema });
export const BenchSampleEventSchema = z.object({ event: z.literal('bench.sample'), job: jobId, data: BenchSampleDataSchema });
export const LogEventSchema = z.object({ event: z.literal('log'), job: jobId, data: LogDataSchema });

/** Every job event, by name. */
export const JOB_EVENT_SCHEMAS = {
  'job.state': JobStateEventSchema,
  'job.progress': ProgressEventSchema,
  'tune.trial': TrialEventSchema,
  'tune.tasks': TasksEventSchema,
  'bench.sample': BenchSampleEventSchema,
  log: LogEventSchema,
} as const;

export const JobEventSchema = z.discriminatedUnion('event', [JobStateEventSchema, ProgressEventSchema, TrialEventSchema, TasksEventSchema, BenchSampleEventSchema, LogEventSchema]);
export type JobEvent = z.output<typeof JobEventSchema>;
export type JobEventName = JobEvent['event'];
/** An event as a runner emits it: the job manager adds the job id. (Omit distributed over the union.) */
export type JobEventBody = JobEvent extends infer E ? (E extends unknown ? Omit<E, 'job'> : never) : never;

/** The events the Python engine sends for a job (core makes job.state; the bench host, bench.sample). */
export const ENGINE_JOB_EVENTS = ['job.progress', 'tune.trial', 'tune.tasks', 'log'] as const satisfies readonly JobEventName[];
/** One of the events the engine sends for a job, checked as it arrives from the engine's stdout. */
export const EngineJobEventSchema = z.discriminatedUnion('event', [ProgressEventSchema, TrialEventSchema, TasksEventSchema, LogEventSchema]);
export type EngineJobEvent = z.output<typeof EngineJobEventSchema>;

export function isEngineJobEvent(name: string): name is EngineJobEvent['event'] {
  return (ENGINE_JOB_EVENTS as readonly string[]).includes(name);
}

// ---- results and outcomes ----

/** Each job kind's result schema. */
export const JOB_RESULT_SCHEMAS = {
  inspect: InspectResultSchema,
  compile: CompileResultSchema,
  tune: TuneResultSchema,
  export: CompileResultSchema,
  bench: BenchResultSchema,
} as const;
export type JobResultOf<K extends JobKind> = z.output<(typeof JOB_RESULT_SCHEMAS)[K]>;

/** Any job's result (outcomes do not name their kind: a tune result is tried first, as it is also a compile result). */
export const JobResultSchema = z.union([TuneResultSchema, CompileResultSchema, InspectResultSchema, BenchResultSchema]);
export type JobResult = z.output<typeof JobResultSchema>;

/** A job's result as its kind's schema types it; throws a WorkbenchError (bad_result) naming the first issues when it does not parse. */
export function parseJobResult<K extends JobKind>(kind: K, result: unknown): JobResultOf<K> {
  return parseWire(JOB_RESULT_SCHEMAS[kind], result, 'bad_result', `The ${kind} result`) as JobResultOf<K>;
}

function outcomeSchema<R extends z.ZodType>(result: R) {
  return z.discriminatedUnion('state', [
    z.object({ state: z.literal('succeeded'), job: z.string(), result }),
    z.object({ state: z.literal('failed'), job: z.string(), error: ErrorInfoSchema }),
    z.object({ state: z.literal('cancelled'), job: z.string(), result: result.optional() }),
  ]);
}

export const JobOutcomeSchema = outcomeSchema(JobResultSchema);
export type JobOutcome = z.output<typeof JobOutcomeSchema>;

/** The outcome schema of one job kind (a run record names its kind, so its outcome is checked against that kind's result). */
export function jobOutcomeSchema(kind: JobKind) {
  return outcomeSchema(JOB_RESULT_SCHEMAS[kind]);
}
