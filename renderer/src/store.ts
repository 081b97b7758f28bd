// The renderer's state (zustand). Job events arrive in batches (see events.ts) and are folded into
// the store in one update per animation frame, so thousands of tuning trials stay cheap.
import { create } from 'zustand';
import type { BuildComparison } from '../../app/contract/build-compare.js';
import type { AppInfo } from '../../app/contract/api.js';
import type { BenchResult, CompileResult, InspectResult, TuningLog } from '../../app/contract/results.js';
import type { ModelRuns } from '../../app/contract/runs.js';
import { DEFAULT_TIMEOUT_S, type JobEvent, type JobOutcome } from '../../app/contract/jobs.js';
import type { ConnectionStatus } from './transport/index.js';
import { emptyTuneRecord, foldTuneEvents, type TuneRecord } from '../../app/contract/tune-record.js';
import type { BuildChoice } from './builds.js';
import type { RemoteTarget } from '../../app/contract/targets.js';

export type View = 'model' | 'graph' | 'inputs' | 'compile' | 'tune' | 'logs' | 'bench' | 'export' | 'compare' | 'targets';
export const VIEWS: Array<{ id: View; label: string; key: string }> = [
  { id: 'model', label: 'Model', key: '1' },
  { id: 'graph', label: 'Graph', key: '8' },
  { id: 'inputs', label: 'Inputs', key: '2' },
  { id: 'compile', label: 'Compile & verify', key: '3' },
  { id: 'tune', label: 'Tune', key: '4' },
  { id: 'logs', label: 'Tuning logs', key: '5' },
  { id: 'bench', label: 'Benchmark', key: '6' },
  { id: 'export', label: 'Export', key: '7' },
  { id: 'compare', label: 'Compare builds', key: '9' },
  { id: 'targets', label: 'Targets', key: '0' },
];

export type Theme = 'system' | 'light' | 'dark';

export interface JobView {
  id: string;
  kind: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  stage: string;
  message: string;
  fraction?: number;
  logs: Array<{ level: string; message: string }>;
  outcome?: JobOutcome;
  /** When it started (from its run record after a reload), for elapsed time and ETA. */
  startedAt?: number;
  /** Its time limit in seconds (the request's timeout_s, or its kind's default). */
  timeoutS?: number;
  /** Cancel was pressed: show "Cancelling…" at once, before the job confirms. */
  cancelRequested?: boolean;
  /** A tune's first trial number (total_trials): trials before it came from the database, so the ETA counts from it. */
  firstTrial?: number;
}

export interface TrialPoint {
  n: number;
  task: number;
  latency: number | null;
  best: number | null;
  est: number | null;
  /** The server that measured it (a tune over an RPC tracker). */
  server?: string | null;
}

export interface TaskRow {
  id: number;
  name: string;
  weight: number;
  trials: number;
  errors: number;
  best: number | null;
  /** The kernel under the default CPU schedule: what the build runs unless a record beats it. */
  defaultMs: number | null;
}

export interface InputRow {
  name: string;
  dims: string;
  dtype: string;
  range: string;
}

export interface BenchSample {
  i: number;
  ms: number;
}

export interface TuningRun {
  dir: string;
  data: TuningLog;
}

