// Supervises the Python engine process: spawns it on demand, sends typed requests, routes events
// to the request that caused them, cancels, and turns a dead engine into a sentence. The next
// request after a crash starts a fresh engine.
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { WorkbenchError, wireError } from '../../contract/errors.js';
import { EngineJobEventSchema, isEngineJobEvent, type EngineJobEvent } from '../../contract/jobs.js';
import { ENGINE_METHOD_RESULTS, EngineErrorReplySchema, EngineEventEnvelopeSchema, type EngineMethod, type EngineResultOf } from '../../contract/processes.js';
import { bundledPython, paths } from '../paths.js';
import { enginePython } from '../settings.js';

export interface EngineClientOptions {
  /** Default: TORCHTVM_PYTHON, else the `python` setting, else the bundled .venv. */
  python?: string;
  /** How long a cancelled job may take to stop before the engine is killed. */
  cancelGraceMs?: number;
  env?: Record<string, string>;
  /** Receives the engine's stderr (library warnings, logs); default: kept in a ring buffer only. */
  onStderr?: (line: string) => void;
}

/** What the engine sends that does not match the contract fails the request it belongs to with this code. */
export const BAD_ENGINE_REPLY = 'bad_engine_reply';

interface Pending {
  method: EngineMethod;
  /** The request's line, kept to send it again to a fresh engine (see onExit). */
  line: string;
  /** Checks the reply's result against the method's schema and resolves (or rejects with bad_engine_reply). */
  settle: (result: unknown) => void;
  reject: (e: WorkbenchError) => void;
  onEvent?: (e: EngineJobEvent) => void;
  cancelRequested: boolean;
  killTimer?: NodeJS.Timeout;
}

export class EngineClient {
  private proc?: ChildProcessWithoutNullStreams;
  private pending = new Map<string, Pending>();
  private nextId = 1;
  private stderrTail: string[] = [];
  /** The engine this client killed because a cancelled job would not stop. */
  private killedForCancel?: ChildProcessWithoutNullStreams;
  private readonly opts: Required<Omit<EngineClientOptions, 'onStderr' | 'env'>> & EngineClientOptions;

  private pythonSource: string;

