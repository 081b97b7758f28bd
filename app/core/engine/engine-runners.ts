// Job runners that the Python engine serves: inspect, compile (and tune, which compiles too).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CompileRequest, InspectRequest, JobEvent, ParsedJobRequest, TuneRequest } from '../../contract/jobs.js';
import type { JobRunner, RunContext } from '../jobs.js';
import { projectDir } from '../paths.js';
import type { EngineClient } from './engine-client.js';
import type { EngineEvent } from './protocol.js';

const FORWARDED = new Set(['job.progress', 'tune.trial', 'tune.tasks', 'log']);

function runOnEngine(engine: EngineClient, method: string, params: Record<string, unknown>, ctx: RunContext) {
  const forward = (e: EngineEvent) => {
    if (FORWARDED.has(e.event)) ctx.emit({ event: e.event, data: e.data } as Omit<JobEvent, 'job'>);
  };
  const { id, done } = engine.request(method, params, forward, ctx.job);
  ctx.signal.addEventListener('abort', () => engine.cancel(id), { once: true });
  return done;
}

/** Engine params for a compile or tune request: absolute paths, the project folder as default. */
export function compileParams(req: CompileRequest | TuneRequest): Record<string, unknown> {
  const model = resolve(req.model);
  const project = projectDir(model);
  const outDir = resolve(req.outDir ?? join(project, 'builds', new Date().toISOString().replace(/[:.]/g, '-')));
  mkdirSync(outDir, { recursive: true });
  const params: Record<string, unknown> = {
    model,
    inputs: req.inputs,
    target: req.target,
    threads: req.threads,
    out_dir: outDir,
    measure: req.measure,
    export_path: req.exportPath ? resolve(req.exportPath) : undefined,
    fallback: req.fallback === false ? false : undefined,
    strict: req.strict || undefined,
    placement: req.placement,
  };
  if (req.kind === 'tune') {
    params.trials = req.trials;
    params.trials_per_task = req.trialsPerTask;
    params.trials_per_iter = req.trialsPerIter;
    params.work_dir = resolve(req.workDir ?? join(project, 'tuning'));
    params.tune_sizes = req.tuneSizes;
  }
  return params;
}

export function engineRunners(engine: EngineClient): Partial<Record<ParsedJobRequest['kind'], JobRunner>> {
  return {
    inspect: (req, ctx) => {
      const r = req as InspectRequest;
      // inputs: the specs the graph view's per-op shapes are computed for.
      return runOnEngine(engine, 'inspect', { model: resolve(r.model), ...(r.inputs?.length ? { inputs: r.inputs } : {}) }, ctx);
    },
    compile: (req, ctx) => runOnEngine(engine, 'compile', compileParams(req as CompileRequest), ctx),
    tune: (req, ctx) => runOnEngine(engine, 'tune', compileParams(req as TuneRequest), ctx),
  };
}
