// The native addon loaded directly (libtorch inspection and the benchmark harness), against small
// TorchScript models made by test/fixtures/make_bench_models.py and, when the runtime library and
// deploy/export.py exist, a model exported by torchtvm.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { paths } from '../../app/core/paths.js';

const exportAvailable = existsSync(paths.runtimeLib) && existsSync(join(paths.engineDir, 'torchtvm', 'deploy', 'export.py'));
const tiny = [{ name: 'x', dims: [1, 8], dtype: 'float32' }];

interface Stats { min: number; max: number; mean: number; p50: number; p90: number; p99: number; stddev: number; runs: number }
interface Addon {
  loadLibrary(p: string): void;
  runtimeLoaded(): boolean;
  inspect(p: string): Promise<any>;
  benchmark(p: string | string[], specs: unknown[], opts: Record<string, unknown>, onSample?: (m: number, i: number, ms: number) => void): { done: Promise<any>; cancel(): void };
  summarize(v: number[]): Stats;
}

let addon: Addon;
let dir: string;
const m = (name: string) => join(dir, name);

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a rejection');
}

function expectOrdered(s: Stats, runs: number) {
  expect(s.runs).toBe(runs);
  expect(s.min).toBeGreaterThan(0);
  expect(s.min).toBeLessThanOrEqual(s.p50);
  expect(s.p50).toBeLessThanOrEqual(s.p90);
  expect(s.p90).toBeLessThanOrEqual(s.p99);
  expect(s.p99).toBeLessThanOrEqual(s.max);
  expect(s.mean).toBeGreaterThanOrEqual(s.min);
  expect(s.mean).toBeLessThanOrEqual(s.max);
  expect(s.stddev).toBeGreaterThanOrEqual(0);
}

beforeAll(() => {
  expect(existsSync(paths.addon), `${paths.addon} is not built: run npm run setup`).toBe(true);
  addon = createRequire(import.meta.url)(paths.addon) as Addon;
  dir = mkdtempSync(join(tmpdir(), 'torchtvm-addon-'));
  const args = [join(paths.root, 'test/fixtures/make_bench_models.py'), dir, ...(exportAvailable ? ['--exported'] : [])];
  execFileSync(paths.python, args, { stdio: ['ignore', 'ignore', 'inherit'], cwd: paths.root, env: { ...process.env, PYTHONWARNINGS: 'ignore', TORCH_LOGS: '-all' } });
});

describe('inspect', () => {
  it('reports inputs, the op histogram and parameters of a traced model', async () => {
    const r = await addon.inspect(m('tiny.pt'));
    expect(r.path).toBe(m('tiny.pt'));
    expect(r.inputs).toEqual([{ name: 'x', type: 'Tensor' }]);
    expect(r.input_style).toBe('positional');
    expect(r.ops).toEqual({ 'aten::linear': 1, 'aten::relu': 1 });
    expect(r.parameters).toEqual({ count: 8 * 4 + 4, bytes: (8 * 4 + 4) * 4, tensors: 2 });
    expect(r.exported).toBeNull();
  });

  it('reads a scripted model with two inputs and one taking List[Tensor]', async () => {
    const mlp = await addon.inspect(m('mlp.pt'));
    expect(mlp.inputs.map((i: { name: string }) => i.name)).toEqual(['x', 'y']);
    expect(mlp.ops['aten::linear']).toBe(1);
    const list = await addon.inspect(m('listin.pt'));
    expect(list.inputs).toEqual([{ name: 'inputs', type: 'List[Tensor]' }]);
    expect(list.input_style).toBe('list');
  });

  it('explains files that are not TorchScript in a sentence', async () => {
    const garbage = await rejection(addon.inspect(m('garbage.pt')));
    expect(garbage.code).toBe('not_torchscript');
    expect(garbage.message).toMatch(/is not a TorchScript file \(it is not a zip archive\)/);
    const stateDict = await rejection(addon.inspect(m('not_ts.pt')));
    expect(stateDict.code).toBe('not_torchscript');
    expect(stateDict.message).toMatch(/zip archive but not a TorchScript module/);
    const missing = await rejection(addon.inspect(m('nope.pt')));
    expect(missing.code).toBe('file_not_found');
    expect(missing.message).toBe(`${m('nope.pt')} does not exist; check the path.`);
    const folder = await rejection(addon.inspect(dir));
    expect(folder.code).toBe('not_a_file');
  });
});

