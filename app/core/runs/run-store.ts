// Keeps every compile, tune, bench and export job as a run in its model's project folder:
//   <project>/runs/<job>/request.json   the parsed request (atomic write; snake_case keys, older
//                                        records' camelCase keys are renamed when read)
//   <project>/runs/<job>/events.jsonl   every event, one JSON line each, appended as it happens
//   <project>/runs/<job>/run.json       the summary (state, times), rewritten atomically on change
//   <project>/runs/<job>/outcome.json   the outcome (result or error), written once at the end
// Appends survive a kill at any moment: a torn last line is skipped when reading. Runs started by
// this process are also held in memory, so replaying a running job never races its own writes.
import { appendFileSync, constants, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { describeIssues, WorkbenchError } from '../../contract/errors.js';
import { JobEventSchema, jobOutcomeSchema, JobRequestSchema, upgradeStoredRequest, type JobEvent, type JobOutcome, type ParsedJobRequest } from '../../contract/jobs.js';
import { JOB_ID, RunSummarySchema, type ModelRuns, type RunKind, type RunRecord, type RunSummary } from '../../contract/runs.js';
import { emptyTuneRecord, foldTuneEvents, runOf, runOfSummary, type TuneRecord } from '../../contract/tune-record.js';
import { writeFileAtomic } from '../atomic-write.js';
import { projectDir } from '../paths.js';
import { readRegularFile } from '../read-file.js';


// A summary, request or outcome is a few kB; more is not a record the workbench wrote.
const MAX_RECORD_BYTES = 16 << 20;
// Counting a run's events for the list reads at most this much of its log (the newest part).
const MAX_EVENTS_BYTES = 64 << 20;

/** A JSON file's value; undefined when it is missing, not a regular file, too large or not JSON. */
function readJson(file: string): unknown {
  try {
    const { text, truncated } = readRegularFile(file, MAX_RECORD_BYTES);
    return truncated ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Reads events.jsonl, skipping a line torn by a kill mid-append and any line that is not a job event of the contract. */
function readEvents(file: string): JobEvent[] {
  let lines: string[];
  try {
    const { text, truncated } = readRegularFile(file, MAX_EVENTS_BYTES);
    lines = text.split('\n');
    if (truncated) lines.shift(); // the tail starts inside a line
  } catch {
    return []; // missing, or not a file the workbench wrote
  }
  const out: JobEvent[] = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const e = JobEventSchema.safeParse(JSON.parse(line));
      if (e.success) out.push(e.data);
    } catch {
      /* a torn last line */
    }
  }
  return out;
}

/**
 * A run's events, streamed line by line and never read whole (a log of hundreds of MB must neither
 * exhaust memory nor stall other clients): the newest `keep` of them, and how many older ones were
 * left out. A torn last line or one outside the contract is skipped; a FIFO or a folder reads as
 * empty.
 */
async function streamEvents(file: string, keep = MAX_MEMORY_EVENTS): Promise<{ events: JobEvent[]; dropped: number }> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return { events: [], dropped: 0 };
  }
  try {
    if (!(await fh.stat()).isFile()) return { events: [], dropped: 0 };
    const events: JobEvent[] = [];
    let dropped = 0;
    const trim = () => {
      if (events.length > keep) dropped += events.splice(0, events.length - keep).length;
    };
    for await (const line of createInterface({ input: fh.createReadStream({ encoding: 'utf8', autoClose: false }), crlfDelay: Infinity })) {
      if (!line.trim()) continue;
      try {
        const e = JobEventSchema.safeParse(JSON.parse(line));
        if (e.success) events.push(e.data);
      } catch {
        /* a torn last line */
      }
      if (events.length >= 2 * keep) trim();
    }
    trim();
    return { events, dropped };
  } finally {
    await fh.close();
  }
}

/**
 * A stored run summary (run.json), parsed with the contract. Records written before the wire became
 * snake_case hold the request with camelCase keys (outDir, exportPath, workDir, ...): they are
 * renamed first; a summary without its request takes it from request.json. Null when it does not parse.
 */
export function readSummary(dir: string): RunSummary | null {
  const raw = readJson(join(dir, 'run.json'));
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return null;
  const request = upgradeStoredRequest('request' in raw ? raw.request : readJson(join(dir, 'request.json')));
  const parsed = RunSummarySchema.safeParse({ ...raw, request });
  return parsed.success ? parsed.data : null;
}

/**
 * A stored outcome, checked against the outcome schema of its job's kind. One that does not parse
 * (a record damaged, or written by a version whose results differ) becomes a failed outcome whose
 * error (bad_run_record) names the file and the first issues, so the run still shows its events.
 */
function readOutcome(dir: string, job: string, kind: ParsedJobRequest['kind']): JobOutcome | null {
  const file = join(dir, 'outcome.json');
  const raw = readJson(file);
  if (raw === undefined) return null;
  const parsed = jobOutcomeSchema(kind).safeParse(raw);
  if (parsed.success) return parsed.data;
  return { state: 'failed', job, error: new WorkbenchError('bad_run_record', `The outcome of run ${job} (${file}) cannot be read: ${describeIssues(parsed.error)}.`).toJSON() };
}

