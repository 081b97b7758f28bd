// Job runners that the Python engine serves: inspect, compile (and tune, which compiles too).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { WorkbenchError } from '../../contract/errors.js';
import type { BenchRequest, CompileRequest, EngineJobEvent, ParsedJobRequest, TuneRequest } from '../../contract/jobs.js';
import type { BenchResult, RemoteBenchResult } from '../../contract/results.js';
import type { EngineMethod, EngineResultOf } from '../../contract/processes.js';
import type { JobRunner, RunContext } from '../jobs.js';
import { projectDir } from '../paths.js';
import type { EngineRequests } from './engine-pool.js';
import { sha256File } from '../file-hash.js';

function runOnEngine<M extends EngineMethod>(engine: EngineRequests, method: M, params: Record<string, unknown>, ctx: RunContext): Promise<EngineResultOf<M>> {
  // The engine's job events are checked by the client; the job manager adds the job id.
  const forward = ({ job: _job, ...body }: EngineJobEvent) => ctx.emit(body);
  const { id, done } = engine.request(method, params, forward, ctx.job);
  ctx.signal.addEventListener('abort', () => engine.cancel(id), { once: true });
  return done;
}

/**
 * Request keys that app/core handles itself and never sends to the engine: `overwrite` and
 * `create_parent` are checked before the build (output-paths.ts). Every other key of a compile or
 * tune request is an engine parameter of the same name (test/node/contract-engine-params.test.ts
 * checks them against the engine's parameter table).
 */
export const CORE_ONLY_REQUEST_KEYS = ['kind', 'overwrite', 'create_parent', 'timeout_s'] as const;

/** Engine params for a compile or tune request: the request's own keys, absolute paths, the project folder as default. */
export function compileParams(req: CompileRequest | TuneRequest): Record<string, unknown> {
  const { kind, overwrite: _overwrite, create_parent: _createParent, timeout_s: _timeout, ...params } = req;
  const model = resolve(req.model);
  const project = projectDir(model);
  const out_dir = resolve(req.out_dir ?? join(project, 'builds', new Date().toISOString().replace(/[:.]/g, '-')));
  mkdirSync(out_dir, { recursive: true });
  return {
    ...params,
    model,
    out_dir,
    ...(req.export_path ? { export_path: resolve(req.export_path) } : {}),
    ...(kind === 'tune' ? { work_dir: resolve(req.work_dir ?? join(project, 'tuning')) } : {}),
  };
}

export function engineRunners(engine: EngineRequests): Partial<Record<ParsedJobRequest['kind'], JobRunner>> {
  return {
    inspect: (req, ctx) => {
      if (req.kind !== 'inspect') throw new Error(`the inspect runner got a ${req.kind} request`);
      // inputs: the specs the graph view's per-op shapes are computed for.
      return runOnEngine(engine, 'inspect', { model: resolve(req.model), ...(req.inputs?.length ? { inputs: req.inputs } : {}) }, ctx);
    },
    compile: (req, ctx) => {
      if (req.kind !== 'compile') throw new Error(`the compile runner got a ${req.kind} request`);
      return runOnEngine(engine, 'compile', compileParams(req), ctx);
    },
    tune: (req, ctx) => {
      if (req.kind !== 'tune') throw new Error(`the tune runner got a ${req.kind} request`);
      return runOnEngine(engine, 'tune', compileParams(req), ctx);
    },
    // A build's package copied as it is: answered beside a running job (a quick method).
    export: (req, ctx) => {
      if (req.kind !== 'export') throw new Error(`the export runner got a ${req.kind} request`);
      const { kind: _kind, model: _model, overwrite: _o, create_parent: _c, timeout_s: _t, ...params } = req;
      return runOnEngine(engine, 'export_build', { ...params, build: resolve(req.build), export_path: resolve(req.export_path) }, ctx);
    },
  };
}

/** The session timeout a remote benchmark asks the tracker for: the job's own limit, at most an hour. */
const REMOTE_SESSION_S = 600;

/**
 * A bench job's result from the engine's bench_remote (issue 25): the same statistics a local bench
 * reports, with measured_on naming the server, its CPU, the key and the tracker. No per-run samples
 * come back from a server (bench.sample events are this machine's only), nor a first-run time.
 */
export function remoteBenchResult(req: BenchRequest, r: RemoteBenchResult, model_sha256?: string): BenchResult {
  const m = r.measured_on;
  return {
    model: req.model,
    threads: r.threads,
    warmup: r.warmup,
    iterations: r.runs,
    cancelled: false,
    inputs: r.inputs,
    ...(r.inputs_from ? { inputs_from: r.inputs_from } : {}),
    stats: { p50: r.p50, p90: r.p90, p99: r.p99, min: r.min, max: r.max, mean: r.mean, runs: r.runs },
    ...(model_sha256 ? { model_sha256 } : {}),
    measured_on: {
      name: m.name,
      cpu_model: m.cpu_model ?? null,
      ...(m.llvm_cpu !== undefined ? { llvm_cpu: m.llvm_cpu } : {}),
      ...(m.hostname !== undefined ? { hostname: m.hostname } : {}),
      ...(m.cores !== undefined ? { cores: m.cores } : {}),
      tracker: r.tracker,
      key: r.key,
    },
  };
}

/**
 * The 'bench' runner with targets (issue 25): a request naming a tracker and key is timed on a server
 * of that key by an engine (torchtvm.remote.bench, uploaded there; never run here); any other goes
 * to `local` (the bench host).
 */
export function benchOnTarget(engine: EngineRequests, local?: JobRunner): JobRunner {
  return async (req, ctx) => {
    if (req.kind !== 'bench') throw new Error(`the bench runner got a ${req.kind} request`);
    if (!req.tracker || !req.key) {
      if (!local) throw new WorkbenchError('unsupported', 'This workbench cannot run benchmarks on this machine here (no bench host); pick a tracker\'s key on the Targets page to benchmark there.');
      return local(req, ctx);
    }
    const model = resolve(req.model);
    const params = {
      tracker: req.tracker,
      key: req.key,
      model,
      ...(req.inputs?.length ? { inputs: req.inputs } : {}),
      warmup: req.warmup,
      iterations: req.iterations,
      ...(req.threads ? { threads: req.threads } : {}),
      timeout: Math.min(req.timeout_s ?? REMOTE_SESSION_S, 3600),
    };
    const r = await runOnEngine(engine, 'bench_remote', params, ctx);
    return remoteBenchResult(req, r, await sha256File(model));
  };
}
