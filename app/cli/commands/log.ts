import { parseArgs } from 'node:util';
import type { TuningLog } from '../../contract/results.js';
import { compareLogs } from '../../core/tuning/compare-logs.js';
import type { CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { EXIT } from '../run-job.js';

export const usage = 'torchtvm log WORK_DIR [--vs OTHER_WORK_DIR] [--json]';

function ms(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : fmtMs(v);
}

function printLog(l: TuningLog, out: CommandContext['out']): void {
  out.line(`${l.dir}: ${l.records} record(s), ${l.failures} failed, ${l.tasks.length} workload(s)${l.model ? `; model ${l.model}` : ''}`);
  out.line(table(l.tasks.map((t) => [t.workload, t.name.slice(0, 44), t.weight ?? '-', t.records, t.failures, ms(t.best_ms)]), ['#', 'task', 'weight', 'records', 'failed', 'best']));
  if (l.estimated_ms !== null) out.line(`Estimated end-to-end: ${ms(l.estimated_ms)}`);
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
    out.line(table(cmp.tasks.map((t) => [t.name.slice(0, 44), t.a?.records ?? '-', ms(t.a?.best_ms), t.b?.records ?? '-', ms(t.b?.best_ms), t.ratio ? `${t.ratio.toFixed(2)}x` : '-']), ['task', 'A records', 'A best', 'B records', 'B best', 'B/A']));
    return EXIT.ok;
  }
  out.result(a);
  printLog(a, out);
  return EXIT.ok;
}
