// The framing of app/core's two child processes, as zod schemas (one per message):
//   the Python engine: JSON lines on stdio (native/engine/torchtvm, the RPC server)
//     core -> engine  {id, method, params}                  params: the request minus core-only keys
//     engine -> core  {id, result} | {id, error: {code, message, detail?}} | {event, job, data}
//   the bench child (app/core/bench/bench-child.ts, which loads the native addon): IPC messages
//     host -> child   {id, method: inspect|benchmark|cancel, params}
//     child -> host   {ready, pid, runtime} | {id, samples} | {id, result} | {id, error}
// What a result or an event holds is checked against results.ts and jobs.ts.
import { z } from 'zod';
import { ErrorInfoSchema } from './errors.js';
import { CompileResultSchema, InspectResultSchema, RemoteBenchResultSchema, TuneResultSchema, TuningLogSchema } from './results.js';
import { InputSpecSchema } from './specs.js';
import { TrackerQueuesSchema } from './targets.js';

const int = z.number().int();

// ---- the engine ----

/** The engine answers with the request's id; null when the request was too malformed to have one. */
const replyId = z.union([z.string(), int]).nullable();
export const EngineResultReplySchema = z.object({ id: replyId, result: z.unknown() });
export const EngineErrorReplySchema = z.object({ id: replyId, error: ErrorInfoSchema });
/** An event's envelope: `data` is checked against the event's own schema (jobs.ts) when the event is a job event. */
export const EngineEventEnvelopeSchema = z.object({ event: z.string().min(1), job: z.string().nullable(), data: z.record(z.string(), z.unknown()) });
export type EngineEventEnvelope = z.output<typeof EngineEventEnvelopeSchema>;

/** The engine's `versions` method: package name -> version (torch, tvm, python). */
export const EngineVersionsSchema = z.record(z.string(), z.string());

// ---- the bench child ----

export const BenchmarkParamsSchema = z.object({
  models: z.array(z.string().min(1)).min(1).max(2),
  inputs: z.array(InputSpecSchema).optional(),
  warmup: int.min(0),
  iterations: int.min(1),
  threads: int.min(1).optional(),
  /** One clock around the whole loop and no samples: the harness-free reference timing. */
  bare: z.boolean().optional(),
});
export type BenchmarkParams = z.output<typeof BenchmarkParamsSchema>;

export const BenchChildRequestSchema = z.discriminatedUnion('method', [
  z.object({ id: int, method: z.literal('inspect'), params: z.object({ path: z.string().min(1) }) }),
  z.object({ id: int, method: z.literal('benchmark'), params: BenchmarkParamsSchema }),
  z.object({ id: int, method: z.literal('cancel'), params: z.object({ id: int }) }),
]);
export type BenchChildRequest = z.output<typeof BenchChildRequestSchema>;
export type BenchMethod = BenchChildRequest['method'];

/** [model index, iteration, latency in ms] */
export const SampleTupleSchema = z.tuple([int, int, z.number()]);
export type SampleTuple = z.output<typeof SampleTupleSchema>;

export const BenchChildReadySchema = z.object({ ready: z.literal(true), pid: int, runtime: z.looseObject({ path: z.string(), loaded: z.boolean(), error: z.string().optional() }) });
export const BenchChildSamplesSchema = z.object({ id: int, samples: z.array(SampleTupleSchema) });
/** The result of `inspect` (results.ts InspectResultSchema) or `benchmark` (AddonBenchResultSchema), checked by method. */
export const BenchChildResultSchema = z.object({ id: int, result: z.record(z.string(), z.unknown()) });
export const BenchChildErrorSchema = z.object({ id: int, error: ErrorInfoSchema });
export const BenchChildMessageSchema = z.union([BenchChildReadySchema, BenchChildSamplesSchema, BenchChildErrorSchema, BenchChildResultSchema]);
export type BenchChildMessage = z.output<typeof BenchChildMessageSchema>;

// ---- the engine's methods and what each returns ----

/** Engine method -> the schema its result is checked against where it enters app/core. */
export const ENGINE_METHOD_RESULTS = {
  inspect: InspectResultSchema,
  compile: CompileResultSchema,
  tune: TuneResultSchema,
  versions: EngineVersionsSchema,
  /** The tuning-log reader (torchtvm/tune/log.py), params {dir}: answered beside a running job. */
  tuning_log: TuningLogSchema,
  /** Copies a build's package to export_path (torchtvm/deploy/builds.py), params {build, export_path, …}: answered beside a running job. */
  export_build: CompileResultSchema,
  /** An RPC tracker's queues, and with `key` that key's servers probed (torchtvm/remote/fleet.py), params {tracker, key?}. */
  tracker_queues: TrackerQueuesSchema,
  /** A bench job on a tracker's server (torchtvm/remote/bench.py), params {tracker, key, model, inputs?, warmup, iterations, threads?, timeout}. */
  bench_remote: RemoteBenchResultSchema,
} as const;
export type EngineMethod = keyof typeof ENGINE_METHOD_RESULTS;
export type EngineResultOf<M extends EngineMethod> = z.output<(typeof ENGINE_METHOD_RESULTS)[M]>;