/** Whether the process that owns a run is alive on this machine (another one's cannot be asked). */
function ownerAlive(owner: RunSummary['owner']): boolean {
  if (!owner || owner.host !== hostname() || owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/** The run kind users see: an export copies a build, or is a compile that writes a .pt. */
export function runKind(request: ParsedJobRequest): RunKind | null {
  if (request.kind === 'inspect') return null;
  // An export is a compile (or a tune that builds from its database) that writes a .pt.
  if (request.kind === 'export' || ((request.kind === 'compile' || request.kind === 'tune') && request.export_path)) return 'export';
  return request.kind;
}

/** The model's defaults: the tuning work dir and where an export goes (both in its project folder). */
export function modelDefaults(model: string): ModelRuns['defaults'] {
  const project = projectDir(model);
  const stem = basename(resolve(model)).replace(/\.(pt2?|pth)$/i, '');
  return { work_dir: join(project, 'tuning'), export_path: join(project, 'exports', `${stem}.tvm.pt`) };
}

interface LiveRun {
  dir: string;
  summary: RunSummary;
  events: JobEvent[];
  outcome: JobOutcome | null;
  /** A tune's record, folded from its events as the app folds them (summary.tune). */
  tune?: TuneRecord;
  savedAt?: number;
}

/** A tune's record from its recorded events (an interrupted or rebuilt run), else undefined. */
function tuneOfEvents(request: ParsedJobRequest, events: JobEvent[], state: string): RunSummary['tune'] {
  if (request.kind !== 'tune' || request.export_path) return undefined;
  return runOf(foldTuneEvents(emptyTuneRecord(request.trials), events), state);
}

/** How often a running tune's summary (trial counts, estimate) is rewritten at most, in ms. */
const TUNE_SUMMARY_EVERY_MS = 2000;

/** Live runs keep at most this many events in memory; the file keeps them all. */
const MAX_MEMORY_EVENTS = 50_000;

export class RunStore {
  private readonly live = new Map<string, LiveRun>();

  private runsDir(model: string): string {
    return join(projectDir(model), 'runs');
  }

  /** Called when a job starts (before its first event). Inspect jobs are not runs. */
  started(job: string, request: ParsedJobRequest, startedAt: number): string | void {
    const kind = runKind(request);
    if (!kind) return;
    const model = resolve(request.model);
    const dir = join(this.runsDir(model), job);
    const summary: RunSummary = { job, kind, state: 'running', model, startedAt, request, events: 0, owner: { pid: process.pid, host: hostname() } };
    const run: LiveRun = { dir, summary, events: [], outcome: null };
    this.live.set(job, run);
    try {
      writeFileAtomic(join(dir, 'request.json'), JSON.stringify(request, null, 1));
      writeFileAtomic(join(dir, 'run.json'), JSON.stringify(summary));
    } catch (e) {
      // The job's own results do not depend on its record: it runs, and says the record is missing.
      return `This run's record could not be written to ${dir} (${(e as Error).message}): the job runs, but it will not be listed after a restart. Free some disk space or make the project folder writable.`;
    }
  }

  event(e: JobEvent): void {
    const run = this.live.get(e.job);
    if (!run) return;
    if (run.events.length < MAX_MEMORY_EVENTS) run.events.push(e);
    run.summary.events += 1;
    try {
      appendFileSync(join(run.dir, 'events.jsonl'), JSON.stringify(e) + '\n');
    } catch {
      /* kept in memory */
    }
    if (run.summary.kind === 'tune' && (e.event === 'tune.trial' || e.event === 'tune.tasks') && run.summary.request.kind === 'tune') {
      run.tune = foldTuneEvents(run.tune ?? emptyTuneRecord(run.summary.request.trials), [e]);
      run.summary.tune = runOf(run.tune, 'running');
      if (Date.now() - (run.savedAt ?? 0) >= TUNE_SUMMARY_EVERY_MS) this.saveSummary(run);
    }
    if (e.event === 'job.state' && e.data.state !== run.summary.state) {
      run.summary.state = e.data.state;
      this.saveSummary(run);
    }
  }

  finished(job: string, outcome: JobOutcome): void {
    const run = this.live.get(job);
    if (!run) return;
    run.outcome = outcome;
    run.summary.state = outcome.state;
    run.summary.finishedAt = Date.now();
    if (outcome.state === 'failed') run.summary.error = outcome.error.message;
    if (run.summary.kind === 'tune') {
      // A finished tune's figures are its result's (the engine's record); a cancelled or failed
      // one's, what its events recorded (the trials it did, not its budget).
      const tuning = outcome.state === 'succeeded' ? (outcome.result as { tuning?: Parameters<typeof runOfSummary>[0] } | undefined)?.tuning : undefined;
      if (tuning) run.summary.tune = { ...runOfSummary(tuning), state: 'succeeded' };
      else if (run.tune) run.summary.tune = runOf(run.tune, outcome.state);
    }
    try {
      writeFileAtomic(join(run.dir, 'outcome.json'), JSON.stringify(outcome));
    } catch {
      /* kept in memory */
    }
    this.saveSummary(run);
  }

  private saveSummary(run: LiveRun): void {
    run.savedAt = Date.now();
    try {
      writeFileAtomic(join(run.dir, 'run.json'), JSON.stringify(run.summary));
    } catch {
      /* kept in memory */
    }
  }

  /**
   * A run whose run.json is missing or damaged, rebuilt from what is intact: its request, events
   * and outcome (marked `damaged`, so that it is shown, not lost). Null without a readable request.
   */
  private rebuild(dir: string, model: string, job: string): RunSummary | null {
    const request = JobRequestSchema.safeParse(upgradeStoredRequest(readJson(join(dir, 'request.json'))));
    const kind = request.success ? runKind(request.data) : null;
    if (!request.success || !kind) return null;
    const outcome = readOutcome(dir, job, request.data.kind);
    // Job ids end with their start time in base 36 (JOB_ID).
    const startedAt = parseInt(job.slice(job.lastIndexOf('-') + 1), 36) || 0;
    const events = readEvents(join(dir, 'events.jsonl'));
    const tune = tuneOfEvents(request.data, events, outcome?.state ?? 'interrupted');
    return {
      job,
      kind,
      state: outcome?.state ?? 'interrupted',
      model,
      startedAt,
      request: request.data,
      ...(outcome?.state === 'failed' ? { error: outcome.error.message } : {}),
      ...(tune ? { tune } : {}),
      events: events.length,
      damaged: `Its summary (${join(dir, 'run.json')}) is missing or damaged: this run was rebuilt from its request, events and outcome.`,
    };
  }

  /** A run from disk; one that says it is running but is not live here was interrupted. */
  private readDisk(model: string, job: string): RunSummary | null {
    const dir = join(this.runsDir(model), job);
    const read = readSummary(dir);
    const s = read && read.job === job ? read : this.live.has(job) ? null : this.rebuild(dir, model, job);
    if (!s) return null;
    if (!this.live.has(job) && (s.state === 'running' || s.state === 'queued')) {
      const outcome = readOutcome(dir, job, s.request.kind);
      if (outcome) return { ...s, state: outcome.state };
      // Running in another live process (a CLI beside the app): its own, not interrupted.
      if (ownerAlive(s.owner)) return s;
      // Its summary was last written at a state change: the events on disk are what it recorded.
      const events = readEvents(join(dir, 'events.jsonl'));
      const tune = tuneOfEvents(s.request, events, 'interrupted');
      return { ...s, state: 'interrupted', events: Math.max(s.events, events.length), ...(tune ? { tune } : {}) };
    }
    return s;
  }

  list(model: string): ModelRuns {
    const abs = resolve(model);
    const dir = this.runsDir(abs);
    const byJob = new Map<string, RunSummary>();
    if (existsSync(dir)) {
      for (const job of readdirSync(dir)) {
        if (!JOB_ID.test(job)) continue;
        const s = this.readDisk(abs, job);
        if (s) byJob.set(job, s);
      }
    }
    for (const run of this.live.values()) if (run.summary.model === abs) byJob.set(run.summary.job, { ...run.summary });
    const runs = [...byJob.values()].sort((a, b) => b.startedAt - a.startedAt);
    const defaults = modelDefaults(abs);
    try {
      // The default export goes here: make it exist, so that an export refusing a missing parent
      // folder still accepts the default.
      mkdirSync(dirname(defaults.export_path), { recursive: true });
    } catch {
      /* reported by the export itself */
    }
    return { project: projectDir(abs), defaults, runs };
  }

  async get(model: string, job: string): Promise<RunRecord> {
    // The id names a folder: never let it climb out of runs/.
    if (!JOB_ID.test(job)) throw new WorkbenchError('bad_request', `"${job}" is not a job id.`);
    const abs = resolve(model);
    const live = this.live.get(job);
    if (live && live.summary.model === abs && live.summary.events === live.events.length) {
      return { summary: { ...live.summary }, events: live.events.slice(), outcome: live.outcome };
    }
    const summary = live ? { ...live.summary } : this.readDisk(abs, job);
    if (!summary) throw new WorkbenchError('unknown_run', `There is no run ${job} for ${abs}.`);
    const dir = join(this.runsDir(abs), job);
    const outcome = live ? live.outcome : readOutcome(dir, job, summary.request.kind);
    const { events, dropped } = await streamEvents(join(dir, 'events.jsonl'));
    return { summary, events, outcome, ...(dropped ? { events_dropped: dropped } : {}) };
  }
}
