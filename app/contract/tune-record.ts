// One record of a tuning run, and every figure shown of it derived from that record alone: trial
// counts (this run's, and the work dir's total against the budget), the first and the best
// estimate, the per-task table (each task's time as the build runs it, and its share of that same
// estimate) and the ETA from this run's own trial rate. The Tune page, the CLI, the runs list and
// the tuning-log reader all show these, so they cannot disagree.
//
// The engine keeps the same record in the work dir (tune/runs.py, `workbench_runs.json`): a resume
// is a new run with its own record, whose first estimate is where the run it resumed ended.
import { z } from 'zod';
import type { JobEvent } from './jobs.js';
import type { TuningLog, TuningSummary } from './results.js';
import { fmtMs } from './format.js';

const msOrNull = z.number().nullable();

/** A tuning run as the engine records it in the work dir, and as the runs list summarises a tune job. */
export const TuneRunSchema = z.looseObject({
  /** The job that ran it. */
  id: z.string().optional(),
  /** running | tuned (the search ended; the build follows) | measured | cancelled | failed | interrupted */
  state: z.string().optional(),
  /** The work dir's total trial budget the run was given (records already there count). */
  budget: z.number().int().nullable(),
  /** Records in the work dir, for this model and target, when the run started. */
  resumed: z.number().int(),
  /** Trials this run measured. */
  trials: z.number().int(),
  /** resumed + trials: the work dir's records for this model after the run. */
  total: z.number().int(),
  /** Trials of this run that failed (build or run error). */
  errors: z.number().int(),
  /** The estimate when the run started, before its first trial (for a resume: where the run it resumed ended). */
  first_estimate_ms: msOrNull,
  /** The estimate now: the best so far (it only falls). */
  estimate_ms: msOrNull,
  /** The tuned build's measured p50, once the run's build was measured. */
  measured_ms: msOrNull.optional(),
  started_at: z.number().optional(),
  ended_at: z.number().nullable().optional(),
});
export type TuneRun = z.output<typeof TuneRunSchema>;

/** A task as the record keeps it: what it costs as the build runs it comes from these alone. */
export interface TuneTask {
  id: number;
  name: string;
  weight: number;
  /** Records of this task in the work dir (resumed ones included). */
  trials: number;
  /** This run's failed trials. */
  errors: number;
  best_ms: number | null;
  /** The kernel under the default CPU schedule: what the build runs unless a record beats it. */
  default_ms: number | null;
  /** The op's library kernel (timed once per work dir), where it has one: the build runs it where faster. */
  library_ms: number | null;
}

/** The live record: the run's figures, its tasks, and the engine clock of its trials (for the ETA). */
export interface TuneRecord extends TuneRun {
  tasks: Record<number, TuneTask>;
  /** Engine time (s) and count at the end of the run's first batch, and at its latest trial. */
  rate: { t0: number; n0: number; t: number; n: number } | null;
}

export function emptyTuneRecord(budget: number | null = null): TuneRecord {
  return { budget, resumed: 0, trials: 0, total: 0, errors: 0, first_estimate_ms: null, estimate_ms: null, tasks: {}, rate: null };
}

/**
 * Folds one run's events into its record (a new object; `rec` is not changed). Only tune.tasks
 * and tune.trial matter; the caller passes one job's events.
 */
