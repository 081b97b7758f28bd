// Writes in the workbench home: atomic, no temp file left by a failure, and a settings write that
// fails (recent.json made a folder, a full disk) never fails the job or the host (issue 23).
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeFileAtomic } from '../../app/core/atomic-write.js';
import { addRecentModel, recentModels } from '../../app/core/settings.js';
import { makeModels, runCli, tmpHome } from './helpers.js';

const tmpFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('writes in the workbench home', () => {
  const saved = process.env.TORCHTVM_HOME;
  afterEach(() => {
    process.env.TORCHTVM_HOME = saved;
    vi.restoreAllMocks();
  });

  it('writeFileAtomic replaces the file, and a failed write leaves no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ttvm-atomic-'));
    writeFileAtomic(join(dir, 'a.json'), '1');
    writeFileAtomic(join(dir, 'a.json'), '2');
    expect(readdirSync(dir)).toEqual(['a.json']);
    mkdirSync(join(dir, 'b.json'));
    expect(() => writeFileAtomic(join(dir, 'b.json'), 'x')).toThrow();
    expect(tmpFiles(dir)).toEqual([]);
  });

  it('a recent-models list that cannot be written is a warning, not an error', () => {
    const home = mkdtempSync(join(tmpdir(), 'ttvm-home-'));
    process.env.TORCHTVM_HOME = home;
    const model = join(home, 'm.pt');
    writeFileSync(model, 'x');
    expect(addRecentModel(model)).toBe(true);
    expect(recentModels()).toEqual([model]);
    const home2 = mkdtempSync(join(tmpdir(), 'ttvm-home-'));
    process.env.TORCHTVM_HOME = home2;
    mkdirSync(join(home2, 'recent.json'));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(addRecentModel(model)).toBe(false);
    expect(warn.mock.calls[0][0]).toMatch(/Could not update the recent models .*recent\.json.*the job's results are not affected/);
    expect(tmpFiles(home2)).toEqual([]);
  });
});

describe('a job whose home cannot record it', () => {
  let models: string;
  beforeAll(() => {
    models = makeModels();
  });

  it('still succeeds: the CLI exits 0 and says why the list was not updated', async () => {
    const home = tmpHome();
    mkdirSync(join(home, 'recent.json'), { recursive: true });
    const r = await runCli(['compile', join(models, 'mlp.pt'), '--input', 'x:2,16:float32', '--threads', '2', '--no-measure'], { TORCHTVM_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Verification against PyTorch: OK/);
    expect(r.stderr).toMatch(/Could not update the recent models/);
    expect(tmpFiles(home)).toEqual([]);
  });
});
