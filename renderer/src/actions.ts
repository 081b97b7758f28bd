// What the views do: start jobs through the WorkbenchApi and keep their outcomes in the store.
// Every compile, tune, bench and export job is a run that app/core keeps in the model's project
// folder; opening a model (or reloading the page, or reconnecting) restores the latest run of each
// kind from there: finished ones show their results, running ones are reattached (their recorded
// events replay, then the live ones follow, and Cancel works).
import { DEFAULT_TIMEOUT_S, parseJobResult, type JobOutcome, type JobRequest } from '../../app/contract/jobs.js';
import type { InspectResult } from '../../app/contract/results.js';
import type { RunKind, RunSummary } from '../../app/contract/runs.js';
import { emptyTuneRecord } from '../../app/contract/tune-record.js';
import { formatDim, InputSpecSchema, parseSpecFields, type InputSpec, type SpecField } from '../../app/contract/specs.js';
import { availableBuilds, selectedBuild } from './builds.js';
import { hold, release } from './events.js';
import type { HostBridge } from './transport/index.js';
import { finishJob, forgetSeen, get, set, type InputRow, type JobView, type State, type View } from './store.js';

let api: HostBridge;
export function setApi(a: HostBridge): void {
  api = a;
}
export function getApi(): HostBridge {
  return api;
}

export const go = (view: View) => set({ view });

type Slot = 'compileJob' | 'tuneJob' | 'benchJob' | 'exportJob';
const SLOT: Record<RunKind, Slot> = { compile: 'compileJob', tune: 'tuneJob', bench: 'benchJob', export: 'exportJob' };

type ErrorLike = { code?: string; message: string; detail?: string };
const failed = (job: string, e: ErrorLike): JobOutcome => ({ state: 'failed', job, error: { code: e.code ?? 'error', message: e.message, detail: e.detail } });

// ---- connection: calls that fail because the socket dropped wait for it to come back ----

let openWaiters: Array<() => void> = [];
/** Called by main.tsx whenever the connection (re)opens. */
export function connectionOpened(): void {
  openWaiters.forEach((w) => w());
  openWaiters = [];
}
function nextOpen(): Promise<void> {
  if (get().connection.status === 'open') return new Promise((r) => setTimeout(r, 250));
  return new Promise((r) => openWaiters.push(r));
}

/** A job's outcome; a lost connection is waited out rather than reported as the job failing. */
async function waitForOutcome(job: string): Promise<JobOutcome> {
  for (;;) {
    try {
      return await api.waitJob({ job });
    } catch (e) {
      const err = e as ErrorLike;
      if (err.code === 'disconnected') {
        await nextOpen();
        continue;
      }
      if (err.code === 'unknown_job') {
        return failed(job, { code: 'interrupted', message: 'The workbench server restarted while this job ran, so the job stopped. Its finished work (tuning records, events) is kept in the model\'s project folder: start it again to continue.' });
      }
      return failed(job, err);
    }
  }
}

const watching = new Map<string, Promise<JobOutcome>>();

/** Waits for a job once (however many views or reattachments ask) and applies its outcome. */
function watch(job: string, kind: RunKind | 'inspect', model: string): Promise<JobOutcome> {
  let w = watching.get(job);
  if (!w) {
    w = waitForOutcome(job).then((outcome) => {
      watching.delete(job);
      finishJob(job, outcome);
      if (kind !== 'inspect') {
        applyOutcome(kind, job, outcome, model);
        void refreshRuns(model);
      }
      return outcome;
    });
    watching.set(job, w);
  }
  return w;
}

/** A result checked against its kind's schema; one that does not match becomes the job's failed outcome (with the issues) and null. */
function resultOf<K extends 'inspect' | 'compile' | 'tune' | 'bench'>(kind: K, job: string, result: unknown) {
  try {
    return parseJobResult(kind, result);
  } catch (e) {
    finishJob(job, failed(job, e as ErrorLike));
    return null;
  }
}