  constructor(opts: EngineClientOptions = {}) {
    const chosen = enginePython();
    this.pythonSource = opts.python ? 'option' : chosen.source;
    this.opts = { python: chosen.python, cancelGraceMs: 5000, ...opts };
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.proc) return this.proc;
    if (!existsSync(this.opts.python)) {
      if (this.opts.python !== bundledPython()) {
        throw new WorkbenchError('python_missing', `The engine's Python ${this.opts.python} (from ${this.describeSource()}) does not exist; fix that path or clear it to use the bundled .venv.`);
      }
      throw new WorkbenchError('engine_missing', `The engine's Python (${this.opts.python}) is not installed; run "npm install" in ${paths.root}.`);
    }
    checkPython(this.opts.python, this.describeSource());
    const proc = spawn(this.opts.python, ['-m', 'torchtvm.service'], {
      cwd: paths.engineDir,
      env: { ...process.env, PYTHONUNBUFFERED: '1', TORCHTVM_RUNTIME_LIB: process.env.TORCHTVM_RUNTIME_LIB ?? paths.runtimeLib, ...this.opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.stderrTail = [];
    createInterface({ input: proc.stdout }).on('line', (line) => this.onLine(line));
    createInterface({ input: proc.stderr }).on('line', (line) => {
      this.keep(line);
      this.opts.onStderr?.(line);
    });
    proc.on('error', (err) => this.onExit(proc, null, null, err));
    proc.on('exit', (code, signal) => this.onExit(proc, code, signal));
    proc.stdin.on('error', () => {}); // a dead engine is reported by 'exit'
    return proc;
  }

  private describeSource(): string {
    return { TORCHTVM_PYTHON: 'TORCHTVM_PYTHON', setting: 'the python setting', bundled: 'the bundled .venv', option: 'the engine options' }[this.pythonSource] ?? this.pythonSource;
  }

  /**
   * One line of the engine's stdout. Replies and job events are checked against the contract: one
   * that does not match fails the request it belongs to with bad_engine_reply (naming the message and
   * its first issues) and the engine is asked to stop that job. Events this workbench does not know
   * (engine.ready, a newer engine's own) are ignored; lines that belong to no request are kept for
   * the crash report.
   */
  private onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.keep(`[stdout] ${line}`);
      return;
    }
    if (!isRecord(msg)) {
      this.keep(`[stdout, not an object] ${line}`);
      return;
    }
    if ('event' in msg) {
      this.onEventMessage(msg, line);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : null;
    const p = id === null ? undefined : this.pending.get(id);
    if (id === null || !p) {
      // Cancel acknowledgements, and replies to requests already failed, have no one waiting.
      if (!id?.startsWith('cancel-')) this.keep(`[stdout, no request waits for it] ${line}`);
      return;
    }
    if ('error' in msg) {
      const reply = EngineErrorReplySchema.safeParse(msg);
      if (reply.success) this.finish(id, p, () => p.reject(new WorkbenchError(reply.data.error.code, reply.data.error.message, reply.data.error.detail)));
      else this.failRequest(id, p, wireError(BAD_ENGINE_REPLY, `The engine's error reply to "${p.method}"`, reply.error, msg));
    } else if ('result' in msg) {
      this.finish(id, p, () => p.settle(msg.result));
    } else {
      this.failRequest(id, p, new WorkbenchError(BAD_ENGINE_REPLY, `The engine's reply to "${p.method}" has neither a result nor an error; the engine and the app are out of step: reinstall or update the workbench.`, line.slice(0, 2000)));
    }
  }

  private onEventMessage(msg: Record<string, unknown>, line: string): void {
    const job = typeof msg.job === 'string' ? msg.job : null;
    const p = job === null ? undefined : this.pending.get(job);
    const envelope = EngineEventEnvelopeSchema.safeParse(msg);
    if (!envelope.success) {
      if (job !== null && p) this.failRequest(job, p, wireError(BAD_ENGINE_REPLY, `The engine's event ${JSON.stringify(String(msg.event)).slice(0, 80)} for "${p.method}"`, envelope.error, msg));
      else this.keep(`[stdout, bad event] ${line}`);
      return;
    }
    if (job === null || !p || !isEngineJobEvent(envelope.data.event)) return;
    const ev = EngineJobEventSchema.safeParse(envelope.data);
    if (!ev.success) {
      this.failRequest(job, p, wireError(BAD_ENGINE_REPLY, `The engine's ${envelope.data.event} event for "${p.method}"`, ev.error, msg));
      return;
    }
    p.onEvent?.(ev.data);
  }

  private keep(line: string): void {
    this.stderrTail.push(line.slice(0, 2000));
    if (this.stderrTail.length > 40) this.stderrTail.shift();
  }

  private finish(id: string, p: Pending, settle: () => void): void {
    this.pending.delete(id);
    clearTimeout(p.killTimer);
    settle();
  }

  /** Fails a request whose messages broke the contract, and asks the engine to stop that job. */
  private failRequest(id: string, p: Pending, err: WorkbenchError): void {
    this.finish(id, p, () => p.reject(err));
    this.proc?.stdin.write(JSON.stringify({ id: `cancel-${id}`, method: 'cancel', params: { job: id } }) + '\n');
  }

  private onExit(proc: ChildProcessWithoutNullStreams, code: number | null, signal: NodeJS.Signals | null, err?: Error): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    const how = err ? err.message : signal ? `signal ${signal}` : `exit code ${code}`;
    // Killed by us to stop a cancelled job that would not stop: the requests queued behind it did
    // nothing wrong, so they go to a fresh engine instead of failing with the kill.
    const forCancel = this.killedForCancel === proc;
    this.killedForCancel = undefined;
    const resend: Array<[string, Pending]> = [];
    for (const [id, p] of this.pending) {
      clearTimeout(p.killTimer);
      if (p.cancelRequested) p.reject(new WorkbenchError('cancelled', 'The job was cancelled.'));
      else if (forCancel) resend.push([id, p]);
      else
        p.reject(
          new WorkbenchError(
            'engine_crashed',
            signal === 'SIGILL'
              ? `The engine was killed by SIGILL while running "${p.method}": this CPU lacks an instruction the code it ran uses (built for another CPU, e.g. a --target with another mcpu, or a library built for a newer CPU). Compile for this machine (--target llvm); the next request starts a fresh engine.`
              : `The engine stopped unexpectedly (${how}) while running "${p.method}"; the next request starts a fresh engine.`,
            this.stderrTail.join('\n'),
          ),
        );
      this.pending.delete(id);
    }
    for (const [id, p] of resend) {
      try {
        this.start().stdin.write(p.line);
        this.pending.set(id, p);
      } catch (e) {
        p.reject(WorkbenchError.from(e));
      }
    }
  }

