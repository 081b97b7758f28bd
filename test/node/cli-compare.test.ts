// `torchtvm compare BUILD_A BUILD_B` and app/contract/build-compare.ts on real build folders the real
// engine made: the tiny MLP compiled twice, placement auto (library calls) and placement tvm.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareBuilds, errorDiffers, overlayHistogram, timeDiffers } from '../../app/contract/build-compare.js';
import { readBuildRecord } from '../../app/core/builds.js';
import { makeModels, runCli, tmpHome } from './helpers.js';

let models: string;
let dirA: string;
let dirB: string;
const env = { TORCHTVM_HOME: '' };

beforeAll(async () => {
  models = makeModels();
  env.TORCHTVM_HOME = tmpHome();
  dirA = join(models, 'build-auto');
  dirB = join(models, 'build-tvm');
  const base = ['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float32', '--threads', '2', '--compare-ops', '--mkdir'];
  const [a, b] = [await runCli([...base, '--out-dir', dirA], env), await runCli([...base, '--placement', 'tvm', '--out-dir', dirB], env)];
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
}, 240_000);

describe('compareBuilds on real build records', () => {
  it('joins the ops by graph node and flags the placement change', () => {
    const a = readBuildRecord(dirA);
    const b = readBuildRecord(join(dirB, 'build.json'));
    expect(a.build.dir).toBe(dirA);
    const c = compareBuilds(a, b);
    expect(c.same_model).toBe(true);
    expect(c.warnings).toEqual([]);
    // fc1 (linear + relu fused) and fc2: one row each although B's comparison rows name other nodes first (relu, addmm).
    expect(c.rows.map((r) => [r.label, r.a?.where, r.b?.where, r.diff.placement])).toEqual([
      ['fc1 linear', 'library', 'tvm', true],
      ['fc2 linear', 'library', 'tvm', true],
    ]);
    expect(c.rows.every((r) => r.a!.ms !== null && r.b!.ms !== null && r.a!.ok === true && r.b!.ok === true && !r.diff.error && !r.diff.missing)).toBe(true);
    expect(c.counts).toMatchObject({ rows: 2, placement: 2, error: 0, missing: 0 });
    const f = Object.fromEntries(c.facts.map((x) => [x.what, x]));
    expect(f.placement).toMatchObject({ a: 'auto', b: 'tvm', differs: true });
    expect(f.threads).toMatchObject({ a: '2', b: '2', differs: false });
    expect(f.tuned.differs).toBe(false);
    expect(f['library sha256'].differs).toBe(true);
    expect(f['ISA features'].differs).toBe(false);
  });

  it('warns for the same build twice and for builds of different models', () => {
    const a = readBuildRecord(dirA);
    expect(compareBuilds(a, a).warnings.join(' ')).toMatch(/same build/);
    const other = { ...a, result: { ...a.result, model: '/elsewhere/other.pt' } };
    const c = compareBuilds(a, other);
    expect(c.same_model).toBe(false);
    expect(c.warnings[0]).toMatch(/different models/);
  });

  it('has thresholds for time and error', () => {
    expect(timeDiffers(1, 1.05)).toBe(false);
    expect(timeDiffers(1, 1.2)).toBe(true);
    expect(timeDiffers(0.0020, 0.0028)).toBe(false); // 40% but under 1 µs
    expect(timeDiffers(null, 1)).toBe(false);
    const s = (max_abs: number | string | null, ok: boolean | null) => ({ where: 'tvm' as const, ms: null, max_abs, max_rel: null, ok, name: 'x' });
    expect(errorDiffers(s(1e-7, true), s(5e-7, true))).toBe(false);
    expect(errorDiffers(s(1e-5, true), s(2e-3, true))).toBe(true);
    expect(errorDiffers(s(1e-5, true), s(1e-5, false))).toBe(true);
    expect(errorDiffers(s('nan', false), s(0, true))).toBe(true);
    const h = overlayHistogram([1, 1, 2, 3], [2, 2, 2, 4], 4)!;
    expect(h.a.reduce((x, y) => x + y) + h.b.reduce((x, y) => x + y)).toBe(8);
  });

  it('refuses a missing or damaged build.json with a sentence', () => {
    expect(() => readBuildRecord(join(models, 'nowhere'))).toThrow(/is not a build: there is no such folder/);
    const empty = join(models, 'empty-build');
    mkdirSync(empty);
    expect(() => readBuildRecord(empty)).toThrow(/holds no build.json/);
    writeFileSync(join(empty, 'build.json'), '{"format": 1, "build": {"id": 3}, "result": {}}');
    expect(() => readBuildRecord(empty)).toThrow(/is damaged: build\.id: .*Compile the model again/);
    writeFileSync(join(empty, 'build.json'), '{"format": 1, "bu');
    expect(() => readBuildRecord(empty)).toThrow(/cannot be read/);
  });
});

describe('torchtvm compare', () => {
  it('prints what differs, the per-op table and the interleaved bench with a histogram', async () => {
    const r = await runCli(['compare', dirA, dirB, '--iterations', '60'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\*\s+placement\s+auto\s+tvm$/m);
    expect(r.stdout).toMatch(/Per op: 2 of 2 op\(s\) differ \(2 placement/);
    expect(r.stdout).toMatch(/^\*\s+linear\s+fc1\s+library → TVM\s+\S+ (ns|µs|ms)\s+\S+ (ns|µs|ms)\s+\S+ ok\s+\S+ ok\s+placement/m);
    expect(r.stdout).toMatch(/^A(\s+[\d.]+ (µs|ms)){5}\s+60$/m);
    expect(r.stdout).toMatch(/^B(\s+[\d.]+ (µs|ms)){5}\s+60$/m);
    expect(r.stdout).toMatch(/Latency distributions \(A █, B ░; 20 (log-spaced )?bins/);
    expect(r.stdout.split('\n').filter((l) => /^\s*≥ [\d.]+ (µs|ms) │.*│/.test(l))).toHaveLength(20);
  }, 120_000);

  it('--json: one result with the comparison, the bench and both sides\' samples; --no-bench skips the bench', async () => {
    const r = await runCli(['compare', dirA, dirB, '--iterations', '30', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const res = (r.lines.at(-1) as { result: Record<string, any> }).result;
    expect(res.comparison.rows).toHaveLength(2);
    expect(res.bench.stats.runs).toBe(30);
    expect(res.bench.vs_stats.runs).toBe(30);
    expect(res.samples.a).toHaveLength(30);
    expect(res.samples.b).toHaveLength(30);
    const quick = await runCli(['compare', dirA, dirB, '--no-bench', '--all', '--json'], env);
    expect(quick.code).toBe(0);
    expect(quick.lines).toHaveLength(1);
    expect((quick.lines[0] as { result: Record<string, any> }).result.comparison.rows).toHaveLength(2);
  }, 120_000);

  it('usage and a missing build are errors with a sentence', async () => {
    const u = await runCli(['compare', dirA], env);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/give two build folders/);
    const m = await runCli(['compare', dirA, join(models, 'nowhere')], env);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/is not a build: there is no such folder/);
  }, 60_000);
});
