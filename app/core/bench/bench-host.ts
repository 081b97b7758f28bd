// The bench host: runs the native addon (libtorch inspection and the benchmark harness) in a child
// process, one fresh child per request, so that a crash there fails that request with a sentence and
// leaves the caller running. Under Electron, app/main passes a spawner built on utilityProcess.fork;
// elsewhere child_process.fork is used.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { WorkbenchError, wireError } from '../../contract/errors.js';
import type { ParsedJobRequest } from '../../contract/jobs.js';
import { BenchChildErrorSchema, BenchChildReadySchema, BenchChildSamplesSchema, type BenchChildRequest, type BenchmarkParams, type SampleTuple } from '../../contract/processes.js';
import { AddonBenchResultSchema, InspectResultSchema, type AddonBenchResult, type AddonStats, type BenchResult, type BenchStats, type InspectResult, type LatencyStats, type MeasuredOn } from '../../contract/results.js';
import type { JobRunner } from '../jobs.js';
import { runSweep } from './batch-sweep.js';
import { paths } from '../paths.js';
import { sha256File } from '../file-hash.js';

/** What the bench child sends that does not match the contract fails the request with this code. */
export const BAD_BENCH_REPLY = 'bad_bench_reply';

/** A started child: what bench-host needs from child_process.fork's or utilityProcess.fork's result. */
export interface BenchChild {
  readonly pid?: number;
  send(msg: unknown): void;
  onMessage(cb: (msg: unknown) => void): void;
  onExit(cb: (code: number | null, signal: string | null) => void): void;
  /** Its stderr lines, when the spawner can give them (for the crash report's detail). */
  onStderr?(cb: (line: string) => void): void;
  kill(): void;
}

/** Starts `script` (an ES module) as a child with an IPC channel and the given environment. */
export type BenchSpawner = (script: string, env: Record<string, string>) => BenchChild;

export const forkSpawner: BenchSpawner = (script, env) => {
  const cp = fork(script, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
  cp.on('error', () => {}); // reported through 'exit'
  return {
    get pid() {
      return cp.pid;
    },
    send: (msg) => {
      if (cp.connected) cp.send(msg as object, (err) => err && undefined);
    },
    onMessage: (cb) => cp.on('message', cb),
    onExit: (cb) => cp.on('exit', (code, signal) => cb(code, signal)),
    onStderr: (cb) => {
      let buf = '';
      cp.stderr?.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        lines.forEach(cb);
      });
    },
    kill: () => {
      if (cp.exitCode === null && cp.signalCode === null) cp.kill('SIGKILL');
    },
  };
};

/** The part of Electron's utilityProcess module the spawner uses (app/core never imports electron). */
export interface UtilityProcessLike {
  fork(
    modulePath: string,
    args?: string[],
    options?: { env?: Record<string, string | undefined>; stdio?: 'pipe' | 'ignore' | 'inherit' | Array<'pipe' | 'ignore' | 'inherit'>; serviceName?: string },
  ): {
    readonly pid?: number;
    postMessage(message: unknown): void;
    on(event: 'message', cb: (message: unknown) => void): unknown;
    on(event: 'exit', cb: (code: number) => void): unknown;
    readonly stderr: NodeJS.ReadableStream | null;
    kill(): boolean;
  };
}

/**
 * A spawner for Electron's main process: `benchRunner({ spawner: utilityProcessSpawner(utilityProcess) })`.
 * utilityProcess reports a crash as a non-zero exit code (no signal name).
 */
export function utilityProcessSpawner(up: UtilityProcessLike): BenchSpawner {
  return (script, env) => {
    const child = up.fork(script, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], serviceName: 'TorchTVM benchmark' });
    let exited = false;
    child.on('exit', () => (exited = true));
    return {
      get pid() {
        return child.pid;
      },
      send: (msg) => {
        if (!exited) child.postMessage(msg);
      },
      onMessage: (cb) => child.on('message', cb),
      onExit: (cb) => child.on('exit', (code: number) => cb(code, null)),
      onStderr: (cb) => {
        let buf = '';
        child.stderr?.on('data', (d: Buffer | string) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop() ?? '';
          lines.forEach(cb);
        });
      },
      kill: () => {
        if (!exited) child.kill();
      },
    };
  };
}

export interface BenchHostOptions {
  spawner?: BenchSpawner;
  addon?: string;
  runtimeLib?: string;
  /** The compiled bench-child.js; default: beside this file, else under dist/. */
  childScript?: string;
  /** How long a cancelled benchmark may take to stop before its process is killed. */
  cancelGraceMs?: number;
  /** Called with each child as it starts (tests use it to kill one mid-run). */
  onChild?: (child: BenchChild) => void;
}

function defaultChildScript(): string {
  const here = fileURLToPath(new URL('./bench-child.js', import.meta.url));
  if (existsSync(here)) return here;
  return join(paths.root, 'dist', 'app', 'core', 'bench', 'bench-child.js');
}

