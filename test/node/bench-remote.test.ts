// A bench job on a tracker's server (issue 25), without a tracker: the request's rules (tracker and
// key together, neither with vs nor sweep), the runner that sends such a job to an engine's
// bench_remote and turns its answer into a bench result naming the server, and the CLI's
// `bench --tracker` going through that job (a tracker that is down fails the job with a sentence).
// With a real tracker and servers on loopback: test/e2e/targets.e2e.test.ts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BenchRequestSchema, JobRequestSchema, parseJobResult } from '../../app/contract/jobs.js';
import { BenchResultSchema } from '../../app/contract/results.js';
import { thisMachine } from '../../app/core/bench/bench-host.js';
import { benchOnTarget } from '../../app/core/engine-client/engine-runners.js';
import type { EngineRequests } from '../../app/core/engine-client/engine-pool.js';
import type { RunContext } from '../../app/core/jobs.js';
import { closedPort, runCli } from './helpers.js';

const issues = (r: { success: boolean; error?: { issues: { message: string }[] } }) => (r.success ? [] : r.error!.issues.map((i) => i.message));

describe('bench request: tracker and key', () => {
  it('takes both or neither, and neither with vs or sweep', () => {
    expect(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', tracker: '127.0.0.1:9190', key: 'pair' }).success).toBe(true);
    expect(JobRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', tracker: '127.0.0.1:9190', key: 'pair' }).success).toBe(true);
    expect(issues(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', tracker: '127.0.0.1:9190' }))).toEqual([expect.stringMatching(/^tracker and key go together/)]);
    expect(issues(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', key: 'pair' }))).toEqual([expect.stringMatching(/^tracker and key go together/)]);
    expect(issues(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', vs: 'e.pt', tracker: '127.0.0.1:9190', key: 'pair' }))).toEqual([expect.stringMatching(/leave out vs and sweep/)]);
    expect(issues(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', sweep: {}, tracker: '127.0.0.1:9190', key: 'pair' }))).toEqual([expect.stringMatching(/leave out vs and sweep/)]);
    // The tune request's rules for each: HOST:PORT, a key of letters, digits, dots, dashes, underscores.
    expect(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', tracker: 'nohost', key: 'pair' }).success).toBe(false);
    expect(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', tracker: '127.0.0.1:9190', key: 'a key; rm -rf' }).success).toBe(false);
    expect(BenchRequestSchema.safeParse({ kind: 'bench', model: 'm.pt', tracker: '127.0.0.1:9190', key: 'x'.repeat(101) }).success).toBe(false);
  });

  it('measured_on is strict', () => {
    const base = { model: 'm.pt', threads: 1, warmup: 1, iterations: 2, cancelled: false, inputs: [], stats: { p50: 1, p90: 1, p99: 1, min: 1, mean: 1, runs: 2, max: 1 } };
    expect(BenchResultSchema.safeParse({ ...base, measured_on: thisMachine() }).success).toBe(true);
    expect(BenchResultSchema.safeParse({ ...base, measured_on: { name: 'a', cpu_model: null, extra: 1 } }).success).toBe(false);
    expect(BenchResultSchema.safeParse(base).success).toBe(true); // runs recorded before issue 25
  });
});

function fakeEngine(answer: (method: string, params: Record<string, unknown>) => unknown) {
  const calls: Array<{ method: string; params: Record<string, unknown> }> = [];
  const engine = {
    request: (method: string, params: Record<string, unknown>) => {
      calls.push({ method, params });
      return { id: 1, done: Promise.resolve(answer(method, params)) };
    },
    cancel: () => true,
  } as unknown as EngineRequests;
  return { engine, calls };
}

const ctx = (): RunContext => ({ job: 'bench-1', emit: () => {}, signal: new AbortController().signal });

describe('the bench runner with targets', () => {
  it('sends a tracker job to the engine and says which server measured it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ttvm-bench-remote-'));
    const model = join(dir, 'm.pt');
    writeFileSync(model, 'not a model: the engine is faked');
    const { engine, calls } = fakeEngine(() => ({
      p50: 1.5, p90: 1.7, p99: 2, mean: 1.6, min: 1.4, max: 2.1, runs: 50, warmup: 5, threads: 4,
      inputs: [{ name: 'x', shape: [1, 8], dtype: 'float32' }], inputs_from: 'metadata', specs: [],
      model, tracker: '127.0.0.1:9190', key: 'pair',
      measured_on: { name: 'pair-a', cpu_model: 'Some CPU', llvm_cpu: 'znver4', hostname: 'h', cores: 8 },
    }));
    let local = 0;
    const run = benchOnTarget(engine, async () => {
      local++;
      throw new Error('not here');
    });
    const req = BenchRequestSchema.parse({ kind: 'bench', model, tracker: '127.0.0.1:9190', key: 'pair', iterations: 50, warmup: 5 });
    const r = parseJobResult('bench', await run(req, ctx()));
    expect(local).toBe(0);
    expect(calls).toEqual([{ method: 'bench_remote', params: { tracker: '127.0.0.1:9190', key: 'pair', model, warmup: 5, iterations: 50, timeout: 600 } }]);
    expect(r.measured_on).toEqual({ name: 'pair-a', cpu_model: 'Some CPU', llvm_cpu: 'znver4', hostname: 'h', cores: 8, tracker: '127.0.0.1:9190', key: 'pair' });
    expect(r.stats).toMatchObject({ p50: 1.5, p90: 1.7, p99: 2, runs: 50 });
    expect(r.inputs_from).toBe('metadata');
    expect(r.model_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('leaves a job without a tracker to the bench host', async () => {
    const { engine, calls } = fakeEngine(() => null);
    const run = benchOnTarget(engine, async (req) => ({ model: req.kind === 'bench' ? req.model : '', threads: 1, warmup: 0, iterations: 1, cancelled: false, inputs: [], stats: { p50: 1, p90: 1, min: 1, mean: 1, runs: 1, max: 1 }, measured_on: thisMachine() }));
    const r = parseJobResult('bench', await run(BenchRequestSchema.parse({ kind: 'bench', model: 'm.pt' }), ctx()));
    expect(calls).toEqual([]);
    expect(r.measured_on?.name).toBe('this machine');
    expect(r.measured_on?.tracker).toBeUndefined();
  });
});

describe('torchtvm bench --tracker', () => {
  it('refuses --vs, and runs as a bench job that fails with a sentence when no tracker answers', async () => {
    let r = await runCli(['bench', 'm.pt', '--tracker', '127.0.0.1:9190', '--key', 'k', '--vs', 'e.pt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/leave out --vs and --sweep/);
    const dir = mkdtempSync(join(tmpdir(), 'ttvm-bench-remote-'));
    const model = join(dir, 'm.pt');
    writeFileSync(model, 'never loaded here');
    const port = await closedPort();
    r = await runCli(['bench', model, '--tracker', `127.0.0.1:${port}`, '--key', 'k', '--json']);
    expect(r.code).toBe(1);
    const states = r.lines.filter((l) => l.event === 'job.state').map((l) => (l.data as { state: string }).state);
    expect(states).toContain('failed'); // a job like any other
    const last = r.lines.at(-1) as { error?: { code: string; message: string } };
    expect(last.error?.code).toBe('tracker_unreachable');
    expect(last.error?.message).toMatch(/No RPC tracker answers at 127\.0\.0\.1:\d+/);
  }, 120_000);
});
