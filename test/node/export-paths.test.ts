// Where an export goes: never over the source model or a file the workbench did not write without
// --force (CLI) / overwrite (app), a missing folder is an error that offers --mkdir, a folder or a
// file in the wrong place is a sentence, and all of it is decided before the build starts. The CLI
// runs the real engine; the lock test runs a second real process.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../app/contract/errors.js';
import { isWorkbenchExport, lockPath, prepareOutputs } from '../../app/core/output-paths.js';
import { createWorkbench } from '../../app/core/workbench.js';
import { makeModels, runCli, tmpHome } from './helpers.js';

let models: string;
let work: string;
const env = { TORCHTVM_HOME: '' };
const MLP = ['--input', 'x:2,16:float32', '--no-measure'];

beforeAll(() => {
  models = makeModels();
  work = mkdtempSync(join(tmpdir(), 'ttvm-exp-'));
  env.TORCHTVM_HOME = tmpHome();
});

const errorOf = (r: { stderr: string }) => r.stderr.trim();

describe('compile -o: the files it may replace', () => {
  it('refuses to write over the model it compiles, before building, and leaves the model intact', async () => {
    const model = join(work, 'src.pt');
    writeFileSync(model, readFileSync(join(models, 'mlp.pt')));
    const before = readFileSync(model);
    const t0 = Date.now();
    const r = await runCli(['compile', model, ...MLP, '-o', model], env);
    expect(r.code).toBe(1);
    expect(errorOf(r)).toMatch(/is the model being compiled: writing there would replace it\. Choose another file name such as .*src_tvm\.pt, or confirm the overwrite \(--force on the command line\)\./);
    expect(r.stderr).not.toMatch(/\[import\]|\[build\]/); // refused before the build started
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(readFileSync(model).equals(before)).toBe(true);
  });

  it('refuses a file the workbench did not write; --force replaces it, and a workbench export is then replaced without asking', async () => {
    const model = join(models, 'mlp.pt');
    const other = join(work, 'notes.pt');
    writeFileSync(other, 'my notes, not a model');
    const refused = await runCli(['compile', model, ...MLP, '-o', other], env);
    expect(refused.code).toBe(1);
    expect(errorOf(refused)).toContain(`${other} already exists and was not written by TorchTVM Workbench; choose another file name, or confirm the overwrite (--force on the command line).`);
    expect(readFileSync(other, 'utf8')).toBe('my notes, not a model');

    const forced = await runCli(['compile', model, ...MLP, '-o', other, '--force', '--json'], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(isWorkbenchExport(other)).toBe(true);
    expect(isWorkbenchExport(model)).toBe(false);

    // Its own export: replaced without --force, even with the record of it gone (the archive says so).
    const fresh = mkdtempSync(join(tmpdir(), 'ttvm-home2-'));
    const again = await runCli(['compile', model, ...MLP, '-o', other], { TORCHTVM_HOME: fresh });
    expect(again.code, again.stderr).toBe(0);
  });

  it('-o onto a folder says it is a folder (not "Free some disk space")', async () => {
    const dir = join(work, 'a-folder');
    mkdirSync(dir, { recursive: true });
    const r = await runCli(['compile', join(models, 'mlp.pt'), ...MLP, '-o', dir], env);
    expect(r.code).toBe(1);
    expect(errorOf(r)).toContain(`The export path ${dir} is a folder; give a file path such as ${join(dir, 'model_tvm.pt')}.`);
    expect(r.stderr).not.toMatch(/disk space/);
  });

  it('--out-dir onto a file says it is a file (not a raw EEXIST)', async () => {
    const file = join(work, 'plain-file');
    writeFileSync(file, 'x');
    const r = await runCli(['compile', join(models, 'mlp.pt'), ...MLP, '--out-dir', file], env);
    expect(r.code).toBe(1);
    expect(errorOf(r)).toContain(`${file} is a file, not a folder; give a folder for the build.`);
    expect(r.stderr).not.toMatch(/EEXIST/);
  });

  it('a missing folder is an error that offers --mkdir; with --mkdir it is created', async () => {
    const target = join(work, 'new', 'deeper', 'm_tvm.pt');
    const r = await runCli(['compile', join(models, 'mlp.pt'), ...MLP, '-o', target], env);
    expect(r.code).toBe(1);
    expect(errorOf(r)).toContain(`The folder ${join(work, 'new', 'deeper')} for the exported model does not exist; create it (--mkdir on the command line, or confirm in the app), or choose another path.`);
    expect(existsSync(join(work, 'new'))).toBe(false);
    const ok = await runCli(['compile', join(models, 'mlp.pt'), ...MLP, '-o', target, '--mkdir'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(statSync(target).isFile()).toBe(true);
  });
});

describe('prepareOutputs (the check every host runs before a build)', () => {
  it('refuses a path under a file, naming it', () => {
    const file = join(work, 'afile');
    writeFileSync(file, 'x');
    expect(() => prepareOutputs({ model: join(models, 'mlp.pt'), export_path: join(file, 'm.pt') })).toThrow(`${file} is a file, not a folder, so the exported model cannot be written there; choose another path.`);
    expect(() => prepareOutputs({ model: join(models, 'mlp.pt'), export_path: join(file, 'a', 'm.pt'), create_parent: true })).toThrow(/is a file, not a folder, so the exported model cannot be written under it/);
  });

  it('a request through the WorkbenchApi (app, server) is refused without overwrite and accepted with it', async () => {
    const wb = createWorkbench({ host: 'test' });
    try {
      const other = join(work, 'unrelated.bin');
      writeFileSync(other, 'keep me');
      const req = { kind: 'compile' as const, model: join(models, 'mlp.pt'), inputs: [{ name: 'x', dims: [2, 16], dtype: 'float32' as const }], export_path: other, measure: false };
      const err = await wb.startJob(req).catch((e) => e as WorkbenchError);
      expect(err).toBeInstanceOf(WorkbenchError);
      expect((err as WorkbenchError).code).toBe('export_exists');
      const missing = await wb.startJob({ ...req, export_path: join(work, 'nope', 'm.pt') }).catch((e) => e as WorkbenchError);
      expect((missing as WorkbenchError).code).toBe('folder_missing');
      // With the confirmation the check passes and the job starts (on a model that does not exist, so
      // that it ends at once in the engine: only the check matters here).
      const { job } = await wb.startJob({ ...req, model: join(work, 'missing.pt'), overwrite: true });
      const outcome = await wb.waitJob({ job });
      expect(outcome.state).toBe('failed');
      expect(outcome.state === 'failed' && outcome.error.message).toMatch(/missing\.pt/);
      expect(readFileSync(other, 'utf8')).toBe('keep me');
    } finally {
      await wb.close();
    }
  });

  it('serialises writers: a second job on the same path, in this process or another, is refused', async () => {
    const target = join(work, 'locked_tvm.pt');
    const release = prepareOutputs({ model: join(models, 'mlp.pt'), export_path: target });
    expect(() => prepareOutputs({ model: join(models, 'mlp.pt'), export_path: target })).toThrow(/Another job is already writing the export .*locked_tvm\.pt; wait for it to finish or choose another path\./);
    release();
    prepareOutputs({ model: join(models, 'mlp.pt'), export_path: target })();

    // Another live process holds it: refused, naming the process; once it is gone (killed, lock left behind) the lock is taken over.
    const holder = spawn(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(join(work, '.locked_tvm.pt.torchtvm-lock'))}, String(process.pid), {flag: 'wx'}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => holder.stdout!.once('data', r));
    expect(() => lockPath(target, 'the export')).toThrow(new RegExp(`Another job \\(process ${holder.pid}\\) is already writing`));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const again = lockPath(target, 'the export');
    again();
    expect(existsSync(join(work, '.locked_tvm.pt.torchtvm-lock'))).toBe(false);
  });
});

afterAll(() => {});