interface CallOptions {
  signal?: AbortSignal;
  onSamples?: (samples: SampleTuple[]) => void;
  label: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class BenchHost {
  private readonly opts: Required<Omit<BenchHostOptions, 'onChild'>> & Pick<BenchHostOptions, 'onChild'>;

  constructor(opts: BenchHostOptions = {}) {
    this.opts = {
      spawner: forkSpawner,
      addon: paths.addon,
      runtimeLib: process.env.TORCHTVM_RUNTIME_LIB ?? paths.runtimeLib,
      childScript: defaultChildScript(),
      cancelGraceMs: 5000,
      ...opts,
    };
  }

  inspect(model: string, signal?: AbortSignal): Promise<InspectResult> {
    return this.call({ id: 1, method: 'inspect', params: { path: model } }, InspectResultSchema, { signal, label: model });
  }

  benchmark(params: BenchmarkParams, opts: { signal?: AbortSignal; onSamples?: (s: SampleTuple[]) => void } = {}): Promise<AddonBenchResult> {
    return this.call({ id: 1, method: 'benchmark', params }, AddonBenchResultSchema, { ...opts, label: params.models.join(' vs ') });
  }

  /**
   * One request in a fresh child, which ends with the request. Every message from the child is
   * checked against the contract (processes.ts; the result against `schema`): one that does not
   * match fails the request with bad_bench_reply, naming the message and its first issues.
   */
  private call<S extends z.ZodType>(request: BenchChildRequest & { method: 'inspect' | 'benchmark' }, schema: S, { signal, onSamples, label }: CallOptions): Promise<z.output<S>> {
    const { method } = request;
    const { addon, childScript, runtimeLib } = this.opts;
    if (!existsSync(addon)) {
      return Promise.reject(new WorkbenchError('addon_missing', `The benchmark addon (${addon}) is not built; run "npm run setup" in ${paths.root}.`));
    }
    if (!existsSync(childScript)) {
      return Promise.reject(new WorkbenchError('bench_missing', `The benchmark helper (${childScript}) is not built; run "npm run setup" in ${paths.root}.`));
    }
    if (signal?.aborted) return Promise.reject(new WorkbenchError('cancelled', 'Cancelled.'));
    return new Promise((resolve, reject) => {
      const child = this.opts.spawner(childScript, { TORCHTVM_ADDON: addon, TORCHTVM_RUNTIME_LIB: runtimeLib });
      const stderr: string[] = [];
      child.onStderr?.((line) => {
        stderr.push(line);
        if (stderr.length > 40) stderr.shift();
      });
      let settled = false;
      let killTimer: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (killTimer) clearTimeout(killTimer);
        child.kill();
        fn();
      };
      const onAbort = () => {
        child.send({ id: 1, method: 'cancel', params: { id: 1 } });
        killTimer = setTimeout(() => finish(() => reject(new WorkbenchError('cancelled', 'Cancelled (the benchmark process did not stop in time and was ended).'))), this.opts.cancelGraceMs);
      };
      signal?.addEventListener('abort', onAbort);
      const bad = (what: string, error: z.ZodError, value: unknown) => finish(() => reject(wireError(BAD_BENCH_REPLY, `The benchmark process's ${what} (${method} ${label})`, error, value)));
      child.onMessage((msg) => {
        if (!isRecord(msg)) {
          finish(() => reject(new WorkbenchError(BAD_BENCH_REPLY, `The benchmark process sent a message that is not an object while ${method === 'inspect' ? 'inspecting' : 'benchmarking'} ${label}; reinstall the workbench.`, String(msg).slice(0, 2000))));
          return;
        }
        if ('ready' in msg) {
          const ready = BenchChildReadySchema.safeParse(msg);
          if (!ready.success) bad('ready message', ready.error, msg);
        } else if ('samples' in msg) {
          const m = BenchChildSamplesSchema.safeParse(msg);
          if (m.success) onSamples?.(m.data.samples);
          else bad('samples', m.error, msg);
        } else if ('error' in msg) {
          const m = BenchChildErrorSchema.safeParse(msg);
          if (!m.success) {
            bad('error reply', m.error, msg);
            return;
          }
          const { code, message, detail } = m.data.error;
          const sentence = meaningfulMessage(message);
          finish(() => reject(new WorkbenchError(code, sentence, detail ?? (sentence !== message ? message : undefined))));
        } else if ('result' in msg) {
          const r = schema.safeParse(msg.result);
          if (r.success) finish(() => resolve(r.data));
          else bad(`result of ${method}`, r.error, msg.result);
        } else {
          finish(() => reject(new WorkbenchError(BAD_BENCH_REPLY, `The benchmark process sent a message the workbench does not know (keys ${Object.keys(msg).slice(0, 5).join(', ')}) while ${method === 'inspect' ? 'inspecting' : 'benchmarking'} ${label}; reinstall the workbench.`, JSON.stringify(msg).slice(0, 2000))));
        }
      });
      child.onExit((code, sig) => {
        const how = sig ? `signal ${sig}` : `exit code ${code}`;
        finish(() =>
          reject(
            new WorkbenchError(
              'bench_crashed',
              sig === 'SIGILL'
                ? `The benchmark process was killed by SIGILL while ${method === 'inspect' ? 'inspecting' : 'benchmarking'} ${label}: this CPU lacks an instruction the code uses (compiled for another CPU). Re-export the model for this machine (--target llvm); the workbench is unaffected.`
                : `The benchmark process stopped unexpectedly (${how}) while ${method === 'inspect' ? 'inspecting' : 'benchmarking'} ${label}; the model or a native library it uses may have crashed it. The workbench is unaffected: try again, or check the model.`,
              stderr.join('\n') || undefined,
            ),
          ),
        );
      });
      this.opts.onChild?.(child);
      child.send(request);
    });
  }
}