/** Puts a finished run's result where its view shows it, if that run is still the one shown. */
function applyOutcome(kind: RunKind, job: string, outcome: JobOutcome, model: string): void {
  const s = get();
  if (s.modelPath !== model || s[SLOT[kind]] !== job || outcome.state !== 'succeeded') return;
  if (kind === 'bench') {
    const r = resultOf('bench', job, outcome.result);
    if (r) set({ benchResult: r });
    return;
  }
  // An export copies a build (its result is the build's), or is a compile that writes a .pt.
  const r = resultOf(kind === 'tune' ? 'tune' : 'compile', job, outcome.result);
  if (!r) return;
  if (kind === 'compile') set({ compile: r, compileFrom: job });
  else if (kind === 'tune') set({ tuneResult: r });
  else set({ exported: r, benchVs: s.benchVs || r.files.exported || s.exportPath.trim() });
}

async function refreshRuns(model: string): Promise<void> {
  const r = await api.listRuns({ model }).catch(() => null);
  if (r && get().modelPath === model) set({ project: r });
}

/** Starts a job in a view's slot, records it, and resolves with its outcome (never rejects: failures become outcomes). */
async function runJob(request: JobRequest, kind: RunKind, reset: Partial<State> = {}): Promise<JobOutcome> {
  const slot = SLOT[kind];
  const model = get().modelPath;
  // The reset applies at the click: while the engine accepts the job, the last run's result must
  // not pass for this one's (an export's "Wrote …" line, a tune's chart).
  set(reset as never);
  let job: string;
  try {
    job = (await api.startJob(request)).job;
  } catch (e) {
    const id = `${kind}-rejected-${Date.now()}`;
    const outcome = failed(id, e as ErrorLike);
    set({ [slot]: id } as never);
    finishJob(id, outcome);
    return outcome;
  }
  const jobs = { ...get().jobs };
  const timeoutS = request.timeout_s ?? DEFAULT_TIMEOUT_S[request.kind];
  jobs[job] = { ...(jobs[job] ?? { logs: [], stage: '', message: '' }), id: job, kind: request.kind, state: jobs[job]?.state ?? 'running', startedAt: Date.now(), timeoutS } as JobView;
  set({ [slot]: job, jobs } as never);
  void refreshRuns(model);
  return watch(job, kind, model);
}

// ---- input rows ----

export function rowFromSpec(s: InputSpec): InputRow {
  return { name: s.name, dims: s.dims.map(formatDim).join(','), dtype: s.dtype, range: s.range ? `${s.range[0]}..${s.range[1]}` : '' };
}

export function rowToSpec(r: InputRow): InputSpec {
  const { spec, errors } = parseSpecFields(r);
  if (!spec) throw new Error(Object.values(errors).join(' '));
  return spec;
}

export interface RowCheck {
  spec: InputSpec | null;
  /** Per field, the sentence saying what is wrong with it. */
  fields: Partial<Record<SpecField, string>>;
}

export function checkRows(rows: InputRow[]): { specs: InputSpec[] | null; checks: RowCheck[] } {
  const checks: RowCheck[] = rows.map((r) => {
    const { spec, errors } = parseSpecFields(r);
    return { spec, fields: errors };
  });
  const names = rows.map((r) => r.name.trim());
  names.forEach((n, i) => {
    if (n && names.indexOf(n) !== i && !checks[i].fields.name) checks[i] = { spec: null, fields: { ...checks[i].fields, name: `"${n}" is used twice; each input needs its own name.` } };
  });
  const specs = rows.length && checks.every((c) => c.spec) ? checks.map((c) => c.spec!) : null;
  return { specs, checks };
}

/** Kept for callers that want one sentence per row. */
export function validateRows(rows: InputRow[]): { specs: InputSpec[] | null; errors: Array<string | null> } {
  const { specs, checks } = checkRows(rows);
  return { specs, errors: checks.map((c) => (c.spec ? null : Object.entries(c.fields).map(([k, v]) => `${k}: ${v}`).join(' '))) };
}

