// Two tuning logs (the engine's `tuning_log` results) side by side: pure arithmetic over the two,
// for `torchtvm log A --vs B` and the app.
import type { LogComparison, TaskComparison, TuningLog } from '../../contract/results.js';

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
