// The torchtvm CLI against the real engine: JSON lines, tables, and one sentence per bad input.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeModels, runCli, tmpHome } from './helpers.js';

let models: string;
const env = { TORCHTVM_HOME: '' };
beforeAll(() => {
  models = makeModels();
  env.TORCHTVM_HOME = tmpHome();
});

describe('torchtvm compile', () => {
  it('--json streams events and ends with the result line', async () => {
    const r = await runCli(['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float32', '--threads', '2', '--json'], env);
    expect(r.code).toBe(0);
    const last = r.lines.at(-1) as { result: Record<string, any> };
    expect(r.lines.some((l) => l.event === 'job.progress')).toBe(true);
    const res = last.result;
    expect(res.verification.ok).toBe(true);
    expect(res.verification.outputs).toHaveLength(1);
    expect(res.verification.outputs[0].max_abs).toBeLessThan(1e-4);
    expect(res.latency_ms.tvm.p50).toBeGreaterThan(0);
    expect(res.latency_ms.torch.p50).toBeGreaterThan(0);
    expect(res.files.library).toContain(env.TORCHTVM_HOME);
    expect(res.threads).toBe(2);
  });

  it('prints stages, the verification and the latency table', async () => {
    const r = await runCli(['compile', join(models, 'two_inputs.pt'), '--input', 'a:2,3:float32', '--input', 'b:2,3:float32'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Inputs: a \[2, 3\] float32; b \[2, 3\] float32$/m); // shown back as parsed
    expect(r.stdout).toMatch(/import\s+[\d.]+ s/);
    expect(r.stdout).toMatch(/Verification against PyTorch: OK/);
    expect(r.stdout).toMatch(/TorchScript\s+[\d.]+ (ms|µs|ns)/);
    expect(r.stderr).toMatch(/\[build\]/);
  });
});

describe('bad input gets one sentence and a non-zero exit', () => {
  const cases: Array<[string, () => string[], RegExp, string]> = [
    ['missing file', () => ['inspect', join(models, 'nope.pt')], /nope\.pt does not exist/, 'file_not_found'],
    ['not a zip', () => ['inspect', join(models, 'not_a_zip.pt')], /not a TorchScript file \(it is not a zip archive\)/, 'not_a_zip'],
    ['state dict', () => ['inspect', join(models, 'state_dict.pt')], /state dict/, 'not_torchscript'],
    ['wrong input count', () => ['compile', join(models, 'two_inputs.pt'), '--input', 'a:2,3:float32'], /takes 2 input\(s\) \(a, b\) but 1 were described/, 'input_count'],
    ['shape rejected', () => ['compile', join(models, 'mlp.pt'), '--input', 'x:2,15:float32'], /rejected inputs of x: \[2, 15\] float32/, 'shape_rejected'],
    ['malformed --input', () => ['compile', join(models, 'mlp.pt'), '--input', 'x:2,sixteen!:float32'], /dims: dimension 2 "sixteen!" is not a positive integer or a symbol like batch=1\.\.64/, 'usage'],
    ['unknown dtype', () => ['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float64'], /dtype: "float64" is not a supported dtype; use one of float32/, 'usage'],
    ['unsupported op', () => ['compile', join(models, 'unsupported.pt'), '--input', 'x:4:float32'], /does not support 1 op\(s\) in this model: special_i1e.default \(x1\)/, 'unsupported_op'],
  ];
  for (const [name, args, message, code] of cases) {
    it(name, async () => {
      const human = await runCli(args(), env);
      expect(human.code).not.toBe(0);
      expect(human.stderr).toMatch(message);
      expect(human.stderr).not.toMatch(/Traceback|at .*\.js:\d+/);
      const json = await runCli([...args(), '--json'], env);
      expect(json.code).not.toBe(0);
      const last = json.lines.at(-1) as { error: { code: string; message: string } };
      expect(last.error.code).toBe(code);
      expect(last.error.message).toMatch(message);
    });
  }

  it('an engine killed mid-build says so, and the next request works', async () => {
    let killed = false;
    const r = await runCli(['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float32', '--json'], env, (line, cli) => {
      const data = line.data as { stage?: string } | undefined;
      if (!killed && line.event === 'job.progress' && data?.stage === 'build') {
        killed = true;
        // the engine is the CLI's child python process
        spawnSync('pkill', ['-KILL', '-P', String(cli.pid), '-f', 'torchtvm.service']);
      }
    });
    expect(killed).toBe(true);
    expect(r.code).toBe(1);
    expect((r.lines.at(-1) as { error: { message: string } }).error.message).toMatch(/^The engine stopped unexpectedly/);
    const again = await runCli(['inspect', join(models, 'mlp.pt'), '--json'], env);
    expect(again.code).toBe(0);
  });
});