describe('benchmark', () => {
  it('streams samples before it resolves with ordered statistics', async () => {
    const samples: Array<[number, number, number]> = [];
    const h = addon.benchmark(m('tiny.pt'), tiny, { warmup: 5, iterations: 300, flushMs: 1 }, (mi, it, ms) => samples.push([mi, it, ms]));
    const r = await h.done;
    expect(samples.length).toBe(300); // all of them, before the promise settled
    expect(samples.map((s) => s[1])).toEqual([...Array(300).keys()]);
    expect(samples.every(([mi, , ms]) => mi === 0 && ms > 0)).toBe(true);
    expect(r.cancelled).toBe(false);
    expect(r.iterations).toBe(300);
    expect(r.inputs).toEqual([{ name: 'x', shape: [1, 8], dtype: 'float32' }]);
    expect(r.models).toHaveLength(1);
    expect(r.models[0].input_style).toBe('positional');
    expectOrdered(r.models[0].stats, 300);
    const sorted = samples.map((s) => s[2]).sort((a, b) => a - b);
    expect(r.models[0].stats.min).toBe(sorted[0]);
    expect(r.models[0].stats.max).toBe(sorted[299]);
  });

  it('uses sample sizes for symbolic dims and draws integer inputs from their range', async () => {
    const r = await addon.benchmark(m('embed.pt'), [{ name: 'ids', dims: [{ name: 'batch', min: 1, max: 8 }, 7], dtype: 'int64', range: [0, 50] }], { warmup: 1, iterations: 5 }).done;
    expect(r.inputs).toEqual([{ name: 'ids', shape: [2, 7], dtype: 'int64' }]);
    const one = await addon.benchmark(m('embed.pt'), [{ name: 'ids', dims: [{ name: 'batch', min: 1, max: 1 }, 3], dtype: 'int64', range: [0, 50] }], { warmup: 0, iterations: 2 }).done;
    expect(one.inputs[0].shape).toEqual([1, 3]);
  });

  it('runs two models interleaved, each with its calling convention', async () => {
    const seen: number[] = [];
    const r = await addon.benchmark([m('tiny.pt'), m('listin.pt')], tiny, { warmup: 2, iterations: 50 }, (mi) => seen.push(mi)).done;
    expect(r.models.map((x: { input_style: string }) => x.input_style)).toEqual(['positional', 'list']);
    expectOrdered(r.models[0].stats, 50);
    expectOrdered(r.models[1].stats, 50);
    // run by run, alternating which goes first: 0 1 1 0 0 1 …
    expect(seen.slice(0, 6)).toEqual([0, 1, 1, 0, 0, 1]);
  });

  it('stops when cancelled and returns what it measured', async () => {
    const h = addon.benchmark(m('slow.pt'), [{ name: 'x', dims: [64, 256], dtype: 'float32' }], { warmup: 0, iterations: 10_000_000, threads: 1 });
    const t0 = Date.now();
    setTimeout(() => h.cancel(), 300);
    const r = await h.done;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.cancelled).toBe(true);
    expect(r.threads).toBe(1);
    expect(r.iterations).toBeGreaterThan(0);
    expect(r.iterations).toBeLessThan(10_000_000);
    expectOrdered(r.models[0].stats, r.iterations);
  });

  it('says which inputs a model rejects, and when the count is wrong', async () => {
    const wrongShape = await rejection(addon.benchmark(m('mlp.pt'), [{ name: 'x', dims: [2, 16], dtype: 'float32' }, { name: 'y', dims: [3, 4], dtype: 'float32' }], {}).done);
    expect(wrongShape.code).toBe('inputs_rejected');
    expect(wrongShape.message).toMatch(/rejected the inputs \(x \[2, 16\] float32, y \[3, 4\] float32\): The size of tensor a \(2\) must match/);
    const outOfRange = await rejection(addon.benchmark(m('embed.pt'), [{ name: 'ids', dims: [2, 7], dtype: 'int64', range: [100, 200] }], {}).done);
    expect(outOfRange.message).toMatch(/rejected the inputs .*index out of range/);
    const count = await rejection(addon.benchmark(m('mlp.pt'), [{ name: 'x', dims: [2, 16], dtype: 'float32' }], {}).done);
    expect(count.code).toBe('inputs_mismatch');
    expect(count.message).toMatch(/forward takes 2 input\(s\) \(x, y\) but 1 were described/);
    const notTs = await rejection(addon.benchmark(m('garbage.pt'), tiny, {}).done);
    expect(notTs.code).toBe('not_torchscript');
  });

  it('has a bare mode (no per-run clock, no samples) as the harness-free reference', async () => {
    let samples = 0;
    const r = await addon.benchmark(m('tiny.pt'), tiny, { warmup: 5, iterations: 2000, bare: true }, () => samples++).done;
    expect(samples).toBe(0);
    expect(r.iterations).toBe(2000);
    expect(r.models[0].bare_mean_ms).toBeGreaterThan(0);
    expect(r.models[0].stats.runs).toBe(20); // block means of 100 runs each
  });

  it('validates its arguments synchronously', () => {
    expect(() => addon.benchmark(m('tiny.pt'), tiny, { iterations: 0 })).toThrow(/iterations must be between 1/);
    expect(() => addon.benchmark(m('tiny.pt'), [{ name: 'x', dims: [0], dtype: 'float32' }], {})).toThrow(/dimensions must be 1 or more/);
    expect(() => (addon.inspect as unknown as (x: number) => void)(3)).toThrow(/path must be a string/);
  });

  it('summarizes like the engine (linear-interpolated percentiles, sample stddev)', () => {
    const s = addon.summarize([...Array(100).keys()].map((i) => i + 1));
    expect(s).toMatchObject({ min: 1, max: 100, mean: 50.5, p50: 50.5, runs: 100 });
    expect(s.p90).toBeCloseTo(90.1, 9);
    expect(s.p99).toBeCloseTo(99.01, 9);
    expect(s.stddev).toBeCloseTo(29.011491975882016, 9);
  });
});