/** Rows the user typed, per model, kept across reloads (localStorage) so that reopening a model keeps them. */
const INPUTS_KEY = 'torchtvm.inputs';
function typedInputs(): Record<string, InputRow[]> {
  try {
    return JSON.parse(localStorage.getItem(INPUTS_KEY) ?? '{}') as Record<string, InputRow[]>;
  } catch {
    return {};
  }
}
export function rememberInputs(model: string, rows: InputRow[]): void {
  if (!model) return;
  const all = typedInputs();
  all[model] = rows;
  // Only the 50 most recently touched models: this is a convenience, not a database.
  const keys = Object.keys(all);
  for (const k of keys.slice(0, Math.max(0, keys.length - 50))) delete all[k];
  localStorage.setItem(INPUTS_KEY, JSON.stringify(all));
}

/** The bundled example is a ResNet-18 traced at 1×3×224×224. */
const EXAMPLE_DIMS = '1,3,224,224';

/**
 * Rows for a freshly opened model, best source first: the specs embedded in a file this
 * workbench exported, a .pt2's own specs, the shapes recorded in the traced graph, the bundled
 * example's known shape.
 */
export function prefillRows(model: string, r: InspectResult, exampleModel: string | null): InputRow[] {
  const embedded = Array.isArray((r.exported as { inputs?: unknown } | null)?.inputs) ? ((r.exported as { inputs: unknown[] }).inputs) : [];
  const specs = embedded.map((x) => InputSpecSchema.safeParse(x)).filter((p) => p.success).map((p) => p.data!);
  if (specs.length && specs.length === embedded.length) return specs.map(rowFromSpec);
  // A torch.export .pt2 carries its own specs (dynamic dims with their ranges).
  const own = r.inputs.map((i) => InputSpecSchema.safeParse(i.spec)).filter((p) => p.success).map((p) => p.data!);
  if (own.length && own.length === r.inputs.length) return own.map(rowFromSpec);
  const isExample = exampleModel !== null && model === exampleModel;
  return r.inputs.map((i, k) => ({
    name: /^[A-Za-z_][A-Za-z0-9_]*$/.test(i.name) ? i.name : `input${k}`,
    dims: i.shape?.length && i.shape.every((d) => Number.isInteger(d) && d > 0) ? i.shape.join(',') : isExample && r.inputs.length === 1 ? EXAMPLE_DIMS : '',
    dtype: i.dtype && ['float32', 'float16', 'bfloat16', 'int64', 'int32', 'bool'].includes(i.dtype) ? i.dtype : 'float32',
    range: '',
  }));
}

// ---- models and runs ----

let openSeq = 0;

/**
 * Opens a model. The current model stays until the new one's inspection succeeds: a file that
 * fails to open does not replace what is on screen.
 */
