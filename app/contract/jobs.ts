// Job requests, their events and outcomes: one schema per message, used to validate every payload
// that crosses a process boundary (IPC, WebSocket, engine stdio) and to type it.
import { z } from 'zod';
import { ErrorInfoSchema } from './errors.js';
import { InputSpecSchema } from './specs.js';

const path = z.string().min(1).max(4096);
const target = z.string().min(1).max(2000).default('llvm');
const threads = z.number().int().min(1).max(1024).optional();

export const InspectRequestSchema = z.object({
  kind: z.literal('inspect'),
  model: path,
  /** Input specs to run the model on (fake tensors) so that the graph's ops show their output shapes and dtypes; without them, the model's own where it states them. */
  inputs: z.array(InputSpecSchema).max(64).optional(),
});

export const CompileRequestSchema = z.object({
  kind: z.literal('compile'),
  model: path,
  /** One spec per model input; may be empty for a torch.export .pt2, whose own shapes, dynamic dims and ranges are then used. */
  inputs: z.array(InputSpecSchema).max(64),
  target,
  threads,
  /** Where the build and its artifacts go; defaults to the model's project folder. */
  outDir: path.optional(),
  /** Write the deployable .pt here (atomically). */
  exportPath: path.optional(),
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
  /**
   * The user confirmed replacing exportPath although it is the source model or a file the workbench
   * did not write (the CLI's --force). Without it such a job is refused before building
   * (error codes export_is_source, export_exists).
   */
  overwrite: z.boolean().optional(),
  /** Create missing parent folders of exportPath, outDir and workDir (the CLI's --mkdir); without it: error folder_missing. */
  createParent: z.boolean().optional(),
});

export const TuneRequestSchema = CompileRequestSchema.extend({
  kind: z.literal('tune'),
  trials: z.number().int().min(1).max(100000),
  trialsPerTask: z.number().int().min(1).max(100000).optional(),
  /** Candidates measured per search round (the engine picks up to 16): smaller rounds stream trials sooner. */
  trialsPerIter: z.number().int().min(1).max(64).optional(),
  workDir: path.optional(),
  /** Sizes to tune symbolic dims at (name -> size within its range); default: each symbol's sample size. */
  tuneSizes: z.record(z.string(), z.number().int().min(1)).optional(),
});

export const BenchRequestSchema = z.object({
  kind: z.literal('bench'),
  model: path,
  /** Interleave with a second model and report the ratio of medians. */
  vs: path.optional(),
  inputs: z.array(InputSpecSchema).max(64).optional(),
  warmup: z.number().int().min(0).max(10000).default(10),
  iterations: z.number().int().min(1).max(1000000).default(100),
  threads,
});

export const JobRequestSchema = z.discriminatedUnion('kind', [
  InspectRequestSchema,
  CompileRequestSchema,
  TuneRequestSchema,
  BenchRequestSchema,
]);
export type JobRequest = z.input<typeof JobRequestSchema>;
export type ParsedJobRequest = z.output<typeof JobRequestSchema>;
export type JobKind = JobRequest['kind'];
export type InspectRequest = z.output<typeof InspectRequestSchema>;
export type CompileRequest = z.output<typeof CompileRequestSchema>;
export type TuneRequest = z.output<typeof TuneRequestSchema>;
export type BenchRequest = z.output<typeof BenchRequestSchema>;

export const JobStateSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobStateSchema>;

// ---- events: one stream, the same over IPC, WebSocket and the engine's stdio ----

export const ProgressDataSchema = z.object({
  stage: z.string(),
  message: z.string(),
  fraction: z.number().min(0).max(1).optional(),
});

export const TrialDataSchema = z.object({
  task_id: z.number().int(),
  task_name: z.string(),
  trial: z.number().int(),
  /** Total trials measured so far, across tasks. */
  total_trials: z.number().int(),
  latency_ms: z.number().nullable(),
  error: z.string().nullable().optional(),
  best_ms: z.number().nullable(),
  estimated_total_ms: z.number().nullable(),
});
export type TrialData = z.infer<typeof TrialDataSchema>;

export const BenchSampleDataSchema = z.object({
  model: z.string(),
  iteration: z.number().int(),
  latency_ms: z.number(),
});

export const LogDataSchema = z.object({ level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string() });

export const JobEventSchema = z.discriminatedUnion('event', [
  z.object({ event: z.literal('job.state'), job: z.string(), data: z.object({ state: JobStateSchema, kind: z.string() }) }),
  z.object({ event: z.literal('job.progress'), job: z.string(), data: ProgressDataSchema }),
  z.object({ event: z.literal('tune.trial'), job: z.string(), data: TrialDataSchema }),
  z.object({ event: z.literal('tune.tasks'), job: z.string(), data: z.object({ tasks: z.array(z.object({ id: z.number(), name: z.string(), weight: z.number(), default_ms: z.number().nullable().optional(), library_ms: z.number().nullable().optional() })) }) }),
  z.object({ event: z.literal('bench.sample'), job: z.string(), data: BenchSampleDataSchema }),
  z.object({ event: z.literal('log'), job: z.string(), data: LogDataSchema }),
]);
export type JobEvent = z.infer<typeof JobEventSchema>;
export type JobEventName = JobEvent['event'];

export const JobOutcomeSchema = z.discriminatedUnion('state', [
  z.object({ state: z.literal('succeeded'), job: z.string(), result: z.record(z.string(), z.unknown()) }),
  z.object({ state: z.literal('failed'), job: z.string(), error: ErrorInfoSchema }),
  z.object({ state: z.literal('cancelled'), job: z.string(), result: z.record(z.string(), z.unknown()).optional() }),
]);
export type JobOutcome = z.infer<typeof JobOutcomeSchema>;
