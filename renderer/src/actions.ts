// What the views do: start jobs through the WorkbenchApi and keep their outcomes in the store.
import type { JobOutcome, JobRequest } from '../../app/contract/jobs.js';
import type { CompileResult, InspectResult } from '../../app/contract/results.js';
import { DTYPES, formatDim, parseSpec, type InputSpec } from '../../app/contract/specs.js';
import type { HostBridge } from './transport/index.js';
import { finishJob, get, set, type InputRow, type View } from './store.js';

let api: HostBridge;
export function setApi(a: HostBridge): void {
  api = a;
}
export function getApi(): HostBridge {
  return api;
}

export const go = (view: View) => set({ view });

/** Starts a job, records it, and resolves with its outcome (never rejects: failures become outcomes). */
async function runJob(request: JobRequest, slot: 'inspectJob' | 'compileJob' | 'tuneJob' | 'benchJob' | 'exportJob', reset: Partial<ReturnType<typeof get>> = {}): Promise<JobOutcome> {
  let job: string;
  try {
    job = (await api.startJob(request)).job;
  } catch (e) {
    const err = e as { code?: string; message: string; detail?: string };
    const id = `${request.kind}-rejected-${Date.now()}`;
    const outcome: JobOutcome = { state: 'failed', job: id, error: { code: err.code ?? 'error', message: err.message, detail: err.detail } };
    set({ [slot]: id, ...reset } as never);
    finishJob(id, outcome);
    return outcome;
  }
  const jobs = { ...get().jobs };
  jobs[job] = { ...(jobs[job] ?? { logs: [], stage: '', message: '' }), id: job, kind: request.kind, state: jobs[job]?.state ?? 'running' } as never;
  set({ [slot]: job, jobs, ...reset } as never);
  const outcome = await api.waitJob({ job }).catch((e: { code?: string; message: string; detail?: string }): JobOutcome => ({ state: 'failed', job, error: { code: e.code ?? 'error', message: e.message, detail: e.detail } }));
  finishJob(job, outcome);
  return outcome;
}

export function rowFromSpec(s: InputSpec): InputRow {
  return { name: s.name, dims: s.dims.map(formatDim).join(','), dtype: s.dtype, range: s.range ? `${s.range[0]}..${s.range[1]}` : '' };
}

export function rowToSpec(r: InputRow): InputSpec {
  const text = `${r.name.trim()}:${r.dims.replace(/\s+/g, '')}:${r.dtype}${r.range.trim() ? `:${r.range.trim()}` : ''}`;
  return parseSpec(text);
}

export function validateRows(rows: InputRow[]): { specs: InputSpec[] | null; errors: Array<string | null> } {
  const errors = rows.map((r) => {
    try {
      rowToSpec(r);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  });
  const names = rows.map((r) => r.name.trim());
  names.forEach((n, i) => {
    if (!errors[i] && names.indexOf(n) !== i) errors[i] = `The name "${n}" is used twice; each input needs its own name.`;
  });
  if (!rows.length) return { specs: null, errors };
  return { specs: errors.every((e) => e === null) ? rows.map(rowToSpec) : null, errors };
}

function defaultExportPath(model: string): string {
  return model.replace(/\.pt$/i, '') + '.tvm.pt';
}

/** Input rows per model path, so that reopening a model keeps what the user typed. */
const typedInputs = new Map<string, InputRow[]>();

export async function openModel(path: string): Promise<void> {
  const model = path.trim();
  if (!model) return;
  const prev = get();
  if (prev.modelPath && prev.inputs.length) typedInputs.set(prev.modelPath, prev.inputs);
  set({ modelPath: model, inspect: null, compile: null, exported: null, tuneResult: null, trials: [], tasks: {}, benchSamples: {}, benchResult: null, view: 'model', exportPath: defaultExportPath(model), benchVs: '', notice: null });
  const outcome = await runJob({ kind: 'inspect', model }, 'inspectJob');
  if (get().modelPath !== model) return;
  if (outcome.state === 'succeeded') {
    const r = outcome.result as unknown as InspectResult;
    const inputs: InputRow[] = r.inputs.map((i, k) => ({
      name: /^[A-Za-z_][A-Za-z0-9_]*$/.test(i.name) ? i.name : `input${k}`,
      dims: i.shape?.length ? i.shape.join(',') : '',
      dtype: i.dtype && (DTYPES as readonly string[]).includes(i.dtype) ? i.dtype : 'float32',
      range: '',
    }));
    // Restore the rows the user typed for this model earlier in the session (reopening it).
    const saved = typedInputs.get(model);
    set({ inspect: r, inputs: saved && saved.length === inputs.length && saved.every((row, k) => row.name === inputs[k].name) ? saved : inputs });
    api.recentModels().then((recent) => set({ recent }), () => {});
  }
}

export async function compile(): Promise<void> {
  const s = get();
  const { specs } = validateRows(s.inputs);
  if (!specs || !s.modelPath) return;
  const outcome = await runJob({ kind: 'compile', model: s.modelPath, inputs: specs, target: s.target }, 'compileJob', { compile: null });
  if (outcome.state === 'succeeded') set({ compile: outcome.result as unknown as CompileResult });
}

export async function tune(resume: boolean): Promise<void> {
  const s = get();
  const { specs } = validateRows(s.inputs);
  if (!specs || !s.modelPath) return;
  const reset = resume ? { tuneResult: null } : { tuneResult: null, trials: [], tasks: {} };
  const outcome = await runJob({ kind: 'tune', model: s.modelPath, inputs: specs, target: s.target, trials: s.tuneBudget, measure: true, ...(s.tuneWorkDir.trim() ? { workDir: s.tuneWorkDir.trim() } : {}) }, 'tuneJob', reset);
  if (outcome.state === 'succeeded') set({ tuneResult: outcome.result as unknown as CompileResult });
}

export async function exportModel(): Promise<void> {
  const s = get();
  const { specs } = validateRows(s.inputs);
  if (!specs || !s.modelPath || !s.exportPath.trim()) return;
  const outcome = await runJob({ kind: 'compile', model: s.modelPath, inputs: specs, target: s.target, exportPath: s.exportPath.trim(), measure: false }, 'exportJob', { exported: null });
  if (outcome.state === 'succeeded') {
    const r = outcome.result as unknown as CompileResult;
    set({ exported: r, benchVs: get().benchVs || r.files.exported || s.exportPath.trim() });
  }
}

export async function bench(): Promise<void> {
  const s = get();
  if (!s.modelPath) return;
  const { specs } = validateRows(s.inputs);
  const outcome = await runJob({ kind: 'bench', model: s.modelPath, ...(s.benchVs.trim() ? { vs: s.benchVs.trim() } : {}), ...(specs ? { inputs: specs } : {}), iterations: s.benchIterations, warmup: 10 }, 'benchJob', { benchSamples: {}, benchResult: null });
  if (outcome.state === 'succeeded') set({ benchResult: outcome.result });
}

export async function cancel(job: string | undefined): Promise<void> {
  if (job) await api.cancelJob({ job }).catch(() => {});
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
