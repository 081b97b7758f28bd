// `torchtvm compile … --compare-ops` against the real engine: each op of the build against PyTorch's
// value for the same node, as a table and in the --json result; never without the flag.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OpComparisonSchema } from '../../app/contract/results.js';
import { makeModels, runCli, tmpHome } from './helpers.js';

let models: string;
const env = { TORCHTVM_HOME: '' };
beforeAll(() => {
  models = makeModels();
  env.TORCHTVM_HOME = tmpHome();
});

describe('torchtvm compile --compare-ops', () => {
  it('prints the per-op table and carries op_comparison in --json', async () => {
    const args = ['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float32', '--threads', '2', '--no-measure', '--compare-ops'];
    const human = await runCli(args, env);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/Per-op comparison with PyTorch \(\d+ op\(s\), in run order; tolerance float32 atol 0\.0001 \+ rtol 0\.001/);
    expect(human.stdout).toMatch(/Every op is within tolerance\./);
    expect(human.stdout).toMatch(/^\s*op\s+where\s+shape\s+time\s+max abs\s+max rel\s+NaN\/inf/m);
    expect(human.stdout).toMatch(/linear fc2\s+library\s+\[2, 4\]\s+[\d.]+ (?:µs|ms)\s+\S+\s+\S+\s+0\s+ok/);

    const json = await runCli([...args, '--json'], env);
    expect(json.code).toBe(0);
    const res = (json.lines.at(-1) as { result: Record<string, unknown> }).result;
    const oc = OpComparisonSchema.parse(res.op_comparison);
    expect(oc.first_failing).toBeNull();
    expect(oc.ops.map((o) => [o.kind, o.scope, o.where])).toEqual([['linear', 'fc1', 'library'], ['linear', 'fc2', 'library']]);
    expect(oc.ops.every((o) => o.ok && o.nan_inf_mismatches === 0)).toBe(true);
    expect(oc.ops.every((o) => o.ms! > 0)).toBe(true); // each call timed alone
  });

  it('is not run without the flag', async () => {
    const r = await runCli(['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float32', '--threads', '2', '--no-measure', '--json'], env);
    expect(r.code).toBe(0);
    const res = (r.lines.at(-1) as { result: Record<string, unknown> }).result;
    expect(res.op_comparison).toBeUndefined();
  });
});
