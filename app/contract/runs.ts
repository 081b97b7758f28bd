// Runs: every compile, tune, bench and export job is also a run, kept in the model's project folder
// (request, events as JSON lines, outcome) so that the app can list a model's past runs and, after
// a reload, a reconnect or a restart, reattach to the ones still running.
import { z } from 'zod';
import { JobEventSchema, JobOutcomeSchema, JobRequestSchema } from './jobs.js';
import { TuneRunSchema } from './tune-record.js';

/** `interrupted`: the run was running when the process that ran it stopped (its engine went with it). */
export const RunStateSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted']);
export type RunState = z.output<typeof RunStateSchema>;

/** What the run did, as users name it: an export is a compile that writes a .pt. */
export const RunKindSchema = z.enum(['compile', 'tune', 'bench', 'export']);
export type RunKind = z.output<typeof RunKindSchema>;

export const RunSummarySchema = z.object({
  job: z.string(),
  kind: RunKindSchema,
  state: RunStateSchema,
  model: z.string(),
  startedAt: z.number(),
  finishedAt: z.number().optional(),
  /** The parsed request (snake_case; records written before that are upgraded when read). */
  request: JobRequestSchema,
  /** The error's sentence when the run failed. */
  error: z.string().optional(),
  /** How many events the run recorded. */
  events: z.number().int(),
  /** Set when the summary (run.json) could not be read: the run was rebuilt from its request,
   * events and outcome, and this says so. */
  damaged: z.string().optional(),
  /** The process that runs it (written when it starts): a run another live process owns is running, not interrupted. */
  owner: z.object({ pid: z.number().int(), host: z.string() }).optional(),
  /** A tune: its record (trials this run and in all, budget, first and best estimate), from its events and result. */
  tune: TuneRunSchema.optional(),
});
export type RunSummary = z.output<typeof RunSummarySchema>;

export const ModelRunsSchema = z.object({
  /** The model's project folder. */
  project: z.string(),
  /** Defaults the app shows and uses for this model's requests (never carried over to another model). */
  defaults: z.object({ work_dir: z.string(), export_path: z.string() }),
  /** Newest first. */
  runs: z.array(RunSummarySchema),
});
export type ModelRuns = z.output<typeof ModelRunsSchema>;

export const RunRecordSchema = z.object({
  summary: RunSummarySchema,
  /** Every event so far, in order: replaying them rebuilds the chart and the tables. */
  events: z.array(JobEventSchema),
  outcome: JobOutcomeSchema.nullable(),
  /** How many of its oldest events were left out (a log past 50,000 events): the newest are kept. */
  events_dropped: z.number().int().optional(),
});
export type RunRecord = z.output<typeof RunRecordSchema>;

/** Job ids are `kind-N-base36time`; checked strictly because they name folders on disk. */
export const JOB_ID = /^[a-z]+-\d+-[a-z0-9]+$/;
const model = z.string().min(1).max(4096);
export const ListRunsArgs = z.object({ model }).strict();
export const GetRunArgs = z.object({ model, job: z.string().regex(JOB_ID, 'not a job id').max(200) }).strict();