export async function openModel(path: string, opts: { keepView?: boolean } = {}): Promise<boolean> {
  const model = path.trim();
  if (!model) return false;
  const seq = ++openSeq;
  set({ openingPath: model, notice: null });
  let job: string;
  try {
    job = (await api.startJob({ kind: 'inspect', model })).job;
  } catch (e) {
    const id = `inspect-rejected-${Date.now()}`;
    set({ inspectJob: id });
    finishJob(id, failed(id, e as ErrorLike));
    if (seq === openSeq) set({ openingPath: undefined });
    return false;
  }
  const jobs = { ...get().jobs };
  jobs[job] = { ...(jobs[job] ?? { logs: [], stage: '', message: '' }), id: job, kind: 'inspect', state: jobs[job]?.state ?? 'running', startedAt: Date.now() } as JobView;
  set({ inspectJob: job, jobs });
  const outcome = await watch(job, 'inspect', model);
  if (seq !== openSeq) return false;
  if (outcome.state !== 'succeeded') {
    set({ openingPath: undefined });
    return false;
  }
  const r = resultOf('inspect', job, outcome.result);
  if (!r) {
    set({ openingPath: undefined });
    return false;
  }
  const s = get();
  if (s.modelPath && s.inputs.length) rememberInputs(s.modelPath, s.inputs);
  const fresh = prefillRows(model, r, s.info?.exampleModel ?? null);
  const saved = typedInputs()[model];
  // Everything below belongs to one model: nothing (status, results, work dir) carries over.
  set({
    modelPath: model,
    openingPath: undefined,
    inspect: r,
    inputs: saved?.length ? saved : fresh,
    project: null,
    compile: null,
    compileFrom: undefined,
    compileJob: undefined,
    tuneJob: undefined,
    tuneResult: null,
    tuneWorkDir: '',
    trials: [],
    tasks: {},
    benchJob: undefined,
    benchSamples: {},
    benchResult: null,
    benchVs: '',
    exportJob: undefined,
    exportPath: '',
    exported: null,
    compareA: undefined,
    compareB: undefined,
    graphCompare: undefined,
    ...(opts.keepView ? {} : { view: 'model' as View }),
  });
  rememberInspection(model, r);
  api.recentModels().then((recent) => set({ recent }), () => {});
  await attachRuns(model);
  return true;
}

const INSPECT_KEY = 'torchtvm.inspect';

/**
 * Brings back the model that was open before a reload or a restart. Its runs are reattached at
 * once, without waiting for a fresh inspection: a fresh one starts an engine of its own beside the
 * running jobs (seconds), or waits when all engines are busy. The last inspection shows meanwhile.
 */
export async function restoreSession(model: string): Promise<void> {
  let cached: InspectResult | null = null;
  try {
    const c = JSON.parse(localStorage.getItem(INSPECT_KEY) ?? 'null') as { model: string; result: InspectResult } | null;
    if (c?.model === model) cached = c.result;
  } catch {
    /* no cache */
  }
  if (!cached) {
    await openModel(model, { keepView: true });
    return;
  }
  const saved = typedInputs()[model];
  set({ modelPath: model, inspect: cached, inputs: saved?.length ? saved : prefillRows(model, cached, get().info?.exampleModel ?? null) });
  await attachRuns(model);
}

export function rememberInspection(model: string, result: InspectResult): void {
  try {
    localStorage.setItem(INSPECT_KEY, JSON.stringify({ model, result }));
  } catch {
    /* too large for storage: a reload re-inspects */
  }
}

/** Loads the model's runs; the latest of each kind is shown (running ones reattached), and the last good build is kept beside a failed one. */
export async function attachRuns(model: string): Promise<void> {
  const r = await api.listRuns({ model }).catch(() => null);
  if (!r || get().modelPath !== model) return;
  set({ project: r, exportPath: get().exportPath || r.defaults.export_path });
  for (const kind of ['compile', 'tune', 'bench', 'export'] as RunKind[]) {
    const latest = r.runs.find((x) => x.kind === kind);
    if (latest) await restoreRun(model, latest);
  }
  const latestCompile = r.runs.find((x) => x.kind === 'compile');
  if (latestCompile && latestCompile.state !== 'succeeded') {
    const good = r.runs.find((x) => x.kind === 'compile' && x.state === 'succeeded');
    if (good) {
      const rec = await api.getRun({ model, job: good.job }).catch(() => null);
      const result = rec?.outcome?.state === 'succeeded' ? resultOf('compile', good.job, rec.outcome.result) : null;
      if (result && get().modelPath === model && !get().compile) set({ compile: result, compileFrom: good.job });
    }
  }
}

