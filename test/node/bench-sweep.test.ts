// The batch sweep (issue 24 item 4): a model exported with a symbolic batch by the real engine
// (`torchtvm compile --input x:batch=1..16,8:float32 -o …`), benchmarked by the real addon at each
// batch size through `torchtvm bench … --sweep batch`: a point per size, throughput = size × 1000 / p50,
// the best size under a latency limit, a sentence when none meets it, and sentences for a model
// without a symbolic dimension and for sizes outside the range. Also: a cancel keeps the sizes measured.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent } from '../../app/contract/jobs.js';
import type { BenchResult } from '../../app/contract/results.js';
import { benchRunner } from '../../app/core/bench/bench-host.js';
import { atSize, bestPoint, sweepSizes } from '../../app/core/bench/batch-sweep.js';
import { JobManager } from '../../app/core/jobs.js';
import { paths } from '../../app/core/paths.js';
import { tmpHome } from './helpers.js';

let dir: string;
let home: string;
const m = (name: string) => join(dir, name);
const cli = (args: string[]) => spawnSync(process.execPath, [join(paths.root, 'bin/torchtvm.js'), ...args], { cwd: paths.root, encoding: 'utf8', timeout: 300_000, env: { ...process.env, TORCHTVM_HOME: home } });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ttvm-sweep-'));
  home = tmpHome();
  execFileSync(paths.python, [join(paths.root, 'test/fixtures/make_bench_models.py'), dir], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
  // The real engine builds and exports tiny.pt (relu(linear(x)), x [batch, 8]) with batch in 1..16.
  const r = cli(['compile', m('tiny.pt'), '--input', 'x:batch=1..16,8:float32', '-o', m('tiny_dyn.pt'), '--out-dir', m('build'), '--no-measure']);
  expect(r.status, r.stderr).toBe(0);
});

function sweepResult(stdout: string): { result: BenchResult; events: Array<{ event: string; data: Record<string, unknown> }> } {
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
  return { result: lines.at(-1).result, events: lines.filter((l) => l.event) };
}

