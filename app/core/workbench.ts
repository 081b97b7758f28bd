// The WorkbenchApi implemented on plain Node: what Electron's main process, the browser-mode
// server and the CLI all call.
import { existsSync, readFileSync } from 'node:fs';
import type { AppInfo, WorkbenchApi } from '../contract/api.js';
import { JobRequestSchema, type JobRequest } from '../contract/jobs.js';
import { EnginePool, type EnginePoolOptions } from './engine-client/engine-pool.js';
import { benchOnTarget, engineRunners } from './engine-client/engine-runners.js';
import { type JobRunner, JobManager } from './jobs.js';
import { prepareOutputs, recordExport } from './output-paths.js';
import { RunStore } from './runs/run-store.js';
import { paths } from './paths.js';
import { addRecentModel, recentModels } from './settings.js';
import { readTuningLog } from './tuning/tuning-log.js';

export interface WorkbenchOptions {
  host: string;
  /** The engines' options: the Python, the cancel grace, how many run jobs at once (maxEngines). */
  engine?: EnginePoolOptions;
  /** Extra or replacement runners (the bench host registers 'bench'). */
  runners?: Partial<Record<string, JobRunner>>;
}

export interface Workbench extends WorkbenchApi {
  /** The Python engines: each job on one of its own, so an inspection never waits behind a tune. */
  readonly engine: EnginePool;
  readonly jobs: JobManager;
  readonly runs: RunStore;
  close(): Promise<void>;
}

export function createWorkbench(opts: WorkbenchOptions): Workbench {
  const engine = new EnginePool(opts.engine);
  const runs = new RunStore();
  const runners = { ...engineRunners(engine), ...opts.runners };
  // A bench naming a tracker and key is timed on a server of the key (an engine uploads it); others by the bench host.
  const jobs = new JobManager({ ...runners, bench: benchOnTarget(engine, runners.bench) }, runs);
  // Subscribed before any job starts, so every event of every run reaches its events.jsonl.
  jobs.onEvent((e) => runs.event(e));
  const pkg = JSON.parse(readFileSync(`${paths.root}/package.json`, 'utf8')) as { version: string };
  let versions: Record<string, string> | undefined;

  return {
    engine,
    jobs,
    runs,
    async info(): Promise<AppInfo> {
      if (!versions) {
        const r = await engine.request('versions', {}).done.catch(() => ({}));
        versions = { node: process.versions.node, ...r };
      }
      return { version: pkg.version, versions, exampleModel: existsSync(paths.exampleModel) ? paths.exampleModel : null, platform: `${process.platform}-${process.arch}`, host: opts.host, runtime: { library: process.env.TORCHTVM_RUNTIME_LIB ?? paths.runtimeLib, pythonPath: paths.engineDir, python: paths.python } };
    },
    async startJob(request: JobRequest) {
      // Where a compile or tune writes is checked (and locked) before anything is built.
      const parsed = JobRequestSchema.safeParse(request);
      const writes = parsed.success && (parsed.data.kind === 'compile' || parsed.data.kind === 'tune' || parsed.data.kind === 'export') ? parsed.data : null;
      const release = writes ? prepareOutputs(writes) : () => {};
      let job: string;
      try {
        job = jobs.start(request);
      } catch (e) {
        release();
        throw e;
      }
      jobs.wait(job).then(
        (o) => {
          const files = o.state === 'succeeded' && 'files' in o.result ? o.result.files : undefined;
          if (isRecord(files) && typeof files.exported === 'string') recordExport(files.exported);
          release();
        },
        release,
      );
      if ('model' in request && request.kind !== 'bench') {
        jobs.wait(job).then((o) => o.state === 'succeeded' && addRecentModel(request.model), () => {});
      }
      return { job };
    },
    async cancelJob({ job }) {
      return { cancelled: jobs.cancel(job) };
    },
    waitJob: ({ job }) => jobs.wait(job),
    async listJobs() {
      return jobs.list();
    },
    // An engine reads the work dir (beside a running job, not queued behind it).
    readTuningLog: ({ dir }) => readTuningLog(engine, dir),
    async listRuns({ model }) {
      return runs.list(model);
    },
    async getRun({ model, job }) {
      return runs.get(model, job);
    },
    async recentModels() {
      return recentModels();
    },
    // The tracker is asked by an engine (TVM's tracker client), beside a running job.
    trackerQueues: ({ tracker, key }) => engine.request('tracker_queues', { tracker, ...(key ? { key } : {}) }).done,
    onEvent: (listener) => jobs.onEvent(listener),
    close: () => engine.close(),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
