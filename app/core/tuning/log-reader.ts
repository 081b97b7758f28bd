// Reads a MetaSchedule work dir (JSON database), ours or one made elsewhere: tasks, record counts,
// best latency, failures, best-so-far curves. Damaged lines are skipped and counted, never fatal.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { WorkbenchError } from '../../contract/errors.js';

export const WORKLOAD_FILE = 'database_workload.json';
export const RECORD_FILE = 'database_tuning_record.json';
export const SIDECAR_FILE = 'workbench_tasks.json';
/** MetaSchedule writes run_secs = 1e10 for a trial that failed to build or run. */
const FAILED_SECS = 1e10;

export interface TuningTask {
  workload: number;
  hash: string;
  name: string;
  weight: number | null;
  records: number;
  failures: number;
  best_ms: number | null;
  /** Best-so-far after each record, in file order (null until one succeeds). */
  curve: (number | null)[];
}

export interface TuningLog {
  dir: string;
  tasks: TuningTask[];
  records: number;
  failures: number;
  /** Σ weight × best over tasks with a weight and a best; null when any weighted task has none. */
  estimated_ms: number | null;
  skipped: { workload_lines: number; record_lines: number; reasons: string[] };
  targets: string[];
  model: string | null;
  named_by: 'workbench' | 'parsed' | 'index';
}

function lines(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'EISDIR' ? 'it is a folder, not a file' : ((e as Error).message ?? String(e));
    throw new WorkbenchError('unreadable', `${path} cannot be read (${why}); give a MetaSchedule work dir whose database files are readable.`);
  }
  return text.split('\n').filter((l) => l.trim() !== '');
}

interface SidecarEntry {
  name?: string;
  weight?: number;
}

/**
 * The workbench's own task names and weights, keyed by workload hash. A Map, so that a hash such as
 * "constructor" or "__proto__" is data and never reaches Object.prototype; malformed entries are ignored.
 */
function sidecar(dir: string): { model: string | null; workloads: Map<string, SidecarEntry> } {
  const workloads = new Map<string, SidecarEntry>();
  try {
    const data = JSON.parse(readFileSync(join(dir, SIDECAR_FILE), 'utf8')) as unknown;
    if (!data || typeof data !== 'object') return { model: null, workloads };
    const { model, workloads: raw } = data as { model?: unknown; workloads?: unknown };
    if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
      for (const [hash, v] of Object.entries(raw as Record<string, unknown>)) {
        if (!v || typeof v !== 'object') continue;
        const { name, weight } = v as { name?: unknown; weight?: unknown };
        workloads.set(hash, {
          ...(typeof name === 'string' && name ? { name } : {}),
          ...(typeof weight === 'number' && Number.isFinite(weight) ? { weight } : {}),
        });
      }
    }
    return { model: typeof model === 'string' ? model : null, workloads };
  } catch {
    return { model: null, workloads };
  }
}

/** A name from the serialized workload when practical: TVM's JSON graph keeps the PrimFunc's global symbol as a string node. */
function parsedName(b64: string): string | null {
  try {
    const text = Buffer.from(b64, 'base64').toString('utf8');
    const m = /"global_symbol"[\s\S]{0,400}?"data":\s*"([A-Za-z_][\w.]*)"/.exec(text);
    return m && m[1] !== 'main' ? m[1] : null;
  } catch {
    return null;
  }
}