/** Shows one run in its view: replays its events, then its outcome, or keeps following it while it runs. */
async function restoreRun(model: string, run: RunSummary): Promise<void> {
  const slot = SLOT[run.kind];
  const job = run.job;
  const req = run.request;
  const reset: Partial<State> =
    run.kind === 'tune' && req.kind === 'tune'
      ? { trials: [], tasks: {}, tuneRecord: emptyTuneRecord(req.trials), tuneResult: null, tuneBudget: req.trials, tuneWorkDir: req.work_dir ?? '', tunePerRound: req.trials_per_iter !== undefined ? String(req.trials_per_iter) : '' }
      : run.kind === 'bench' && req.kind === 'bench'
        ? { benchSamples: {}, benchResult: null, benchIterations: req.iterations, benchVs: req.vs ?? get().benchVs, benchSweep: !!req.sweep, ...(req.sweep ? { benchLatencyLimit: req.sweep.latency_limit_ms !== undefined ? String(req.sweep.latency_limit_ms) : '' } : {}) }
        : run.kind === 'export' && (req.kind === 'compile' || req.kind === 'tune' || req.kind === 'export')
          ? { exported: null, exportPath: req.export_path ?? get().exportPath }
          : {};
  forgetSeen(job);
  hold(job);
  const prev = get().jobs[job];
  const view: JobView = { id: job, kind: run.request.kind, state: run.state === 'interrupted' ? 'failed' : run.state, stage: '', message: '', logs: [], startedAt: run.startedAt, ...(prev?.cancelRequested ? { cancelRequested: true } : {}) };
  set({ [slot]: job, ...reset, jobs: { ...get().jobs, [job]: view } } as never);
  const rec = await api.getRun({ model, job }).catch(() => null);
  release(job, rec?.events ?? []);
  if (get().modelPath !== model) return;
  if (rec?.outcome) {
    finishJob(job, rec.outcome);
    applyOutcome(run.kind, job, rec.outcome, model);
  } else if (run.state === 'interrupted') {
    finishJob(job, failed(job, { code: 'interrupted', message: 'This run was still going when the workbench server stopped, so it did not finish. Its finished work (tuning records, events) is kept: start it again to continue.' }));
  } else if (run.state === 'running' || run.state === 'queued') {
    void watch(job, run.kind, model);
  }
}

// ---- jobs ----

export async function compile(): Promise<void> {
  const s = get();
  const { specs } = checkRows(s.inputs);
  if (!specs || !s.modelPath) return;
  // The previous good result stays on screen until this build succeeds.
  await runJob({ kind: 'compile', model: s.modelPath, inputs: specs, target: s.target, timeout_s: Math.round(s.compileLimitMin * 60) }, 'compile');
}

/**
 * Compares each op of a new build with PyTorch (the graph view's error mode): a compile for the
 * current inputs and target with `compare_ops`, on demand only (never part of the default build)
 * and not measured. Its result becomes the compile result, so the graph view colours it by error.
 */
export async function compareOps(): Promise<void> {
  const s = get();
  const { specs } = checkRows(s.inputs);
  if (!specs || !s.modelPath) return;
  await runJob({ kind: 'compile', model: s.modelPath, inputs: specs, target: s.target, compare_ops: true, measure: false, timeout_s: Math.round(s.compileLimitMin * 60) }, 'compile');
}

/** Start and Resume send the same request (the budget counts the work dir's records either way). */
export async function tune(_resume: boolean): Promise<void> {
  const s = get();
  const { specs } = checkRows(s.inputs);
  if (!specs || !s.modelPath) return;
  // A resume is a new run with its own record (it starts where the last ended): live and reopened
  // alike, the page shows this run's trials and figures.
  const reset: Partial<State> = { tuneResult: null, trials: [], tasks: {}, tuneRecord: emptyTuneRecord(s.tuneBudget) };
  await runJob({ kind: 'tune', model: s.modelPath, inputs: specs, target: s.target, trials: s.tuneBudget, measure: true, timeout_s: Math.max(60, Math.round(s.tuneLimitH * 3600)), ...(Number(s.tunePerRound) >= 1 ? { trials_per_iter: Math.min(64, Math.floor(Number(s.tunePerRound))) } : {}), ...(s.tuneWorkDir.trim() ? { work_dir: s.tuneWorkDir.trim() } : {}), ...(s.remoteTarget ?? {}) }, 'tune', reset);
}

