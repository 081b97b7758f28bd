// The bench host (the addon in a child process), the 'bench' job runner and `torchtvm bench`, with
// real small TorchScript models (and an exported one when the runtime library and deploy/export.py exist).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent, JobOutcome } from '../../app/contract/jobs.js';
import { type BenchChild, BenchHost, type BenchJobResult, benchRunner, forkSpawner, meaningfulMessage } from '../../app/core/bench/bench-host.js';
import { JobManager } from '../../app/core/jobs.js';
import { paths } from '../../app/core/paths.js';

const exportAvailable = existsSync(paths.runtimeLib) && existsSync(join(paths.engineDir, 'torchtvm', 'deploy', 'export.py'));
const X = [{ name: 'x', dims: [1, 8], dtype: 'float32' as const }];
const SLOW = [{ name: 'x', dims: [64, 256], dtype: 'float32' as const }];
let dir: string;
const m = (name: string) => join(dir, name);

/** The host forks the compiled child (dist/); build it when the sources are newer. */
function ensureBuilt(): void {
  const child = join(paths.root, 'dist/app/core/bench/bench-child.js');
  const srcs = ['app/core/bench/bench-child.ts', 'app/core/bench/bench-host.ts', 'app/cli/commands/bench.ts', 'app/cli/main.ts'].map((s) => join(paths.root, s));
  const stale = !existsSync(child) || srcs.some((s) => statSync(s).mtimeMs > statSync(child).mtimeMs);
  if (stale) spawnSync(process.execPath, [join(paths.root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: paths.root, stdio: 'ignore' });
  expect(existsSync(child), 'tsc did not produce bench-child.js').toBe(true);
}

function runBench(jobs: JobManager, request: Parameters<JobManager['start']>[0]): Promise<{ outcome: JobOutcome; events: JobEvent[] }> {
  const events: JobEvent[] = [];
  let id = '';
  const off = jobs.onEvent((e) => {
    if (e.job === id) events.push(e);
  });
  id = jobs.start(request);
  return jobs.wait(id).then((outcome) => {
    off();
    return { outcome, events };
  });
}

function expectOrdered(s: BenchJobResult['stats'], runs: number) {
  expect(s.runs).toBe(runs);
  expect(s.min).toBeGreaterThan(0);
  expect(s.min).toBeLessThanOrEqual(s.p50);
  expect(s.p50).toBeLessThanOrEqual(s.p90);
  expect(s.p90).toBeLessThanOrEqual(s.p99!);
  expect(s.p99!).toBeLessThanOrEqual(s.max);
}

beforeAll(() => {
  expect(existsSync(paths.addon), `${paths.addon} is not built: run npm run setup`).toBe(true);
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'torchtvm-bench-'));
  const args = [join(paths.root, 'test/fixtures/make_bench_models.py'), dir, ...(exportAvailable ? ['--exported'] : [])];
  execFileSync(paths.python, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: paths.root, env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
});

describe('bench host', () => {
  it('inspects in a child process started by the given spawner', async () => {
    const started: BenchChild[] = [];
    const host = new BenchHost({ spawner: (script, env) => {
      const c = forkSpawner(script, env);
      started.push(c);
      return c;
    } });
    const r = await host.inspect(m('mlp.pt'));
    expect(r.inputs.map((i) => i.name)).toEqual(['x', 'y']);
    expect(r.ops['aten::linear']).toBe(1);
    expect(started).toHaveLength(1);
    expect(started[0].pid).not.toBe(process.pid);
  });

  it('turns a missing addon into a sentence', async () => {
    const host = new BenchHost({ addon: join(dir, 'nope.node') });
    await expect(host.inspect(m('tiny.pt'))).rejects.toMatchObject({ code: 'addon_missing', message: expect.stringMatching(/is not built; run "npm run setup"/) });
  });
});