export async function readTuningLog(dirIn: string): Promise<TuningLog> {
  const dir = resolve(dirIn);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new WorkbenchError('not_found', `${dir} is not a folder; give a MetaSchedule work dir.`);
  const wPath = join(dir, WORKLOAD_FILE);
  const rPath = join(dir, RECORD_FILE);
  const missing = [wPath, rPath].filter((p) => !existsSync(p)).map((p) => basename(p));
  if (missing.length) throw new WorkbenchError('not_a_tuning_dir', `${dir} is not a MetaSchedule work dir: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing.`);

  const side = sidecar(dir);
  const reasons: string[] = [];
  let badW = 0;
  let badR = 0;
  const tasks: TuningTask[] = [];
  let namedBy: TuningLog['named_by'] = 'index';
  lines(wPath).forEach((line, i) => {
    let hash: string;
    let b64 = '';
    try {
      const v = JSON.parse(line) as unknown;
      if (!Array.isArray(v) || v.length !== 2 || !['string', 'number'].includes(typeof v[0]) || typeof v[1] !== 'string') throw new Error('not [hash, module]');
      hash = String(v[0]);
      b64 = v[1];
    } catch (e) {
      badW += 1;
      if (reasons.length < 10) reasons.push(`${WORKLOAD_FILE} line ${i + 1}: ${(e as Error).message}`);
      hash = `?${i}`;
    }
    // Records refer to workloads by line index, so a damaged line still takes its slot.
    const known = side.workloads.get(hash);
    let name = known?.name ?? null;
    if (name) namedBy = 'workbench';
    if (!name && b64) {
      name = parsedName(b64);
      if (name && namedBy === 'index') namedBy = 'parsed';
    }
    tasks.push({ workload: i, hash, name: name ?? `workload ${i}`, weight: known?.weight ?? null, records: 0, failures: 0, best_ms: null, curve: [] });
  });

  const targets = new Set<string>();
  let records = 0;
  let failures = 0;
  lines(rPath).forEach((line, i) => {
    try {
      const v = JSON.parse(line) as unknown;
      // The same rule as the engine's repair (torchtvm/tune.py _valid_record), so that `log`, resume
      // and the app count the same records as usable.
      if (!Array.isArray(v) || v.length !== 2 || !Number.isInteger(v[0]) || !Array.isArray(v[1])) throw new Error('not [workload, record]');
      const task = tasks[v[0]];
      if (!task) throw new Error(`workload ${v[0]} does not exist`);
      if (task.hash.startsWith('?')) throw new Error(`its workload (line ${v[0] + 1}) is damaged, so the record cannot be used`);
      const [, runSecs, target] = v[1] as [unknown, unknown, unknown];
      if (v[1].length < 4 || !(runSecs === null || (Array.isArray(runSecs) && runSecs.every((x) => typeof x === 'number')))) throw new Error('not a MetaSchedule record [trace, run_secs, target, args]');
      const secs = Array.isArray(runSecs) ? runSecs.map(Number) : [];
      if (target !== undefined && target !== null) targets.add(typeof target === 'string' ? target : JSON.stringify(target));
      records += 1;
      task.records += 1;
      // A run that failed (1e10), or times no real run gives (negative, not finite), count as a failure.
      const mean = secs.length ? (secs.reduce((a, b) => a + b, 0) / secs.length) * 1e3 : NaN;
      const failed = !secs.length || secs.some((s) => !Number.isFinite(s) || s < 0 || s >= FAILED_SECS * 0.99) || !Number.isFinite(mean);
      if (failed) {
        failures += 1;
        task.failures += 1;
      } else {
        if (task.best_ms === null || mean < task.best_ms) task.best_ms = mean;
      }
      task.curve.push(task.best_ms);
    } catch (e) {
      badR += 1;
      if (reasons.length < 10) reasons.push(`${RECORD_FILE} line ${i + 1}: ${(e as Error).message}`);
    }
  });

  const weighted = tasks.filter((t) => t.weight !== null);
  const sum = weighted.length && weighted.every((t) => t.best_ms !== null) ? weighted.reduce((s, t) => s + t.weight! * t.best_ms!, 0) : null;
  const estimated = sum !== null && Number.isFinite(sum) ? sum : null; // absurd weights give no estimate, not Infinity
  return { dir, tasks, records, failures, estimated_ms: estimated, skipped: { workload_lines: badW, record_lines: badR, reasons }, targets: [...targets], model: side.model, named_by: namedBy };
}

export interface TaskComparison {
  key: string;
  name: string;
  a: { records: number; best_ms: number | null } | null;
  b: { records: number; best_ms: number | null } | null;
  /** b's best / a's best: below 1 means b is faster. */
  ratio: number | null;
}

export interface LogComparison {
  a: { dir: string; records: number; estimated_ms: number | null };
  b: { dir: string; records: number; estimated_ms: number | null };
  tasks: TaskComparison[];
  only_in_a: number;
  only_in_b: number;
}

/** Matches tasks by workload hash (the same kernel in both runs), then reports each side's best. */
export function compareLogs(a: TuningLog, b: TuningLog): LogComparison {
  const byHash = new Map<string, TaskComparison>();
  for (const t of a.tasks) byHash.set(t.hash, { key: t.hash, name: t.name, a: { records: t.records, best_ms: t.best_ms }, b: null, ratio: null });
  for (const t of b.tasks) {
    const row = byHash.get(t.hash) ?? { key: t.hash, name: t.name, a: null, b: null, ratio: null };
    row.b = { records: t.records, best_ms: t.best_ms };
    if (row.name.startsWith('workload ') && !t.name.startsWith('workload ')) row.name = t.name;
    byHash.set(t.hash, row);
  }
  const tasks = [...byHash.values()];
  for (const r of tasks) if (r.a?.best_ms && r.b?.best_ms) r.ratio = r.b.best_ms / r.a.best_ms;
  return {
    a: { dir: a.dir, records: a.records, estimated_ms: a.estimated_ms },
    b: { dir: b.dir, records: b.records, estimated_ms: b.estimated_ms },
    tasks,
    only_in_a: tasks.filter((t) => !t.b).length,
    only_in_b: tasks.filter((t) => !t.a).length,
  };
}