/**
 * Exports to the path on the Export page: the selected build (builds.ts) is copied as it was
 * verified and measured; with no build for the current inputs and target, a compile makes one and
 * exports it. `create_parent`, `overwrite`, `export_unverified` and `accept_edge_mismatch` are the
 * user's answers to a refusal (a missing folder, a file the workbench did not write, a build that
 * failed verification or differs at edge values), never defaults.
 */
export async function exportModel(confirm: { create_parent?: boolean; overwrite?: boolean; export_unverified?: boolean; accept_edge_mismatch?: boolean } = {}): Promise<void> {
  const s = get();
  const { specs } = checkRows(s.inputs);
  const path = s.exportPath.trim() || s.project?.defaults.export_path || '';
  if (!s.modelPath || !path) return;
  const chosen = selectedBuild(s, availableBuilds(s, specs));
  if (chosen) {
    await runJob({ kind: 'export', model: s.modelPath, build: chosen.result.build.dir, export_path: path, ...confirm }, 'export', { exported: null, exportPath: path });
    return;
  }
  if (!specs) return;
  await runJob({ kind: 'compile', model: s.modelPath, inputs: specs, target: s.target, export_path: path, measure: false, timeout_s: Math.round(s.compileLimitMin * 60), ...confirm }, 'export', { exported: null, exportPath: path });
}

/** Where the Benchmark page measures: the Targets page's tracker key unless the page switched back to this machine. */
export function benchTarget(s: State): { tracker: string; key: string } | null {
  return s.remoteTarget && !s.benchHere ? s.remoteTarget : null;
}

export async function bench(): Promise<void> {
  const s = get();
  if (!s.modelPath) return;
  const { specs } = checkRows(s.inputs);
  const remote = benchTarget(s);
  if (remote) {
    // On a tracker's server (issue 25): one model, uploaded and timed there; the export when there is
    // one (its metadata gives the inputs), else the model as the Inputs page describes it.
    const exported = s.benchVs.trim();
    await runJob({ kind: 'bench', model: exported || s.modelPath, ...(!exported && specs ? { inputs: specs } : {}), iterations: s.benchIterations, warmup: 10, tracker: remote.tracker, key: remote.key }, 'bench', { benchSamples: {}, benchResult: null });
    return;
  }
  // The Benchmark page offers the sweep only when an input on screen has a symbolic size.
  if (s.benchSweep && specs?.some((sp) => sp.dims.some((d) => typeof d !== 'number'))) {
    // The sweep measures one module: the exported build when there is one (its own metadata gives the
    // symbol's range), else the model as the Inputs page describes it.
    const exported = s.benchVs.trim();
    const limit = Number(s.benchLatencyLimit);
    const sweep = s.benchLatencyLimit.trim() && Number.isFinite(limit) && limit > 0 ? { latency_limit_ms: limit } : {};
    await runJob({ kind: 'bench', model: exported || s.modelPath, ...(!exported && specs ? { inputs: specs } : {}), iterations: s.benchIterations, warmup: 10, sweep }, 'bench', { benchSamples: {}, benchResult: null });
    return;
  }
  await runJob({ kind: 'bench', model: s.modelPath, ...(s.benchVs.trim() ? { vs: s.benchVs.trim() } : {}), ...(specs ? { inputs: specs } : {}), iterations: s.benchIterations, warmup: 10 }, 'bench', { benchSamples: {}, benchResult: null });
}

/** The Compare page's "Measure both": build A's package against build B's, interleaved run by run (a bench run, shown on the Benchmark page too). */
export async function measureBuilds(a: { package: string }, b: { package: string }, inputs: InputSpec[], threads?: number): Promise<void> {
  const s = get();
  await runJob({ kind: 'bench', model: a.package, vs: b.package, inputs, iterations: s.benchIterations, warmup: 10, ...(threads ? { threads } : {}) }, 'bench', { benchSamples: {}, benchResult: null });
}