describe('torchtvm bench --sweep batch', () => {
  it('measures each size on the one module: throughput = size × 1000 / p50, the best size under the limit', () => {
    const run = cli(['bench', m('tiny_dyn.pt'), '--sweep', 'batch', '--sizes', '1,2,4', '--iterations', '5', '--warmup', '2', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const { result, events } = sweepResult(run.stdout);
    const sw = result.sweep!;
    expect(sw.symbol).toBe('batch');
    expect(result.inputs_from).toBe('metadata');
    expect(sw.specs).toEqual([{ name: 'x', dims: [{ name: 'batch', min: 1, max: 16 }, 8], dtype: 'float32' }]);
    expect(sw.points.map((p) => p.size)).toEqual([1, 2, 4]);
    for (const p of sw.points) {
      expect(p.inputs).toEqual([{ name: 'x', shape: [p.size, 8], dtype: 'float32' }]); // the dimension made concrete
      expect(p.stats.runs).toBe(5);
      expect(p.stats.min).toBeGreaterThan(0);
      expect(p.stats.p50).toBeLessThanOrEqual(p.stats.p90);
      expect(p.throughput_per_s).toBeCloseTo((p.size * 1000) / p.stats.p50, 6);
    }
    expect(result.stats).toEqual(sw.points[0].stats);
    // Without a limit: the highest throughput.
    const top = sw.points.reduce((a, b) => (b.throughput_per_s > a.throughput_per_s ? b : a));
    expect(sw.best).toEqual({ size: top.size, p50: top.stats.p50, throughput_per_s: top.throughput_per_s });
    // Samples labelled per size, and progress between sizes.
    for (const size of [1, 2, 4]) expect(events.filter((e) => e.event === 'bench.sample' && e.data.model === `${m('tiny_dyn.pt')} @ batch=${size}`)).toHaveLength(5);
    expect(events.filter((e) => e.event === 'job.progress').map((e) => e.data.message)).toEqual(expect.arrayContaining(['batch=1 (1 of 3)', 'batch=2 (2 of 3)', 'batch=4 (3 of 3)']));
  });

  it('marks the best size under a latency limit in the table, and says when no size meets it', () => {
    // A limit of a second: every size of this tiny model is within it.
    const within = cli(['bench', m('tiny_dyn.pt'), '--sweep', 'batch', '--sizes', '1,2,4', '--iterations', '5', '--latency-limit', '1000']);
    expect(within.status, within.stderr).toBe(0);
    expect(within.stdout).toMatch(/Inputs: x:batch=1\.\.16,8:float32 \(from the model's export metadata\)/);
    expect(within.stdout).toMatch(/batch\s+p50\s+p90\s+p99\s+samples\/s\s+runs/);
    const rows = within.stdout.split('\n').filter((l) => /^\s+[124]\s/.test(l));
    expect(rows).toHaveLength(3);
    expect(rows.filter((l) => l.includes('◀ best under 1000.0 ms'))).toHaveLength(1);
    expect(within.stdout).toMatch(/Best: batch=\d+, \d+ samples\/s at .* p50 \(the highest throughput with p50 within 1000\.0 ms\)/);

    const none = cli(['bench', m('tiny_dyn.pt'), '--sweep', 'batch', '--sizes', '1,2', '--iterations', '5', '--latency-limit', '0.000001', '--json']);
    expect(none.status, none.stderr).toBe(0);
    const sw = sweepResult(none.stdout).result.sweep!;
    expect(sw.latency_limit_ms).toBe(0.000001);
    expect(sw.best).toBeUndefined();
    expect(sw.note).toMatch(/^No batch size meets the limit of 0\.000001 ms at p50: the fastest, batch=[12], takes /);
  });

  it('picks the best point as documented: the highest throughput whose p50 is within the limit', () => {
    const pt = (size: number, p50: number) => ({ size, stats: { p50, p90: p50, min: p50, mean: p50, runs: 5, max: p50, first_ms: p50, input_style: 'positional' }, throughput_per_s: (size * 1000) / p50, inputs: [] });
    const points = [pt(1, 1), pt(2, 1.5), pt(4, 2.5), pt(8, 4)];
    expect(bestPoint(points, 3, 'batch').best?.size).toBe(4);
    expect(bestPoint(points, undefined, 'batch').best?.size).toBe(8);
    expect(bestPoint(points, 0.5, 'batch')).toEqual({ note: 'No batch size meets the limit of 0.5 ms at p50: the fastest, batch=1, takes 1.00 ms.' });
  });

  it('chooses the sizes: every size of a short range, else the bounds and the powers of two between', () => {
    expect(sweepSizes({ min: 1, max: 16 }, 'batch')).toEqual([1, 2, 4, 8, 16]);
    expect(sweepSizes({ min: 1, max: 6 }, 'batch')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(sweepSizes({ min: 3, max: 100 }, 'batch')).toEqual([3, 4, 8, 16, 32, 64, 100]);
    expect(sweepSizes({ min: 1 }, 'batch', [4, 1, 4])).toEqual([1, 4]);
    expect(() => sweepSizes({ min: 1 }, 'batch')).toThrow(/batch has no upper bound .* give the sizes \(--sizes 1,2,4,8\)/);
    expect(atSize([{ name: 'x', dims: [{ name: 'batch', max: 8 }, { name: 'seq' }, 3], dtype: 'float32' }], 'batch', 4)[0].dims).toEqual([4, { name: 'seq' }, 3]);
  });

  it('refuses a model without a symbolic dimension, sizes outside the range, and --vs, with sentences', () => {
    const plain = cli(['bench', m('tiny.pt'), '--sweep', 'batch', '--iterations', '5']);
    expect(plain.status).toBe(1);
    expect(plain.stderr).toMatch(/tiny\.pt carries no input specs with a symbolic dimension .* Export the model with a symbolic batch, e\.g\. --input x:batch=1\.\.32,3,224,224:float32/);
    const fixed = cli(['bench', m('tiny.pt'), '--sweep', 'batch', '--input', 'x:1,8:float32', '--iterations', '5']);
    expect(fixed.status).toBe(1);
    expect(fixed.stderr).toMatch(/no symbolic dimension to sweep \(x:1,8:float32\)\. Export the model with a symbolic batch/);
    const outside = cli(['bench', m('tiny_dyn.pt'), '--sweep', 'batch', '--sizes', '1,32', '--iterations', '5']);
    expect(outside.status).toBe(1);
    expect(outside.stderr).toMatch(/batch ranges over 1\.\.16 in this model, so 32 cannot be measured/);
    const vs = cli(['bench', m('tiny_dyn.pt'), '--vs', m('tiny.pt'), '--sweep', 'batch']);
    expect(vs.status).toBe(2);
    expect(vs.stderr).toMatch(/--sweep measures one model: leave out --vs/);
  });
});

describe('the sweep job', () => {
  it('stops on cancel and returns the sizes it measured (cancelled: true)', async () => {
    const jobs = new JobManager({ bench: benchRunner() });
    const events: JobEvent[] = [];
    const off = jobs.onEvent((e) => events.push(e));
    // slow.pt takes a few ms a call: size 1 finishes, size 2 is cancelled as its first sample arrives.
    const id = jobs.start({ kind: 'bench', model: m('slow.pt'), inputs: [{ name: 'x', dims: [{ name: 'batch', min: 1, max: 8 }, 256], dtype: 'float32' }], warmup: 0, iterations: 30, threads: 1, sweep: { sizes: [1, 2, 4] } });
    while (!events.some((e) => e.job === id && e.event === 'bench.sample' && e.data.model.endsWith('@ batch=2'))) await new Promise((r) => setTimeout(r, 5));
    jobs.cancel(id);
    const outcome = await jobs.wait(id);
    off();
    expect(outcome.state).toBe('cancelled');
    const r = (outcome as { result?: BenchResult }).result!;
    expect(r.cancelled).toBe(true);
    expect(r.sweep!.points[0]).toMatchObject({ size: 1, stats: { runs: 30 } });
    expect(r.sweep!.points.map((p) => p.size)).not.toContain(4);
    expect(events.some((e) => e.job === id && e.event === 'bench.sample' && e.data.model.endsWith('@ batch=4'))).toBe(false);
  });
});