export function foldTuneEvents(rec: TuneRecord, events: Iterable<JobEvent>): TuneRecord {
  let out: TuneRecord | null = null;
  const own = () => (out ??= { ...rec, tasks: { ...rec.tasks }, rate: rec.rate && { ...rec.rate } });
  for (const e of events) {
    if (e.event === 'tune.tasks') {
      const r = own();
      const d = e.data;
      if (typeof d.budget === 'number') r.budget = d.budget;
      if (typeof d.resumed_records === 'number') {
        r.resumed = d.resumed_records;
        r.total = r.resumed + r.trials;
      }
      if (d.estimated_ms !== undefined && r.trials === 0) r.first_estimate_ms = d.estimated_ms ?? null;
      if (d.estimated_ms !== undefined && r.estimate_ms === null) r.estimate_ms = d.estimated_ms ?? null;
      for (const t of d.tasks) {
        const prev = r.tasks[t.id];
        r.tasks[t.id] = { id: t.id, name: t.name, weight: t.weight, trials: prev?.trials ?? t.records ?? 0, errors: prev?.errors ?? 0, best_ms: prev?.best_ms ?? t.best_ms ?? null, default_ms: t.default_ms ?? null, library_ms: t.library_ms ?? null };
      }
    } else if (e.event === 'tune.trial') {
      const r = own();
      const d = e.data;
      // Older engines sent no tune.tasks estimate: the first trial's is the first there is.
      if (r.trials === 0 && r.first_estimate_ms === null) r.first_estimate_ms = d.estimated_total_ms;
      r.trials += 1;
      r.total = d.total_trials;
      if (r.trials === 1 && !r.resumed) r.resumed = d.total_trials - 1;
      const failed = !!d.error || d.latency_ms === null;
      if (failed) r.errors += 1;
      if (d.estimated_total_ms !== null) r.estimate_ms = d.estimated_total_ms;
      const prev = r.tasks[d.task_id] ?? { id: d.task_id, name: d.task_name, weight: 1, trials: 0, errors: 0, best_ms: null, default_ms: null, library_ms: null };
      r.tasks[d.task_id] = { ...prev, name: prev.name || d.task_name, trials: d.trial, errors: prev.errors + (failed ? 1 : 0), best_ms: d.best_ms ?? prev.best_ms };
      const t = d.time_s;
      if (typeof t === 'number') {
        const q = r.rate;
        // Trials arrive a batch at a time: the rate counts from the end of the first batch.
        if (!q) r.rate = { t0: t, n0: r.trials, t, n: r.trials };
        else if (q.n === q.n0 && t - q.t0 < 0.5) r.rate = { t0: t, n0: r.trials, t, n: r.trials };
        else r.rate = { ...q, t, n: r.trials };
      }
    }
  }
  return out ?? rec;
}

/** A record from one run's events. */
export function tuneRecordOf(events: Iterable<JobEvent>, budget: number | null = null): TuneRecord {
  return foldTuneEvents(emptyTuneRecord(budget), events);
}

// ---- what the build runs per task, and its share of the estimate ----

export type RunsAs = 'record' | 'default' | 'library';

/**
 * The engine's definition (tune/estimate.py): a task runs its best record when that beats the
 * default schedule, else the default; and the op's library kernel where that is faster still.
 * The estimate is Σ weight × this over tasks.
 */
export function placedMs(t: Pick<TuneTask, 'best_ms' | 'default_ms' | 'library_ms'>): { ms: number | null; as: RunsAs | null } {
  const rec = t.best_ms !== null && (t.default_ms === null || t.best_ms < t.default_ms);
  const applied = rec ? t.best_ms : t.default_ms;
  const as: RunsAs | null = applied === null ? null : rec ? 'record' : 'default';
  if (t.library_ms !== null && applied !== null && t.library_ms < applied) return { ms: t.library_ms, as: 'library' };
  return { ms: applied, as };
}

export const RUNS_AS_LABELS: Record<RunsAs, string> = { record: 'tuned record', default: 'default schedule', library: 'library kernel (not tuned)' };

export interface TaskShare {
  task: TuneTask;
  ms: number | null;
  as: RunsAs | null;
  /** weight × ms over the estimate (Σ of these over tasks): the shares add up to 1. */
  share: number | null;
}

/** Each task's time as the build runs it and its share of the same total as the headline estimate. */
export function taskShares(tasks: TuneTask[]): { rows: TaskShare[]; total: number | null; library: { tasks: number; ms: number; share: number | null } } {
  const placed = tasks.map((t) => ({ task: t, ...placedMs(t) }));
  const total = placed.every((p) => p.ms !== null) && placed.length ? placed.reduce((a, p) => a + p.task.weight * (p.ms as number), 0) : null;
  const rows = placed.map((p) => ({ ...p, share: total && p.ms !== null ? (p.task.weight * p.ms) / total : null }));
  const lib = rows.filter((r) => r.as === 'library');
  const libMs = lib.reduce((a, r) => a + r.task.weight * (r.ms as number), 0);
  return { rows, total, library: { tasks: lib.length, ms: libMs, share: total ? libMs / total : null } };
}