export interface State {
  view: View;
  theme: Theme;
  connection: { status: ConnectionStatus; why?: string };
  mode: 'electron' | 'browser';
  info: AppInfo | null;
  recent: string[];
  notice: string | null;
  modelPath: string;
  /** A model being opened: it replaces modelPath only once its inspection succeeds. */
  openingPath?: string;
  inspectJob?: string;
  /** The open model's runs, project folder and defaults (work dir, export path). */
  project: ModelRuns | null;
  /** The run whose result `compile` shows when the latest compile did not succeed. */
  compileFrom?: string;
  inspect: InspectResult | null;
  inputs: InputRow[];
  target: string;
  jobs: Record<string, JobView>;
  compileJob?: string;
  compile: CompileResult | null;
  tuneJob?: string;
  tuneBudget: number;
  /** Candidates per search round; '' lets the engine choose (up to 16). Smaller rounds show trials sooner. */
  tunePerRound: string;
  /** The tune's time limit in hours (its request's timeout_s): past it the tune is stopped. */
  tuneLimitH: number;
  /** The time limit of compiles and exports, in minutes (their requests' timeout_s). */
  compileLimitMin: number;
  tuneWorkDir: string;
  /** Where tunes measure (the Targets page): an RPC tracker's key, or null for this machine. */
  remoteTarget: RemoteTarget | null;
  trackerAddress: string;
  trials: TrialPoint[];
  tasks: Record<number, TaskRow>;
  /** The shown tune's record (app/contract/tune-record.ts): trial counts, budget, first and best estimate, ETA. */
  tuneRecord: TuneRecord;
  tuneResult: CompileResult | null;
  benchJob?: string;
  benchVs: string;
  benchIterations: number;
  benchSamples: Record<string, BenchSample[]>;
  benchResult: BenchResult | null;
  /** Sweep the batch (issue 24): measure the model at each size of its symbolic dimension; the limit (ms, as typed) picks the best size. */
  benchSweep: boolean;
  benchLatencyLimit: string;
  /** Benchmark on this machine although a tracker key is picked on the Targets page (the Benchmark page's switch). */
  benchHere: boolean;
  exportJob?: string;
  exportPath: string;
  /** The build the Export page exports and the graph view colours (builds.ts). */
  buildChoice: BuildChoice;
  exported: CompileResult | null;
  runs: TuningRun[];
  /** The runs whose builds the Compare page puts side by side (job ids of succeeded compile, tune or export runs). */
  compareA?: string;
  compareB?: string;
  /** The Compare page's comparison, shown by the graph view's A/B mode (set by its "Show in the graph"). */
  graphCompare?: BuildComparison;
  /** Set when the connection came back after a loss (a notice, cleared after a while). */
  reconnectedAt?: number;
}

function readRemoteTarget(): RemoteTarget | null {
  try {
    const v = JSON.parse(localStorage.getItem('torchtvm.remoteTarget') ?? 'null') as RemoteTarget | null;
    return v && typeof v.tracker === 'string' && typeof v.key === 'string' ? v : null;
  } catch {
    return null;
  }
}

export const initialState: State = {
  view: 'model',
  theme: (localStorage.getItem('torchtvm.theme') as Theme | null) ?? 'system',
  connection: { status: 'connecting' },
  mode: 'browser',
  info: null,
  recent: [],
  notice: null,
  modelPath: '',
  project: null,
  inspect: null,
  inputs: [],
  target: 'llvm',
  jobs: {},
  compile: null,
  tuneBudget: 64,
  tunePerRound: '',
  tuneLimitH: DEFAULT_TIMEOUT_S.tune / 3600,
  compileLimitMin: DEFAULT_TIMEOUT_S.compile / 60,
  tuneWorkDir: '',
  remoteTarget: readRemoteTarget(),
  trackerAddress: localStorage.getItem('torchtvm.tracker') ?? '127.0.0.1:9190',
  trials: [],
  tasks: {},
  tuneRecord: emptyTuneRecord(),
  tuneResult: null,
  benchVs: '',
  benchIterations: 200,
  benchSweep: false,
  benchLatencyLimit: '',
  benchHere: false,
  benchSamples: {},
  benchResult: null,
  exportPath: '',
  buildChoice: 'auto',
  exported: null,
  runs: [],
};

export const useStore = create<State>()(() => initialState);
export const set = useStore.setState;
export const get = useStore.getState;

/**
 * The highest trial / bench iteration folded in per job: a replayed run and the live stream can
 * overlap (the replay is fetched while events keep arriving), and a point must not be drawn twice.
 */
const seen = new Map<string, number>();
export function forgetSeen(job: string): void {
  for (const k of [...seen.keys()]) if (k === job || k.startsWith(`${job}\u0000`)) seen.delete(k);
}
function firstTime(key: string, n: number): boolean {
  const last = seen.get(key);
  if (last !== undefined && n <= last) return false;
  seen.set(key, n);
  return true;
}