describe.runIf(exportAvailable)('exported models', () => {
  it('names the missing runtime library before it is loaded', async () => {
    expect(addon.runtimeLoaded()).toBe(false);
    const e = await rejection(addon.inspect(m('tiny_tvm.pt')));
    expect(e.code).toBe('runtime_missing');
    expect(e.message).toMatch(/was exported by TorchTVM Workbench and needs its runtime library \(libtorchtvm_runtime\.so\)/);
  });

  it('shows the embedded metadata once the runtime is loaded', async () => {
    expect(() => addon.loadLibrary(join(dir, 'no-such-lib.so'))).toThrow(/does not exist/);
    addon.loadLibrary(paths.runtimeLib);
    expect(addon.runtimeLoaded()).toBe(true);
    const r = await addon.inspect(m('tiny_tvm.pt'));
    expect(r.input_style).toBe('positional'); // called as tiny.pt is: forward(x)
    expect(r.inputs).toEqual([{ name: 'x', type: 'Tensor' }]);
    expect(r.exported).toMatchObject({ format_version: 2, producer: 'torchtvm', num_outputs: 1, inputs: [{ name: 'x', dims: [1, 8], dtype: 'float32' }] });
    expect(r.exported.library_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('benchmarks it against the original (the same arguments, detected from the schema)', async () => {
    const r = await addon.benchmark([m('tiny.pt'), m('tiny_tvm.pt')], tiny, { warmup: 3, iterations: 100 }).done;
    expect(r.models.map((x: { input_style: string }) => x.input_style)).toEqual(['positional', 'positional']);
    expectOrdered(r.models[1].stats, 100);
  });

  it('passes the runtime\'s hash check failure through', async () => {
    const e = await rejection(addon.inspect(m('tiny_tvm_bad.pt')));
    expect(e.message).toMatch(/could not be loaded: The compiled library embedded in this model is corrupted: its SHA-256 is [0-9a-f]{64} but the model records [0-9a-f]{64}\./);
  });
});
