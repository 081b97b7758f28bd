// `torchtvm log` (the Node reader) and the engine's repair (torchtvm/tune.py, which resume runs
// first) must agree on which records are usable: a damaged database read before and after the
// repair shows the same records per workload hash.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTuningLog, RECORD_FILE, WORKLOAD_FILE } from '../../app/core/tuning/log-reader.js';

const python = join(process.cwd(), '.venv', 'bin', 'python');
const rec = (i: number, secs: unknown, len = 4) => JSON.stringify([i, [['trace'], secs, { kind: 'llvm' }, []].slice(0, len)]);

describe.skipIf(!existsSync(python))('tuning database: log and repair agree', () => {
  it('counts the same usable records per workload before and after the engine repairs mid-file damage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ttvm-agree-'));
    writeFileSync(join(dir, WORKLOAD_FILE), ['["h0", "m0"]', '["h1", "m1"', '["h2", "m2"]', 'true', '["h4", "m4"]'].join('\n') + '\n');
    writeFileSync(join(dir, RECORD_FILE), [rec(0, [0.1]), rec(1, [0.2]), rec(2, [0.3]), rec(3, [0.4]), rec(4, [0.5]), rec(2, ['x']), rec(4, [0.6], 2), '[2.5, []]', rec(4, null), 'torn ['].join('\n') + '\n');
    const usable = (log: Awaited<ReturnType<typeof readTuningLog>>) =>
      Object.fromEntries(log.tasks.filter((t) => !t.hash.startsWith('?')).map((t) => [t.hash, [t.records, t.failures, t.best_ms]]));
    const before = await readTuningLog(dir);
    const r = spawnSync(python, ['-c', `import json, sys; from torchtvm.tune import repair; print(json.dumps(repair(sys.argv[1])))`, dir], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: join(process.cwd(), 'native', 'engine') } });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const after = await readTuningLog(dir);
    expect(usable(after)).toEqual(usable(before));
    expect(after.records).toBe(before.records);
    expect(before.records).toBe(4); // h0, h2, h4 and h4's failed (null run_secs) record
    expect(report.orphaned_records).toBe(2);
    expect(after.skipped.record_lines + after.skipped.workload_lines).toBe(0);
  });
});