/** Folds a batch of events into the store: one state update for the whole batch. */
export function applyEvents(events: JobEvent[]): void {
  if (!events.length) return;
  const s = get();
  const jobs = { ...s.jobs };
  let trials: TrialPoint[] | undefined;
  let tasks: Record<number, TaskRow> | undefined;
  let benchSamples: Record<string, BenchSample[]> | undefined;
  const tuneEvents: JobEvent[] = [];
  const touch = (id: string): JobView => {
    const j = jobs[id];
    const copy: JobView = j ? { ...j } : { id, kind: id.split('-')[0], state: 'running', stage: '', message: '', logs: [] };
    jobs[id] = copy;
    return copy;
  };
  for (const e of events) {
    switch (e.event) {
      case 'job.state': {
        const j = touch(e.job);
        j.state = e.data.state;
        j.kind = e.data.kind;
        j.startedAt ??= Date.now();
        break;
      }
      case 'job.progress': {
        const j = touch(e.job);
        j.stage = e.data.stage;
        j.message = e.data.message;
        j.fraction = e.data.fraction;
        break;
      }
      case 'log': {
        const j = touch(e.job);
        j.logs = [...j.logs.slice(-499), e.data];
        break;
      }
      case 'tune.tasks': {
        if (e.job !== s.tuneJob) break;
        tuneEvents.push(e);
        tasks ??= { ...s.tasks };
        for (const t of e.data.tasks) tasks[t.id] = { id: t.id, name: t.name, weight: t.weight, trials: tasks[t.id]?.trials ?? 0, errors: tasks[t.id]?.errors ?? 0, best: tasks[t.id]?.best ?? null, defaultMs: t.default_ms ?? null };
        break;
      }
      case 'tune.trial': {
        if (e.job !== s.tuneJob) break;
        const d = e.data;
        if (!firstTime(e.job, d.total_trials)) break;
        tuneEvents.push(e);
        if (jobs[e.job]?.firstTrial === undefined) touch(e.job).firstTrial = d.total_trials;
        trials ??= s.trials.slice();
        trials.push({ n: d.total_trials, task: d.task_id, latency: d.latency_ms, best: d.best_ms, est: d.estimated_total_ms, ...(d.server ? { server: d.server } : {}) });
        tasks ??= { ...s.tasks };
        const prev = tasks[d.task_id] ?? { id: d.task_id, name: d.task_name, weight: 1, trials: 0, errors: 0, best: null, defaultMs: null };
        tasks[d.task_id] = { ...prev, name: prev.name || d.task_name, trials: prev.trials + 1, errors: prev.errors + (d.error || d.latency_ms === null ? 1 : 0), best: d.best_ms ?? prev.best };
        break;
      }
      case 'bench.sample': {
        if (e.job !== s.benchJob) break;
        if (!firstTime(`${e.job}\u0000${e.data.model}`, e.data.iteration)) break;
        benchSamples ??= { ...s.benchSamples };
        const list = (benchSamples[e.data.model] = (benchSamples[e.data.model] ?? []).slice());
        list.push({ i: e.data.iteration, ms: e.data.latency_ms });
        break;
      }
    }
  }
  const tuneRecord = tuneEvents.length ? foldTuneEvents(s.tuneRecord, tuneEvents) : undefined;
  set({ jobs, ...(trials ? { trials } : {}), ...(tasks ? { tasks } : {}), ...(tuneRecord ? { tuneRecord } : {}), ...(benchSamples ? { benchSamples } : {}) });
}

export function finishJob(id: string, outcome: JobOutcome): void {
  const jobs = { ...get().jobs };
  const j = jobs[id] ?? { id, kind: id.split('-')[0], state: outcome.state, stage: '', message: '', logs: [] };
  jobs[id] = { ...j, state: outcome.state, outcome, fraction: outcome.state === 'succeeded' ? 1 : j.fraction };
  set({ jobs });
}