// ---- the figures every view shows ----

/** Seconds left at this run's own trial rate (engine clock), from its latest trial; null until two batches are in. */
export function etaSeconds(rec: Pick<TuneRecord, 'rate' | 'budget' | 'total'>): number | null {
  const q = rec.rate;
  if (!q || rec.budget === null) return null;
  const left = rec.budget - rec.total;
  if (left <= 0) return 0;
  if (q.n <= q.n0 || q.t - q.t0 < 1) return null;
  return (left * (q.t - q.t0)) / (q.n - q.n0);
}

export interface TuneFigures {
  /** "25 of 25" (the work dir's total against the budget). */
  trials: string;
  /** "16 this run, 9 resumed". */
  split: string;
  first: string;
  best: string;
  measured: string;
}

/** The figures of a run record, as every view prints them. `measuredMs`: the tuned build's p50, once known. */
export function tuneFigures(r: TuneRun, measuredMs?: number | null, missing = '–'): TuneFigures {
  return {
    trials: r.budget !== null ? `${r.total} of ${r.budget}` : `${r.total}`,
    split: r.resumed ? `${r.trials} this run, ${r.resumed} resumed` : `${r.trials} this run`,
    first: fmtMs(r.first_estimate_ms, missing),
    best: fmtMs(r.estimate_ms, missing),
    measured: fmtMs(measuredMs ?? r.measured_ms, missing),
  };
}

/** One line: "25 of 25 trials (16 this run, 9 resumed) · estimate 129 µs (first 736 µs) · measured 81.6 µs". */
export function tuneLine(r: TuneRun, measuredMs?: number | null, missing = '–'): string {
  const f = tuneFigures(r, measuredMs, missing);
  const m = measuredMs ?? r.measured_ms;
  return `${f.trials} trials (${f.split}) · estimated ${f.best} (first ${f.first})${m !== null && m !== undefined ? ` · measured ${f.measured}` : ''}`;
}

/** The tasks of a tuning log (the engine's reading of a work dir) as the record keeps them: only
 * those the workbench weighed (the model's), as the log's estimate counts them. */
export function tasksOfLog(log: Pick<TuningLog, 'tasks'>): TuneTask[] {
  return log.tasks.flatMap((t) => (t.weight === null ? [] : [{ id: t.workload, name: t.name, weight: t.weight, trials: t.records, errors: t.failures, best_ms: t.best_ms, default_ms: t.default_ms ?? null, library_ms: t.library_ms ?? null }]));
}

/** The latest run a tuning log records (the workbench's own record of it), if any. */
export function latestRun(log: Pick<TuningLog, 'runs'>): TuneRun | null {
  return log.runs?.length ? log.runs[log.runs.length - 1] : null;
}

/** A tune result's summary as its run record (the same figures the engine keeps in the work dir). */
export function runOfSummary(t: Pick<TuningSummary, 'budget' | 'resumed_records' | 'new_trials' | 'trials' | 'tasks' | 'first_estimate_ms' | 'estimated_ms' | 'measured_ms' | 'run'>): TuneRun {
  return {
    ...(t.run ?? {}),
    budget: t.budget,
    resumed: t.resumed_records,
    trials: t.new_trials,
    total: t.trials,
    errors: t.tasks.reduce((a, x) => a + x.errors, 0),
    first_estimate_ms: t.first_estimate_ms ?? t.run?.first_estimate_ms ?? null,
    estimate_ms: t.estimated_ms,
    measured_ms: t.measured_ms ?? null,
  };
}

/** A tune result's tasks as the record keeps them. */
export function tasksOfSummary(t: Pick<TuningSummary, 'tasks'>): TuneTask[] {
  return t.tasks.map((x) => ({ id: x.id, name: x.name, weight: x.weight, trials: x.trials, errors: x.errors, best_ms: x.best_ms, default_ms: x.default_ms ?? null, library_ms: x.library_ms ?? null }));
}

/** The record without its live parts (tasks, rate): what a run summary and the work dir keep. */
export function runOf(rec: TuneRecord, state?: string): TuneRun {
  const { tasks: _tasks, rate: _rate, ...run } = rec;
  return state ? { ...run, state } : run;
}
