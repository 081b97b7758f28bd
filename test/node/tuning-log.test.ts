// The tuning-log reader on hand-written MetaSchedule databases (the format TVM writes: workload
// lines [hash, base64 module], record lines [workload index, [trace, run_secs, target, args]]),
// on damaged files, on a folder that is not a database, and comparing two runs. A database made by
// the real engine is read in cli-tune.test.ts.
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../app/contract/errors.js';
import { compareLogs, readTuningLog } from '../../app/core/tuning/log-reader.js';

const target = { kind: 'llvm', mcpu: 'znver3', 'num-cores': 2 };
const rec = (w: number, secs: number[]) => JSON.stringify([w, [[[], []], secs, target, []]]);

function makeDir(opts: { sidecar?: boolean; records?: string[]; workloads?: string[] } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'ttvm-tlog-'));
  const workloads = opts.workloads ?? [JSON.stringify(['111', Buffer.from('{}').toString('base64')]), JSON.stringify(['222', Buffer.from('{}').toString('base64')])];
  writeFileSync(join(dir, 'database_workload.json'), workloads.join('\n') + '\n');
  const records = opts.records ?? [rec(0, [0.003]), rec(0, [0.002]), rec(1, [1e10]), rec(0, [0.004]), rec(1, [0.001, 0.003])];
  writeFileSync(join(dir, 'database_tuning_record.json'), records.join('\n') + '\n');
  if (opts.sidecar !== false) writeFileSync(join(dir, 'workbench_tasks.json'), JSON.stringify({ format: 1, model: '/m.pt', workloads: { '111': { name: 'fused_conv', weight: 3 }, '222': { name: 'dense', weight: 1 } } }));
  return dir;
}

describe('readTuningLog', () => {
  it('reads tasks, counts, failures, bests and curves, with names from the workbench sidecar', async () => {
    const log = await readTuningLog(makeDir());
    expect(log.records).toBe(5);
    expect(log.failures).toBe(1);
    expect(log.named_by).toBe('workbench');
    const [conv, dense] = log.tasks;
    expect(conv).toMatchObject({ name: 'fused_conv', weight: 3, records: 3, failures: 0 });
    expect(conv.best_ms).toBeCloseTo(2);
    expect(conv.curve).toEqual([3, 2, 2].map((v) => expect.closeTo(v, 6)));
    expect(dense).toMatchObject({ name: 'dense', weight: 1, records: 2, failures: 1 });
    expect(dense.curve[0]).toBeNull();
    expect(dense.best_ms).toBeCloseTo(2);
    expect(log.estimated_ms).toBeCloseTo(3 * 2 + 2);
    expect(log.skipped.record_lines).toBe(0);
  });

  it('names workloads of a foreign dir by index', async () => {
    const log = await readTuningLog(makeDir({ sidecar: false }));
    expect(log.tasks.map((t) => t.name)).toEqual(['workload 0', 'workload 1']);
    expect(log.estimated_ms).toBeNull();
  });

  it('skips and reports damaged lines without failing', async () => {
    const dir = makeDir({ records: [rec(0, [0.003]), 'not json', rec(7, [0.001]), rec(1, [0.002]), '[0, [["Sampl'] });
    const log = await readTuningLog(dir);
    expect(log.records).toBe(2);
    expect(log.skipped.record_lines).toBe(3);
    expect(log.skipped.reasons.join(' ')).toMatch(/line 2/);
    const dir2 = makeDir({ workloads: [JSON.stringify(['111', 'e30=']), '["22'] });
    const log2 = await readTuningLog(dir2);
    expect(log2.skipped.workload_lines).toBe(1);
    expect(log2.tasks).toHaveLength(2);
  });

  it('refuses a folder that is not a MetaSchedule database, saying what is missing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'ttvm-empty-'));
    await expect(readTuningLog(empty)).rejects.toThrow(WorkbenchError);
    await expect(readTuningLog(empty)).rejects.toThrow(/database_workload\.json and database_tuning_record\.json are missing/);
    const half = mkdtempSync(join(tmpdir(), 'ttvm-half-'));
    writeFileSync(join(half, 'database_workload.json'), '');
    await expect(readTuningLog(half)).rejects.toThrow(/database_tuning_record\.json is missing/);
    await expect(readTuningLog(join(half, 'nope'))).rejects.toThrow(/not a folder/);
    mkdirSync(join(half, 'sub'));
  });

  it('names the missing files in full when the folder is the filesystem root', async () => {
    const err = await readTuningLog('/').catch((e) => e as WorkbenchError);
    expect(err).toBeInstanceOf(WorkbenchError);
    expect(err.message).toContain('database_workload.json and database_tuning_record.json are missing');
    expect(err.message).toBe('/ is not a MetaSchedule work dir: database_workload.json and database_tuning_record.json are missing.');
  });

  it('treats workload hashes like "constructor" and "__proto__" as data, not object-prototype keys', async () => {
    const b64 = Buffer.from('{}').toString('base64');
    const dir = makeDir({ sidecar: false, workloads: [JSON.stringify(['constructor', b64]), JSON.stringify(['__proto__', b64]), JSON.stringify(['toString', b64])], records: [rec(0, [0.001]), rec(1, [0.002]), rec(2, [0.003])] });
    writeFileSync(join(dir, 'workbench_tasks.json'), '{"format": 1, "workloads": {"__proto__": {"name": "own_proto", "weight": 2}, "toString": 5}}');
    const log = await readTuningLog(dir);
    expect(log.tasks.map((t) => [t.hash, t.name, t.weight])).toEqual([
      ['constructor', 'workload 0', null],
      ['__proto__', 'own_proto', 2],
      ['toString', 'workload 2', null],
    ]);
    expect(log.tasks.every((t) => typeof t.name === 'string')).toBe(true);
  });

  it('counts impossible run times (negative, overflowing) as failures, never as a best of -Infinity (found by fuzzing)', async () => {
    const log = await readTuningLog(makeDir({ records: [rec(0, [-0.5]), rec(0, [-1e308, -1e308]), rec(0, [1e308, 1e308]), rec(1, [0.002])] }));
    const [a, b] = log.tasks;
    expect(a).toMatchObject({ records: 3, failures: 3, best_ms: null });
    expect(b.best_ms).toBeCloseTo(2);
    expect(log.estimated_ms).toBeNull();
  });

  it('compares two runs task by task', async () => {
    const a = await readTuningLog(makeDir());
    const b = await readTuningLog(makeDir({ records: [rec(0, [0.001]), rec(1, [0.004])], workloads: [JSON.stringify(['111', 'e30=']), JSON.stringify(['333', 'e30='])] }));
    const cmp = compareLogs(a, b);
    const conv = cmp.tasks.find((t) => t.key === '111')!;
    expect(conv.ratio).toBeCloseTo(0.5);
    expect(cmp.only_in_a).toBe(1);
    expect(cmp.only_in_b).toBe(1);
  });
});
