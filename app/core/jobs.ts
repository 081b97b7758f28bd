// Every long operation is a job: an id, a state, progress events, a result or an error, cancel.
// Runners do the work (the engine, the bench host); the manager owns state and the event stream.
import { EventEmitter } from 'node:events';
import type { JobSummary } from '../contract/api.js';
import { describeIssues, WorkbenchError } from '../contract/errors.js';
import { DEFAULT_TIMEOUT_S, type JobEvent, type JobEventBody, type JobOutcome, JobRequestSchema, type JobResult, type JobState, type ParsedJobRequest } from '../contract/jobs.js';

export interface RunContext {
  job: string;
  emit(event: JobEventBody): void;
  /** Aborted when the job is cancelled. */
  signal: AbortSignal;
}

/** Runs one job; resolves with its result, already checked against the contract where it came from another process. */
export type JobRunner = (request: ParsedJobRequest, ctx: RunContext) => Promise<JobResult>;

/** Told about every job's start and end (the run store keeps them on disk); events come through onEvent. */
export interface JobObserver {
  /** Returns a warning for the job's log when its record could not be written. */
  started(job: string, request: ParsedJobRequest, startedAt: number): string | void;
  finished(job: string, outcome: JobOutcome): void;
}

interface JobRecord {
  summary: JobSummary;
  abort: AbortController;
  outcome: Promise<JobOutcome>;
}

export class JobManager {
  private readonly events = new EventEmitter();
  private readonly jobs = new Map<string, JobRecord>();
  private counter = 0;

  constructor(
    private readonly runners: Partial<Record<ParsedJobRequest['kind'], JobRunner>>,
    private readonly observer?: JobObserver,
  ) {
    this.events.setMaxListeners(100);
  }

  onEvent(listener: (e: JobEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  private emit(e: JobEvent): void {
    this.events.emit('event', e);
  }

  /** Starts a job; the request is checked here (whoever called). */
  start(raw: unknown): string {
    const parsed = JobRequestSchema.safeParse(raw);
    if (!parsed.success) {
      throw new WorkbenchError('bad_request', `The ${kindOf(raw)} request is invalid: ${describeIssues(parsed.error, 20)}.`);
    }
    const request = parsed.data;
    const runner = this.runners[request.kind];
    if (!runner) throw new WorkbenchError('unsupported', `This workbench cannot run ${request.kind} jobs here.`);
    const job = `${request.kind}-${++this.counter}-${Date.now().toString(36)}`;
    const abort = new AbortController();
    const timeoutS = request.timeout_s ?? DEFAULT_TIMEOUT_S[request.kind];
    const summary: JobSummary = { job, kind: request.kind, state: 'running', startedAt: Date.now(), label: request.model, timeoutS };
    // Past its time limit a job is cancelled (the engine stops it as it stops any cancel) and fails
    // with timed_out: a hung read or a runaway tune never holds the workbench forever.
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, timeoutS * 1000);
    timer.unref();
    const setState = (state: JobState) => {
      summary.state = state;
      this.emit({ event: 'job.state', job, data: { state, kind: request.kind } });
    };
    const ctx: RunContext = { job, signal: abort.signal, emit: (e) => this.emit({ ...e, job }) };
    const warning = this.observer?.started(job, request, summary.startedAt);
    const run = (async (): Promise<JobOutcome> => {
      await Promise.resolve(); // let the caller subscribe before the first event
      setState('running');
      if (warning) this.emit({ event: 'log', job, data: { level: 'warn', message: warning } });
      try {
        const result = await runner(request, ctx);
        setState(abort.signal.aborted ? 'cancelled' : 'succeeded');
        return abort.signal.aborted ? { state: 'cancelled', job, result } : { state: 'succeeded', job, result };
      } catch (err) {
        const e = WorkbenchError.from(err);
        if (timedOut) {
          setState('failed');
          return { state: 'failed', job, error: timedOutError(request.kind, timeoutS).toJSON() };
        }
        if (abort.signal.aborted || e.code === 'cancelled') {
          setState('cancelled');
          return { state: 'cancelled', job };
        }
        setState('failed');
        return { state: 'failed', job, error: e.toJSON() };
      }
    })();
    const outcome = run.then((o) => {
      clearTimeout(timer);
      this.observer?.finished(job, o);
      return o;
    });
    this.jobs.set(job, { summary, abort, outcome });
    return job;
  }

  cancel(job: string): boolean {
    const rec = this.jobs.get(job);
    if (!rec || rec.summary.state !== 'running') return false;
    rec.abort.abort();
    return true;
  }

  wait(job: string): Promise<JobOutcome> {
    const rec = this.jobs.get(job);
    if (!rec) return Promise.reject(new WorkbenchError('unknown_job', `There is no job ${job}.`));
    return rec.outcome;
  }

  list(): JobSummary[] {
    return [...this.jobs.values()].map((r) => ({ ...r.summary }));
  }
}

function timedOutError(kind: string, seconds: number): WorkbenchError {
  const limit = seconds % 3600 === 0 ? `${seconds / 3600} h` : seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
  return new WorkbenchError(
    'timed_out',
    `The ${kind} job ran past its time limit (${limit}) and was stopped. If it needs longer, give it more: --timeout SECONDS in the CLI, timeout_s in a request.`,
  );
}

/** The request's kind for a sentence about a request that did not parse ('' when it has none). */
function kindOf(raw: unknown): string {
  return typeof raw === 'object' && raw !== null && 'kind' in raw && typeof raw.kind === 'string' ? raw.kind.slice(0, 40) : '';
}