describe('bench jobs', () => {
  const jobs = new JobManager({ bench: benchRunner() });

  it('streams bench.sample events, then succeeds with ordered stats', async () => {
    const { outcome, events } = await runBench(jobs, { kind: 'bench', model: m('tiny.pt'), inputs: X, warmup: 5, iterations: 200 });
    expect(outcome.state).toBe('succeeded');
    const r = (outcome as { result: BenchJobResult }).result;
    const samples = events.filter((e) => e.event === 'bench.sample');
    expect(samples).toHaveLength(200);
    const lastSample = events.lastIndexOf(samples[199]);
    const done = events.findIndex((e) => e.event === 'job.state' && e.data.state === 'succeeded');
    expect(lastSample).toBeLessThan(done);
    expect(samples[0].data).toMatchObject({ model: m('tiny.pt'), iteration: 0 });
    expect(r.model).toBe(m('tiny.pt'));
    expect(r.iterations).toBe(200);
    expect(r.inputs).toEqual([{ name: 'x', shape: [1, 8], dtype: 'float32' }]);
    expectOrdered(r.stats, 200);
    expect(r.stats.stddev).toBeGreaterThanOrEqual(0);
  });

  it('takes the inputs from the model when it records them, and asks for them when not', async () => {
    const { outcome } = await runBench(jobs, { kind: 'bench', model: m('mlp.pt'), iterations: 3 });
    expect(outcome.state).toBe('failed');
    expect((outcome as { error: { message: string } }).error.message).toMatch(/does not record the shapes of its inputs \(x, y\); describe each one with --input NAME:DIMS:DTYPE/);
  });

  it(`interleaves A and B and reports the ratio of medians (B: ${exportAvailable ? 'the exported model' : 'a List[Tensor] model'})`, async () => {
    const b = exportAvailable ? m('tiny_tvm.pt') : m('listin.pt');
    const { outcome, events } = await runBench(jobs, { kind: 'bench', model: m('tiny.pt'), vs: b, inputs: X, warmup: 5, iterations: 60 });
    expect(outcome.state).toBe('succeeded');
    const r = (outcome as { result: BenchJobResult }).result;
    expect(r.vs).toBe(b);
    expectOrdered(r.stats, 60);
    expectOrdered(r.vs_stats!, 60);
    expect(r.vs_stats!.input_style).toBe(exportAvailable ? 'positional' : 'list'); // an export is called as its model is
    expect(r.ratio).toBeCloseTo(r.stats.p50 / r.vs_stats!.p50, 12);
    const models = events.filter((e) => e.event === 'bench.sample').map((e) => (e.data as { model: string }).model);
    expect(models).toHaveLength(120);
    expect(models.slice(0, 4)).toEqual([m('tiny.pt'), b, b, m('tiny.pt')]);
  });

  it.runIf(exportAvailable)('takes an exported model\'s inputs from its metadata', async () => {
    const { outcome } = await runBench(jobs, { kind: 'bench', model: m('tiny_tvm.pt'), warmup: 1, iterations: 10 });
    expect(outcome.state).toBe('succeeded');
    const r = (outcome as { result: BenchJobResult }).result;
    expect(r.inputs_from).toBe('metadata');
    expect(r.inputs).toEqual([{ name: 'x', shape: [1, 8], dtype: 'float32' }]);
  });

  it('cancels, keeping what it measured', async () => {
    const events: JobEvent[] = [];
    const off = jobs.onEvent((e) => events.push(e));
    const id = jobs.start({ kind: 'bench', model: m('slow.pt'), inputs: SLOW, warmup: 0, iterations: 1_000_000, threads: 1 });
    while (!events.some((e) => e.job === id && e.event === 'bench.sample')) await new Promise((r) => setTimeout(r, 20));
    expect(jobs.cancel(id)).toBe(true);
    const outcome = await jobs.wait(id);
    off();
    expect(outcome.state).toBe('cancelled');
    const r = (outcome as { result?: BenchJobResult }).result!;
    expect(r.cancelled).toBe(true);
    expect(r.iterations).toBeGreaterThan(0);
    expect(r.iterations).toBeLessThan(1_000_000);
    expectOrdered(r.stats, r.iterations);
  });

  it('fails with a sentence when the child dies mid-run, and the next job works', async () => {
    let child: BenchChild | undefined;
    const crashJobs = new JobManager({ bench: benchRunner({ onChild: (c) => (child = c) }) });
    const events: JobEvent[] = [];
    const off = crashJobs.onEvent((e) => events.push(e));
    const id = crashJobs.start({ kind: 'bench', model: m('slow.pt'), inputs: SLOW, warmup: 0, iterations: 1_000_000, threads: 1 });
    while (!events.some((e) => e.job === id && e.event === 'bench.sample')) await new Promise((r) => setTimeout(r, 20));
    const pid = child!.pid!;
    process.kill(pid, 'SIGSEGV'); // what a native crash looks like
    const outcome = await crashJobs.wait(id);
    off();
    expect(outcome.state).toBe('failed');
    const err = (outcome as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('bench_crashed');
    expect(err.message).toMatch(/^The benchmark process stopped unexpectedly \(signal SIGSEGV\) while benchmarking .*slow\.pt; .* The workbench is unaffected/);
    const next = await runBench(crashJobs, { kind: 'bench', model: m('tiny.pt'), inputs: X, warmup: 1, iterations: 5 });
    expect(next.outcome.state).toBe('succeeded');
    expect(child!.pid).not.toBe(pid);
  });

  it('says when a file is not TorchScript', async () => {
    const { outcome } = await runBench(jobs, { kind: 'bench', model: m('not_ts.pt'), inputs: X, iterations: 2 });
    expect(outcome).toMatchObject({ state: 'failed', error: { code: 'not_torchscript', message: expect.stringMatching(/is a zip archive but not a TorchScript module/) } });
  });

  it.runIf(exportAvailable)('passes a failed hash check through', async () => {
    const { outcome } = await runBench(jobs, { kind: 'bench', model: m('tiny_tvm_bad.pt'), inputs: X, iterations: 2 });
    expect(outcome).toMatchObject({ state: 'failed', error: { message: expect.stringMatching(/SHA-256 is [0-9a-f]{64} but the model records/) } });
  });
});

describe('torchtvm bench', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [join(paths.root, 'bin/torchtvm.js'), 'bench', ...args], { cwd: paths.root, encoding: 'utf8', timeout: 300_000 });

  it('prints events then a result line with --json', () => {
    const r = cli([m('tiny.pt'), '--input', 'x:1,8:float32', '--iterations', '20', '--warmup', '2', '--threads', '1', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.event === 'bench.sample')).toHaveLength(20);
    const last = lines.at(-1);
    expect(last.result.threads).toBe(1);
    expectOrdered(last.result.stats, 20);
  });

  it('prints a table, and a ratio with --vs', () => {
    const r = cli([m('tiny.pt'), '--vs', m('tiny.pt'), '--input', 'x:1,8:float32', '--iterations', '20']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/model\s+min\s+p50\s+p90\s+p99\s+mean\s+stddev\s+runs\s+vs tiny\.pt/);
    expect(r.stdout).toMatch(/\(again\)/);
    // The app's wording ("1.65× faster", never a bare 0.61x), and a warning where the noise explains it.
    expect(r.stdout).toMatch(/\(again\): (\d+(\.\d+)?× (faster|slower) than|the same speed as) .*tiny\.pt at p50/);
    expect(r.stdout).not.toMatch(/\d\.\d+x\b/);
    if (/within what the noise explains/.test(r.stdout)) expect(r.stderr).toMatch(/warning: .*(within the noise|implausible)/);
  });

  it('reports usage mistakes and failures with exit codes', () => {
    const usage = cli([m('tiny.pt'), '--iterations', 'zero']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/--iterations must be an integer of at least 1/);
    const bad = cli([m('garbage.pt'), '--input', 'x:1,8:float32']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/error: .*garbage\.pt is not a TorchScript file/);
  });

  it('shows the first meaningful sentence of a C++ error, and the frame dump only as detail', () => {
    // With C++ stack traces on (as many dev setups have), torch's message carries the frame dump.
    const run = (verbose: boolean) =>
      spawnSync(process.execPath, [join(paths.root, 'bin/torchtvm.js'), 'bench', m('tiny.pt'), '--input', 'x:1,9:float32', '--iterations', '2', ...(verbose ? ['--verbose'] : [])], {
        cwd: paths.root,
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...process.env, TORCH_SHOW_CPP_STACKTRACES: '1' },
      });
    const r = run(false);
    expect(r.status).toBe(1);
    const message = r.stderr.split('\n').find((l) => l.startsWith('error: '))!;
    expect(message).toMatch(/^error: .*tiny\.pt rejected the inputs \(x \[1, 9\] float32\): .*mat1 and mat2 shapes cannot be multiplied \(1x9 and 8x\d+\)$/);
    expect(r.stderr).not.toMatch(/frame #|Exception raised from|c10::Error/);
    expect(message.match(/cannot be multiplied/g)).toHaveLength(1);
    const v = run(true);
    expect(v.stderr).toMatch(/Exception raised from/); // the dump is still there, as detail
  });
});

