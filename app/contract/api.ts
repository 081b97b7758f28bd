// The WorkbenchApi: the one interface that the renderer calls, implemented by app/core and carried
// over Electron IPC (preload), WebSocket (browser mode) and used directly by the CLI.
import { z } from 'zod';
import { describeIssues, WorkbenchError } from './errors.js';
import { GetRunArgs, ListRunsArgs, type ModelRuns, type RunRecord } from './runs.js';
import { JobRequestSchema, JobStateSchema, type JobEvent, type JobOutcome, type JobRequest } from './jobs.js';
import type { TuningLog } from './results.js';
import { TrackerQueuesArgs, type TrackerQueues } from './targets.js';

export const AppInfoSchema = z.object({
  version: z.string(),
  versions: z.record(z.string(), z.string()),
  exampleModel: z.string().nullable(),
  platform: z.string(),
  /** 'electron' | 'browser' | 'cli' */
  host: z.string(),
  /** Where deployments find the runtime op, the engine's Python package and its interpreter (for snippets that work from a fresh shell). */
  runtime: z.object({ library: z.string(), pythonPath: z.string(), python: z.string() }).optional(),
});
export type AppInfo = z.output<typeof AppInfoSchema>;

export const JobSummarySchema = z.object({
  job: z.string(),
  kind: z.string(),
  state: JobStateSchema,
  startedAt: z.number(),
  label: z.string(),
  /** Its time limit: past it the job is stopped and fails with timed_out. */
  timeoutS: z.number().optional(),
});
export type JobSummary = z.output<typeof JobSummarySchema>;

export interface WorkbenchApi {
  info(): Promise<AppInfo>;
  startJob(request: JobRequest): Promise<{ job: string }>;
  cancelJob(args: { job: string }): Promise<{ cancelled: boolean }>;
  waitJob(args: { job: string }): Promise<JobOutcome>;
  listJobs(): Promise<JobSummary[]>;
  /** Reads a MetaSchedule work dir (tasks, records, best-so-far curves). */
  readTuningLog(args: { dir: string }): Promise<TuningLog>;
  recentModels(): Promise<string[]>;
  /** An RPC tracker's queues (servers, free, pending per key); with a key, its servers' CPU and the target a build for them gets. */
  trackerQueues(args: { tracker: string; key?: string }): Promise<TrackerQueues>;
  /** A model's runs (newest first), its project folder and the defaults that belong to it. */
  listRuns(args: { model: string }): Promise<ModelRuns>;
  /** One run with every event so far (to replay) and its outcome once it has one. */
  getRun(args: { model: string; job: string }): Promise<RunRecord>;
  /** Subscribes to every job event; returns the unsubscribe function. */
  onEvent(listener: (event: JobEvent) => void): () => void;
}

/** Argument schemas for every callable method: the allow-list that IPC and WebSocket enforce. */
const jobRef = z.object({ job: z.string().min(1).max(200) }).strict();
export const API_ARGS = {
  info: z.tuple([]),
  startJob: z.tuple([JobRequestSchema]),
  cancelJob: z.tuple([jobRef]),
  waitJob: z.tuple([jobRef]),
  listJobs: z.tuple([]),
  readTuningLog: z.tuple([z.object({ dir: z.string().min(1).max(4096) }).strict()]),
  recentModels: z.tuple([]),
  trackerQueues: z.tuple([TrackerQueuesArgs]),
  listRuns: z.tuple([ListRunsArgs]),
  getRun: z.tuple([GetRunArgs]),
} as const;

export type ApiMethod = keyof typeof API_ARGS;
export const API_METHODS = Object.keys(API_ARGS) as ApiMethod[];

/** Channel names: invoke on one channel, events pushed on the other. */
export const CHANNELS = { invoke: 'workbench:invoke', event: 'workbench:event' } as const;

/** Checks a call against the allow-list (own keys of API_ARGS only) and its schema; throws a `bad_request` WorkbenchError. */
export function validateCall(method: unknown, args: unknown): { method: ApiMethod; args: unknown[] } {
  if (typeof method !== 'string' || !Object.hasOwn(API_ARGS, method)) {
    // Never String(method): an object without a prototype (or a hostile toString) would throw here.
    const named = typeof method === 'string' ? `"${method.slice(0, 64)}${method.length > 64 ? '…' : ''}"` : `of type ${method === null ? 'null' : typeof method}`;
    throw new WorkbenchError('bad_request', `Unknown method ${named}; the workbench offers ${API_METHODS.join(', ')}.`);
  }
  const parsed = API_ARGS[method as ApiMethod].safeParse(args);
  if (!parsed.success) throw new WorkbenchError('bad_request', `Invalid arguments for ${method}: ${describeIssues(parsed.error)}.`);
  return { method: method as ApiMethod, args: parsed.data as unknown[] };
}

export type { JobEvent, JobOutcome, JobRequest };
