// The CLI's frontend paths: a torch.export .pt2 (inspect, compile with its own dynamic dims),
// fallback by default and --strict, the engine Python setting.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { paths } from '../../app/core/paths.js';
import { makeModels, runCli, tmpHome } from './helpers.js';

let models: string;
const env = { TORCHTVM_HOME: '' };

const MAKE_PT2 = `
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16, 8)
    def forward(self, x):
        return torch.relu(self.fc(x))
ep = torch.export.export(M().eval(), (torch.randn(2, 16),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=8)},))
torch.export.save(ep, sys.argv[1])
`;

beforeAll(() => {
  models = makeModels();
  env.TORCHTVM_HOME = tmpHome();
  const r = spawnSync(paths.python, ['-c', MAKE_PT2, join(models, 'dyn.pt2')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
});

describe('torch.export .pt2 on the command line', () => {
  it('inspect shows the inputs with their dynamic range and the op histogram', async () => {
    const r = await runCli(['inspect', join(models, 'dyn.pt2')], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/torch\.export program/);
    expect(r.stdout).toMatch(/x\s+Tensor\s+\[batch=1\.\.8, 16\]\s+float32/);
    expect(r.stdout).toMatch(/aten::linear\s+1/);
  });

  it('compile needs no --input: the program\'s dims and ranges are the specs', async () => {
    const r = await runCli(['compile', join(models, 'dyn.pt2'), '--threads', '2', '--no-measure', '--json'], env);
    expect(r.code).toBe(0);
    const res = (r.lines.at(-1) as { result: Record<string, any> }).result;
    expect(res.inputs[0].dims).toEqual([{ name: 'batch', min: 1, max: 8 }, 16]);
    expect(res.verification.ok).toBe(true);
  });
});

describe('fallback and --strict', () => {
  it('--strict fails naming the unsupported op; --strict with --fallback is a usage error', async () => {
    const r = await runCli(['compile', join(models, 'unsupported.pt'), '--input', 'x:4:float32', '--strict'], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/does not support 1 op\(s\) in this model: special_i1e.default \(x1\)/);
    expect(r.stderr).toMatch(/--strict/);
    const u = await runCli(['compile', join(models, 'unsupported.pt'), '--input', 'x:4:float32', '--strict', '--fallback'], env);
    expect(u.stderr).toMatch(/contradict/);
  });
});

describe('torchtvm config python', () => {
  it('shows the bundled default and refuses a Python that is not there', async () => {
    const r = await runCli(['config'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Engine Python: .*\.venv\/bin\/python \(from the bundled \.venv\)/);
    const bad = await runCli(['config', 'python', '/nonexistent/python'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/\/nonexistent\/python could not be asked for its package versions/);
  });
});
