import { parseArgs } from 'node:util';
import type { TuningLog } from '../../contract/results.js';
import { compareLogs } from '../../core/tuning/compare-logs.js';
import type { CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { fmtSpeedup } from '../../contract/format.js';
import { RUNS_AS_LABELS, taskShares, tasksOfLog, tuneLine } from '../../contract/tune-record.js';
import { EXIT } from '../run-job.js';

export const usage = 'torchtvm log WORK_DIR [--vs OTHER_WORK_DIR] [--json]';

function ms(v: number | null | undefined): string {
  return fmtMs(v);
}

function printLog(l: TuningLog, out: CommandContext['out']): void {
  out.line(`${l.dir}: ${l.records} record(s), ${l.failures} failed, ${l.tasks.length} workload(s)${l.model ? `; model ${l.model}` : ''}`);
  // Per task: the time the build runs it at (best record, default schedule, or the library kernel
  // where faster) and its share of the estimate, as the Tune page shows them.
  const shares = new Map(taskShares(tasksOfLog(l)).rows.map((r) => [r.task.id, r]));
  out.line(table(l.tasks.map((t) => {
    const s = shares.get(t.workload);
    return [t.workload, t.name.slice(0, 44), t.weight ?? '-', t.records, t.failures, ms(t.best_ms), ms(t.default_ms), ms(t.library_ms), s?.as ? RUNS_AS_LABELS[s.as] : '-', s?.share != null ? `${(100 * s.share).toFixed(1)}%` : '-'];
  }), ['#', 'task', 'weight', 'records', 'failed', 'best', 'default', 'library', 'runs as', 'share']));
  out.line(`Estimated end-to-end (sum of kernels, not a measurement): ${ms(l.estimated_ms)}`);
  // Tuned over an RPC tracker (issue 25): the records per measuring server.
  const machines = (l as { machines?: { server: string; records: number; failures: number }[] }).machines ?? [];
  if (machines.length) out.line(`Measured on: ${machines.map((m) => `${m.server} ${m.records} record(s)${m.failures ? ` (${m.failures} failed)` : ''}`).join(', ')}`);
  const runs = l.runs ?? [];
  for (const [i, r] of runs.entries()) out.line(`${i === runs.length - 1 ? 'Latest run' : 'Run'} ${r.id ?? i + 1} (${r.state ?? '?'}): ${tuneLine(r, undefined, '-')}`);
  const skipped = l.skipped.workload_lines + l.skipped.record_lines;
  if (skipped) out.line(`Skipped ${skipped} damaged line(s): ${l.skipped.reasons.join('; ')}`);
}

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { vs: { type: 'string' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } } });
  if (positionals.length !== 1) return fail(`give one work dir: ${usage}`, EXIT.usage);
  // The engine reads the work dirs (app/core/tuning/tuning-log.ts).
  const a = await wb.readTuningLog({ dir: positionals[0] });
  if (values.vs) {
    const b = await wb.readTuningLog({ dir: values.vs });
    const cmp = compareLogs(a, b);
    out.result(cmp);
    out.line(`A ${cmp.a.dir}: ${cmp.a.records} record(s), estimate ${ms(cmp.a.estimated_ms)}`);
    out.line(`B ${cmp.b.dir}: ${cmp.b.records} record(s), estimate ${ms(cmp.b.estimated_ms)}`);
    out.line(table(cmp.tasks.map((t) => [t.name.slice(0, 44), t.a?.records ?? '-', ms(t.a?.best_ms), t.b?.records ?? '-', ms(t.b?.best_ms), t.a?.best_ms && t.b?.best_ms ? fmtSpeedup(t.a.best_ms, t.b.best_ms) : '-']), ['task', 'A records', 'A best', 'B records', 'B best', 'B against A']));
    return EXIT.ok;
  }
  out.result(a);
  printLog(a, out);
  return EXIT.ok;
}
