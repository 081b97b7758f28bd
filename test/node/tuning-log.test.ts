// Reading a tuning log through app/core: the real engine's `tuning_log` method (torchtvm/tune/log.py,
// whose rules test/python/tune/test_log.py covers in depth) on hand-written MetaSchedule databases
// (workload lines [hash, base64 module], record lines [workload index, [trace, run_secs, target,
// args]]), its refusals as WorkbenchErrors, and comparing two runs (compareLogs, in core). A database
// made by a real tune is read in cli-tune.test.ts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../app/contract/errors.js';
import { compareLogs } from '../../app/core/tuning/compare-logs.js';
import { createWorkbench, type Workbench } from '../../app/core/workbench.js';
import { tmpHome } from './helpers.js';

const target = { kind: 'llvm', mcpu: 'znver3', 'num-cores': 2 };
const rec = (w: number, secs: number[]) => JSON.stringify([w, [[[], []], secs, target, []]]);
const b64 = Buffer.from('{}').toString('base64');

function makeDir(opts: { sidecar?: boolean; records?: string[]; workloads?: string[] } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'ttvm-tlog-'));
  const workloads = opts.workloads ?? [JSON.stringify(['111', b64]), JSON.stringify(['222', b64])];
  writeFileSync(join(dir, 'database_workload.json'), workloads.join('\n') + '\n');
  const records = opts.records ?? [rec(0, [0.003]), rec(0, [0.002]), rec(1, [1e10]), rec(0, [0.004]), rec(1, [0.001, 0.003])];
  writeFileSync(join(dir, 'database_tuning_record.json'), records.join('\n') + '\n');
  if (opts.sidecar !== false) writeFileSync(join(dir, 'workbench_tasks.json'), JSON.stringify({ format: 1, model: '/m.pt', workloads: { '111': { name: 'fused_conv', weight: 3 }, '222': { name: 'dense', weight: 1 } } }));
  return dir;
}

let wb: Workbench;
beforeAll(() => {
  process.env.TORCHTVM_HOME = tmpHome();
  wb = createWorkbench({ host: 'test' });
});
afterAll(() => wb.close());

describe('readTuningLog (the engine reads, core asks)', () => {
  it('reads tasks, counts, failures, bests, curves and the estimate, with names from the workbench sidecar', async () => {
    const dir = makeDir();
    // A relative dir is taken from this process's folder, not the engine's.
    const log = await wb.readTuningLog({ dir: relative(process.cwd(), dir) });
    expect(log.dir).toBe(dir);
    expect(log).toMatchObject({ records: 5, failures: 1, named_by: 'workbench', model: '/m.pt', targets: [JSON.stringify(target)] });
    const [conv, dense] = log.tasks;
    expect(conv).toMatchObject({ workload: 0, hash: '111', name: 'fused_conv', weight: 3, records: 3, failures: 0 });
    expect(conv.curve).toEqual([3, 2, 2].map((v) => expect.closeTo(v, 6)));
    expect(dense).toMatchObject({ name: 'dense', weight: 1, records: 2, failures: 1 });
    expect(dense.curve[0]).toBeNull();
    expect(log.estimated_ms).toBeCloseTo(3 * 2 + 2);
    const foreign = await wb.readTuningLog({ dir: makeDir({ sidecar: false }) });
    expect(foreign.tasks.map((t) => t.name)).toEqual(['workload 0', 'workload 1']);
    expect(foreign.estimated_ms).toBeNull();
  });

  it('skips and counts damaged lines, and refuses what is not a work dir with the engine code and sentence', async () => {
    const log = await wb.readTuningLog({ dir: makeDir({ records: [rec(0, [0.003]), 'not json', rec(7, [0.001]), rec(1, [0.002]), '[0, [["Sampl'] }) });
    expect(log.records).toBe(2);
    expect(log.skipped.record_lines).toBe(3);
    expect(log.skipped.reasons.join(' ')).toMatch(/line 2/);
    const err = await wb.readTuningLog({ dir: '/' }).catch((e) => e as WorkbenchError);
    expect(err).toBeInstanceOf(WorkbenchError);
    expect(err).toMatchObject({ code: 'not_a_tuning_dir', message: '/ is not a MetaSchedule work dir: database_workload.json and database_tuning_record.json are missing.' });
    await expect(wb.readTuningLog({ dir: join(makeDir(), 'nope') })).rejects.toMatchObject({ code: 'not_found', message: expect.stringMatching(/is not a folder/) });
  });

  it('compares two runs task by task', async () => {
    const a = await wb.readTuningLog({ dir: makeDir() });
    const b = await wb.readTuningLog({ dir: makeDir({ records: [rec(0, [0.001]), rec(1, [0.004])], workloads: [JSON.stringify(['111', 'e30=']), JSON.stringify(['333', 'e30='])] }) });
    const cmp = compareLogs(a, b);
    expect(cmp.tasks.find((t) => t.key === '111')!.ratio).toBeCloseTo(0.5);
    expect(cmp).toMatchObject({ only_in_a: 1, only_in_b: 1 });
  });
});