/** Cancels a job; the view says "Cancelling…" at once, before the engine confirms. */
export async function cancel(job: string | undefined): Promise<void> {
  if (!job) return;
  const mark = (v: boolean) => {
    const j = get().jobs[job];
    if (j) set({ jobs: { ...get().jobs, [job]: { ...j, cancelRequested: v } } });
  };
  mark(true);
  const r = await api.cancelJob({ job }).catch(() => ({ cancelled: false }));
  if (!r.cancelled && !['running', 'queued'].includes(get().jobs[job]?.state ?? '')) mark(false);
}

export async function loadRun(dir: string): Promise<string | null> {
  try {
    const data = await api.readTuningLog({ dir: dir.trim() });
    set({ runs: [...get().runs.filter((r) => r.dir !== dir.trim()), { dir: dir.trim(), data }] });
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

// ---- graph shapes ----

let shapesSeq = 0;
/** Per (model, specs): the shapes are being worked out, or could not be (with the engine's sentence). */
const shapesStatus = new Map<string, { state: 'pending' | 'failed' | 'done'; message?: string }>();
const shapesKey = (model: string, specs: InputSpec[]) => `${model}\n${JSON.stringify(specs)}`;

/** Where the graph's shapes stand for the current model and input specs; null when there is nothing to say. */
export function graphShapesStatus(s: State = get()): { state: 'pending' | 'failed' | 'no-specs'; message?: string } | null {
  if (!s.modelPath || !s.inspect?.graph) return null;
  const { specs } = checkRows(s.inputs);
  if (!specs) return { state: 'no-specs' };
  const st = shapesStatus.get(shapesKey(s.modelPath, specs));
  return st && st.state !== 'done' ? { state: st.state, message: st.message } : null;
}

/**
 * Gives the graph's ops their output shapes and dtypes at the current input specs: the engine runs
 * the model on them (fake tensors, no compute) in an inspect job with `inputs`. The graph is
 * replaced when they come back, if the model and the specs are still the ones on screen. Each
 * (model, specs) is asked once, so a failure (a model that rejects the specs) is not retried.
 */
export async function refreshGraphShapes(): Promise<void> {
  const s = get();
  const graph = s.inspect?.graph;
  if (!s.modelPath || !graph) return;
  const { specs } = checkRows(s.inputs);
  if (!specs) return;
  const key = shapesKey(s.modelPath, specs);
  if (shapesStatus.has(key) || (graph.shapes_for && JSON.stringify(graph.shapes_for) === JSON.stringify(specs))) return;
  shapesStatus.set(key, { state: 'pending' });
  const model = s.modelPath;
  const seq = ++shapesSeq;
  let outcome: JobOutcome;
  try {
    outcome = await waitForOutcome((await api.startJob({ kind: 'inspect', model, inputs: specs })).job);
  } catch (e) {
    outcome = failed('shapes', e as ErrorLike);
  }
  let g: InspectResult['graph'];
  let unreadable: string | undefined;
  if (outcome.state === 'succeeded') {
    try {
      g = parseJobResult('inspect', outcome.result).graph;
    } catch (e) {
      unreadable = (e as Error).message;
    }
  }
  if (!g?.shapes_for) {
    const why = outcome.state === 'failed' && outcome.error ? outcome.error.message : (unreadable ?? 'the model did not run on them (an op needs real data, or the specs do not fit it)');
    shapesStatus.set(key, { state: 'failed', message: why });
    return;
  }
  shapesStatus.set(key, { state: 'done' });
  const now = get();
  if (seq !== shapesSeq || now.modelPath !== model || !now.inspect) return;
  const inspect = { ...now.inspect, graph: g };
  set({ inspect });
  rememberInspection(model, inspect);
}