describe('meaningfulMessage', () => {
  it('cuts the C++ frame dump, says a repeated sentence once, and keeps plain messages as they are', () => {
    const dump = "x.pt rejected the inputs (x [2, 8] float32): shape '[-1, 5]' is invalid for input of size 16 shape '[-1, 5]' is invalid for input of size 16 Exception raised from infer_size_impl at InferSize.h:72 (most recent call first):\nframe #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x9d (0x7f in libc10.so)\nframe #1: at::native::view(...)";
    expect(meaningfulMessage(dump)).toBe("x.pt rejected the inputs (x [2, 8] float32): shape '[-1, 5]' is invalid for input of size 16");
    const runtime = 'Input x has shape [3, 8], but the TVM module expects x [2, 8] float32: dimension 0 must be 2, got 3. Input x has shape [3, 8], but the TVM module expects x [2, 8] float32: dimension 0 must be 2, got 3.\nException raised from operator() at runtime.cc:470 (most recent call first):\nframe #0: c10::Error';
    expect(meaningfulMessage(runtime)).toBe('Input x has shape [3, 8], but the TVM module expects x [2, 8] float32: dimension 0 must be 2, got 3.');
    expect(meaningfulMessage('tiny.pt rejected the inputs (x [2, 9] float32): addmm: mat1 and mat2 shapes cannot be multiplied (2x9 and 8x4)')).toBe('tiny.pt rejected the inputs (x [2, 9] float32): addmm: mat1 and mat2 shapes cannot be multiplied (2x9 and 8x4)');
    expect(meaningfulMessage('frame #0: only a dump')).toBe('frame #0: only a dump');
    expect(meaningfulMessage('x'.repeat(2000))).toHaveLength(500);
  });
});
