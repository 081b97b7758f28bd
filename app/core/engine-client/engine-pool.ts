// Several Python engines, so that one long job (a tune) does not hold up the others (inspecting a
// second model, graph shapes, a compile). Each engine runs one job at a time (TVM's compiler and
// MetaSchedule do not share a process well), so the pool gives every job an engine of its own: a
// free one, else a new one while fewer than `maxEngines` run; past that the job waits for the first
// engine to free and is told so (a job.progress event, stage "queued", naming the jobs it waits
// for). Quick methods (`versions`, `tuning_log`, `export_build`) run on a thread beside any job, so
// they go to any live engine. Engines beyond the first are closed after idling a while (each holds torch and TVM,
// about 1 GB); a crashed engine is dropped, and the next job starts a fresh one. Crash and cancel
// within one engine stay EngineClient's (kill after the grace period, the SIGILL sentence).
import { WorkbenchError } from '../../contract/errors.js';
import type { EngineJobEvent } from '../../contract/jobs.js';
import type { EngineMethod, EngineResultOf } from '../../contract/processes.js';
import { EngineClient, type EngineClientOptions } from './engine-client.js';

export interface EnginePoolOptions extends EngineClientOptions {
  /** How many engines may run jobs at once. Default: TORCHTVM_MAX_ENGINES, else 3. */
  maxEngines?: number;
  /** How long an engine other than the first may stay idle before it is closed (default 60 s). */
  idleCloseMs?: number;
}

/** The engine's methods that run beside a job (native/engine/torchtvm/service/methods.py, QUICK_METHODS). */
export const QUICK_ENGINE_METHODS: ReadonlySet<string> = new Set(['versions', 'tuning_log', 'export_build', 'tracker_queues']);

export const DEFAULT_MAX_ENGINES = 3;

/** TORCHTVM_MAX_ENGINES as a count of engines (a whole number from 1); anything else is refused with a sentence. */
export function maxEnginesFromEnv(value = process.env.TORCHTVM_MAX_ENGINES): number {
  if (value === undefined || value.trim() === '') return DEFAULT_MAX_ENGINES;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new WorkbenchError('bad_setting', `TORCHTVM_MAX_ENGINES must be a whole number of engines from 1 to 64, not ${JSON.stringify(value.slice(0, 40))}; unset it for the default (${DEFAULT_MAX_ENGINES}).`);
  }
  return n;
}

interface Slot {
  client: EngineClient;
  /** The job (not a quick method) this engine runs, if any. */
  job?: { id: string; method: EngineMethod };
  /** Requests sent to this engine and not yet settled (the job and quick methods). */
  inFlight: number;
  idleTimer?: NodeJS.Timeout;
}

interface Waiting {
  id: string;
  method: EngineMethod;
  start: (slot: Slot) => void;
  reject: (e: WorkbenchError) => void;
}

export class EnginePool {
  private slots: Slot[] = [];
  /** Jobs waiting for an engine, oldest first. */
  private waiting: Waiting[] = [];
  /** Which engine each sent request went to (for cancel). */
  private sentTo = new Map<string, Slot>();
  private nextId = 1;
  /** A bad TORCHTVM_MAX_ENGINES: every request fails with its sentence (the workbench itself still opens). */
  private readonly setupError?: WorkbenchError;
  readonly maxEngines: number;
  private readonly idleCloseMs: number;
  private readonly clientOpts: EngineClientOptions;

  constructor(opts: EnginePoolOptions = {}) {
    const { maxEngines, idleCloseMs, ...clientOpts } = opts;
    let max = maxEngines;
    if (max === undefined) {
      try {
        max = maxEnginesFromEnv();
      } catch (e) {
        this.setupError = WorkbenchError.from(e);
      }
    }
    this.maxEngines = Math.max(1, Math.floor(max ?? DEFAULT_MAX_ENGINES));
    this.idleCloseMs = idleCloseMs ?? 60_000;
    this.clientOpts = clientOpts;
  }

  /** The first engine's process id (undefined when none runs). */
  get pid(): number | undefined {
    return this.slots.find((s) => s.client.pid !== undefined)?.client.pid;
  }

  /** The process ids of the engines that run now. */
  get pids(): number[] {
    return this.slots.map((s) => s.client.pid).filter((p): p is number => p !== undefined);
  }

  /** How many engines the pool holds (running or about to start). */
  get size(): number {
    return this.slots.length;
  }

  /** Jobs sent to an engine and not finished, and jobs waiting for one. */
  get load(): { running: number; waiting: number } {
    return { running: this.slots.filter((s) => s.job).length, waiting: this.waiting.length };
  }

