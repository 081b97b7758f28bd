// Runs: every compile, tune, bench and export job is also a run, kept in the model's project folder
// (request, events as JSON lines, outcome) so that the app can list a model's past runs and, after
// a reload, a reconnect or a restart, reattach to the ones still running.
import { z } from 'zod';
import type { JobEvent, JobOutcome, ParsedJobRequest } from './jobs.js';

/** `interrupted`: the run was running when the process that ran it stopped (its engine went with it). */
export type RunState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

/** What the run did, as users name it: an export is a compile that writes a .pt. */
export type RunKind = 'compile' | 'tune' | 'bench' | 'export';

export interface RunSummary {
  job: string;
  kind: RunKind;
  state: RunState;
  model: string;
  startedAt: number;
  finishedAt?: number;
  request: ParsedJobRequest;
  /** The error's sentence when the run failed. */
  error?: string;
  /** How many events the run recorded. */
  events: number;
}

export interface ModelRuns {
  /** The model's project folder. */
  project: string;
  /** Defaults the app shows and uses for this model (never carried over to another model). */
  defaults: { workDir: string; exportPath: string };
  /** Newest first. */
  runs: RunSummary[];
}

export interface RunRecord {
  summary: RunSummary;
  /** Every event so far, in order: replaying them rebuilds the chart and the tables. */
  events: JobEvent[];
  outcome: JobOutcome | null;
}

/** Job ids are `kind-N-base36time`; checked strictly because they name folders on disk. */
export const JOB_ID = /^[a-z]+-\d+-[a-z0-9]+$/;
const model = z.string().min(1).max(4096);
export const ListRunsArgs = z.object({ model }).strict();
export const GetRunArgs = z.object({ model, job: z.string().regex(JOB_ID, 'not a job id').max(200) }).strict();