  /**
   * Runs one engine method; `onEvent` receives its job events (checked against the contract).
   * Resolves with the result, checked against the method's schema (ENGINE_METHOD_RESULTS).
   */
  request<M extends EngineMethod>(method: M, params: Record<string, unknown>, onEvent?: (e: EngineJobEvent) => void, id?: string): { id: string; done: Promise<EngineResultOf<M>> } {
    const reqId = id ?? `r${this.nextId++}`;
    const done = new Promise<EngineResultOf<M>>((resolve, reject) => {
      let proc: ChildProcessWithoutNullStreams;
      try {
        proc = this.start();
      } catch (e) {
        reject(WorkbenchError.from(e));
        return;
      }
      const settle = (result: unknown) => {
        const parsed = ENGINE_METHOD_RESULTS[method].safeParse(result);
        if (parsed.success) resolve(parsed.data as EngineResultOf<M>);
        else reject(wireError(BAD_ENGINE_REPLY, `The engine's result of "${method}"`, parsed.error, result));
      };
      const line = JSON.stringify({ id: reqId, method, params }) + '\n';
      this.pending.set(reqId, { method, line, settle, reject, onEvent, cancelRequested: false });
      proc.stdin.write(line);
    });
    return { id: reqId, done };
  }

  /** Asks the engine to stop a job; kills the engine if the job has not stopped within the grace period. */
  cancel(id: string): boolean {
    const p = this.pending.get(id);
    if (!p || !this.proc) return false;
    p.cancelRequested = true;
    this.proc.stdin.write(JSON.stringify({ id: `cancel-${id}`, method: 'cancel', params: { job: id } }) + '\n');
    const proc = this.proc;
    p.killTimer = setTimeout(() => {
      if (this.pending.has(id) && this.proc === proc) {
        this.killedForCancel = proc;
        proc.kill('SIGKILL');
      }
    }, this.opts.cancelGraceMs);
    return true;
  }

  /** Kills the engine (tests use it to simulate a crash; the app on quit). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.proc?.kill(signal);
  }

  async close(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        proc.kill('SIGKILL');
      }, 3000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.stdin.write(JSON.stringify({ method: 'shutdown' }) + '\n');
      proc.stdin.end();
    });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const checkedPythons = new Map<string, string | null>();

/**
 * A Python other than the bundled .venv must have torch and apache-tvm of the pinned minor versions
 * (torchtvm.common.compat reads package metadata, imports neither, and answers in well under a second).
 * Checked once per path and process; an unfit Python is refused with the engine's sentence.
 */
export function checkPython(python: string, source: string): void {
  if (python === bundledPython()) return;
  let problem = checkedPythons.get(python);
  if (problem === undefined) {
    const r = spawnSync(python, ['-m', 'torchtvm.common.compat'], { cwd: paths.engineDir, encoding: 'utf8', timeout: 60000 });
    try {
      const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as { ok: boolean; message: string | null };
      problem = out.ok ? null : (out.message ?? `The Python at ${python} cannot run the engine.`);
    } catch {
      const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').at(-1) || `exit code ${r.status}`;
      problem = `The Python at ${python} could not be asked for its package versions (${why}); name a Python 3.10+ with the pinned torch and apache-tvm.`;
    }
    checkedPythons.set(python, problem);
  }
  if (problem) throw new WorkbenchError('python_incompatible', `${problem} (chosen by ${source})`);
}