  /**
   * Runs one engine method, as EngineClient.request does, on an engine of the pool: a job on a free
   * engine (or a new one, or the first to free), a quick method on any live engine.
   */
  request<M extends EngineMethod>(method: M, params: Record<string, unknown>, onEvent?: (e: EngineJobEvent) => void, id?: string): { id: string; done: Promise<EngineResultOf<M>> } {
    const reqId = id ?? `p${this.nextId++}`;
    const done = new Promise<EngineResultOf<M>>((resolve, reject) => {
      if (this.setupError) {
        reject(this.setupError);
        return;
      }
      const quick = QUICK_ENGINE_METHODS.has(method);
      const start = (slot: Slot) => {
        if (!quick) slot.job = { id: reqId, method };
        slot.inFlight++;
        clearTimeout(slot.idleTimer);
        slot.idleTimer = undefined;
        this.sentTo.set(reqId, slot);
        const sent = slot.client.request(method, params, onEvent, reqId);
        sent.done
          .finally(() => {
            this.sentTo.delete(reqId);
            slot.inFlight--;
            if (slot.job?.id === reqId) slot.job = undefined;
            this.settled(slot);
          })
          .catch(() => {});
        sent.done.then(resolve, reject);
      };
      if (quick) {
        start(this.slots.find((s) => s.client.pid !== undefined) ?? this.slots[0] ?? this.add());
        return;
      }
      const free = this.freeSlot();
      if (free) {
        start(free);
        return;
      }
      this.waiting.push({ id: reqId, method, start, reject });
      onEvent?.({ event: 'job.progress', job: reqId, data: { stage: 'queued', message: this.waitSentence() } });
    });
    return { id: reqId, done };
  }

  /** A free engine for a job: an idle live one first, else a new one while fewer than maxEngines run. */
  private freeSlot(): Slot | undefined {
    const idle = this.slots.filter((s) => !s.job);
    return idle.find((s) => s.client.pid !== undefined) ?? idle[0] ?? (this.slots.length < this.maxEngines ? this.add() : undefined);
  }

  private add(): Slot {
    const slot: Slot = { client: new EngineClient(this.clientOpts), inFlight: 0 };
    this.slots.push(slot);
    return slot;
  }

  private waitSentence(): string {
    const running = this.slots.flatMap((s) => (s.job ? [`${s.job.method} (job ${s.job.id})`] : []));
    const ahead = this.waiting.length - 1;
    const what = running.length === 1 ? `the running ${running[0]}` : `one of the running jobs (${running.join(', ')})`;
    const limit = this.maxEngines === 1 ? 'one engine runs at a time' : `at most ${this.maxEngines} engines run at once`;
    return `Waiting for ${what} to finish: ${limit} (TORCHTVM_MAX_ENGINES)${ahead > 0 ? `; ${ahead} job${ahead === 1 ? '' : 's'} waiting before this one` : ''}.`;
  }

  /** After a request on `slot` settled: drop it if its engine died, hand it the next waiting job, or let it idle. */
  private settled(slot: Slot): void {
    if (slot.client.pid === undefined && slot.inFlight === 0 && !slot.job) {
      // Crashed (or killed to stop a cancelled job): dropped; a job that needs an engine starts a fresh one.
      this.drop(slot);
    }
    while (this.waiting.length) {
      const next = this.freeSlot();
      if (!next) break;
      next.job = { id: this.waiting[0].id, method: this.waiting[0].method }; // taken before start, for freeSlot
      this.waiting.shift()!.start(next);
    }
    if (this.slots.includes(slot) && !slot.job && slot.inFlight === 0) this.idle(slot);
  }

  /** An engine other than the first, left with nothing to do, is closed after idleCloseMs. */
  private idle(slot: Slot): void {
    if (slot === this.slots[0] || slot.idleTimer) return;
    slot.idleTimer = setTimeout(() => {
      slot.idleTimer = undefined;
      if (slot.job || slot.inFlight > 0 || slot === this.slots[0] || !this.slots.includes(slot)) return;
      this.drop(slot);
      void slot.client.close();
    }, this.idleCloseMs);
    slot.idleTimer.unref();
  }

  private drop(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    this.slots = this.slots.filter((s) => s !== slot);
  }

  /** Asks a job to stop: a waiting one is taken off the queue (cancelled), a running one is cancelled by its engine. */
  cancel(id: string): boolean {
    const i = this.waiting.findIndex((w) => w.id === id);
    if (i >= 0) {
      const [w] = this.waiting.splice(i, 1);
      w.reject(new WorkbenchError('cancelled', 'The job was cancelled.'));
      return true;
    }
    return this.sentTo.get(id)?.client.cancel(id) ?? false;
  }

  /** Kills every engine (tests use it to simulate a crash; the app on quit). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    for (const s of this.slots) s.client.kill(signal);
  }

  /** Shuts every engine down; jobs still waiting for one fail with engine_closed. A later request starts engines afresh (as EngineClient's does). */
  async close(): Promise<void> {
    for (const w of this.waiting.splice(0)) w.reject(new WorkbenchError('engine_closed', `The workbench closed before "${w.method}" got an engine; it was not run.`));
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) clearTimeout(s.idleTimer);
    await Promise.all(slots.map((s) => s.client.close()));
  }
}

/** What the job runners and the tuning-log reader need of an engine: an EngineClient or an EnginePool. */
export type EngineRequests = Pick<EngineClient, 'request' | 'cancel'>;
