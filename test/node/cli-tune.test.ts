// `torchtvm compile --trials N --json` on a tiny two-matmul model: streamed tune.tasks/tune.trial
// events, then one {"result": …} line with the tuning summary; the work dir it leaves is read back
// by `torchtvm log` (the engine's tuning-log reader).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { paths } from '../../app/core/paths.js';
import { runCli } from './helpers.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ttvm-tune-'));
  const r = spawnSync(paths.python, [join(paths.root, 'test/fixtures/make_tune_models.py'), dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making models failed: ${r.stderr}`);
});

describe('compile --trials', () => {
  it('streams trial events and ends with the result line; the work dir reads back', async () => {
    const wd = join(dir, 'wd');
    const run = await runCli(['compile', join(dir, 'two_op.pt'), '--input', 'x:4,32:float32', '--trials', '4', '--work-dir', wd, '--out-dir', join(dir, 'build'), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const events = run.lines.filter((l) => 'event' in l);
    const tasks = events.filter((e) => e.event === 'tune.tasks');
    const trials = events.filter((e) => e.event === 'tune.trial').map((e) => e.data as Record<string, number | null>);
    expect(tasks).toHaveLength(1);
    expect(trials.length).toBeGreaterThanOrEqual(4);
    expect(trials.map((t) => t.total_trials)).toEqual(trials.map((_, i) => i + 1));
    const last = run.lines[run.lines.length - 1] as { result: { tuning: Record<string, unknown>; verification: { ok: boolean } } };
    expect(last.result.verification.ok).toBe(true);
    expect(last.result.tuning).toMatchObject({ trials: trials.length, resumed_records: 0, work_dir: wd });
    const shown = await runCli(['log', wd, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const log = (shown.lines.at(-1) as { result: { records: number; named_by: string; tasks: Array<{ name: string }> } }).result;
    expect(log.records).toBe(trials.length);
    expect(log.named_by).toBe('workbench');
  });

  it('rejects --work-dir without --trials', async () => {
    const run = await runCli(['compile', join(dir, 'two_op.pt'), '--input', 'x:4,32:float32', '--work-dir', dir]);
    expect(run.code).toBe(2);
  });
});