/** Where a C++ error's backtrace starts: c10's "Exception raised from …", a "frame #N:" line, TVM's "Stack trace:". */
const BACKTRACE = /\s*(?:Exception raised from\b|frame #\d+:|\(most recent call first\)|Stack trace:|Traceback \(most recent call last\))/;

/**
 * The part of a native error message a user should read: everything before the C++ frame dump, a
 * sentence repeated back to back (torch appends the inner error to the outer one) said once, and at
 * most 500 characters. The caller keeps the full text as the error's detail.
 */
export function meaningfulMessage(raw: string): string {
  let text = String(raw);
  const cut = text.search(BACKTRACE);
  if (cut > 0) text = text.slice(0, cut);
  text = text.replace(/\s+/g, ' ').trim();
  // "A: msg msg" → "A: msg": drop a tail that repeats the text just before it.
  for (let len = Math.floor(text.length / 2); len >= 8; len--) {
    const tail = text.slice(text.length - len);
    const before = text.slice(text.length - 2 * len - 1, text.length - len - 1);
    if (tail === before && text[text.length - len - 1] === ' ') {
      text = text.slice(0, text.length - len - 1);
      break;
    }
  }
  if (!text) return String(raw).split('\n')[0].slice(0, 500) || 'The benchmark failed without a message.';
  return text.length > 500 ? `${text.slice(0, 499)}…` : text;
}

function toLatency(s: AddonStats): LatencyStats {
  return { min: s.min, mean: s.mean, p50: s.p50, p90: s.p90, p99: s.p99, stddev: s.stddev, runs: s.runs };
}

/** One model's statistics in a benchmark's result, as a bench job reports them. */
function statsOf(r: AddonBenchResult, i: number): BenchStats {
  return { ...toLatency(r.models[i].stats), max: r.models[i].stats.max, first_ms: r.models[i].first_ms, input_style: r.models[i].input_style };
}

/** Where a local bench measures (issue 25: every bench result says where it was measured). */
export function thisMachine(): MeasuredOn {
  const c = cpus();
  return { name: 'this machine', cpu_model: c[0]?.model.trim() || null, hostname: hostname().slice(0, 300) || null, cores: c.length || null };
}

/** What a bench job returns (the CLI's --json result): the contract's BenchResult. */
export type BenchJobResult = BenchResult;

/** The 'bench' job runner: samples stream as bench.sample events; `vs` interleaves two models run by run. */
export function benchRunner(opts: BenchHostOptions | BenchHost = {}): JobRunner {
  const host = opts instanceof BenchHost ? opts : new BenchHost(opts);
  return async (request: ParsedJobRequest, ctx) => {
    if (request.kind !== 'bench') throw new WorkbenchError('bad_request', `The bench runner cannot run ${request.kind} jobs.`);
    const req = request;
    if (req.sweep) {
      const swept = await runSweep(host, { ...req, sweep: req.sweep }, ctx, (r) => statsOf(r, 0));
      swept.model_sha256 = await sha256File(req.model);
      swept.measured_on = thisMachine();
      return swept;
    }
    const models = req.vs ? [req.model, req.vs] : [req.model];
    // Samples are labelled with the model's path; the same file on both sides gets "#2" on the second.
    const labels = models.map((m, i) => (i === 1 && m === models[0] ? `${m}#2` : m));
    const r = await host.benchmark(
      { models, inputs: req.inputs, warmup: req.warmup, iterations: req.iterations, threads: req.threads },
      {
        signal: ctx.signal,
        onSamples: (samples) => {
          for (const [m, iteration, ms] of samples) ctx.emit({ event: 'bench.sample', data: { model: labels[m], iteration, latency_ms: ms } });
        },
      },
    );
    const side = (i: number): BenchStats => statsOf(r, i);
    const result: BenchResult = {
      model: req.model,
      ...(req.vs ? { vs: req.vs } : {}),
      threads: r.threads,
      warmup: req.warmup,
      iterations: r.iterations,
      cancelled: r.cancelled,
      inputs: r.inputs,
      inputs_from: r.inputs_from,
      stats: side(0),
      // Which build each file is: an export is a byte-for-byte copy of its build's package.
      model_sha256: await sha256File(req.model),
      ...(req.vs ? { vs_sha256: await sha256File(req.vs) } : {}),
      measured_on: thisMachine(),
    };
    if (req.vs) {
      result.vs_stats = side(1);
      result.ratio = result.vs_stats.p50 > 0 ? result.stats.p50 / result.vs_stats.p50 : undefined;
    }
    return result;
  };
}
