// A build is what gets exported (issue: "the exported file is not the build that was verified and
// measured"): `torchtvm compile --trials` writes a tuned build; `torchtvm export BUILD_DIR` copies
// its package byte for byte. The export runs no stage of a build (no load, import, placement,
// build, verification or measurement), the exported library's SHA-256 is the build's, and a
// package changed after the build is refused. Real engine, real TVM, real CLI.
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { paths } from '../../app/core/paths.js';
import { runCli, tmpHome } from './helpers.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
interface Build { id: string; sha256: string; library_sha256: string; dir: string; tuned: boolean }

let dir: string;
let home: string;
let build: Build;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ttvm-export-build-'));
  home = tmpHome();
  const r = spawnSync(paths.python, [join(paths.root, 'test/fixtures/make_tune_models.py'), dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making models failed: ${r.stderr}`);
  const tuned = await runCli(['compile', join(dir, 'two_op.pt'), '--input', 'x:4,32:float32', '--trials', '2', '--work-dir', join(dir, 'wd'), '--out-dir', join(dir, 'build'), '--json'], { TORCHTVM_HOME: home });
  if (tuned.code !== 0) throw new Error(`tune failed: ${tuned.stderr}`);
  build = (tuned.lines.at(-1) as { result: { build: Build } }).result.build;
}, 900_000);

describe('torchtvm export BUILD_DIR', () => {
  it('copies the tuned build as it was verified and measured, running no stage of a build', async () => {
    expect(build).toMatchObject({ tuned: true, dir: join(dir, 'build') });
    expect(build.sha256).toBe(sha256(join(dir, 'build', 'model.pt')));
    expect(build.library_sha256).toBe(sha256(join(dir, 'build', 'model.so')));
    const out = join(dir, 'exported.pt');
    const run = await runCli(['export', join(dir, 'build'), '-o', out, '--json'], { TORCHTVM_HOME: home });
    expect(run.code, run.stderr).toBe(0);
    const stages = run.lines.filter((l) => l.event === 'job.progress').map((l) => (l.data as { stage: string }).stage);
    expect(stages).toEqual(['export']);
    const result = (run.lines.at(-1) as { result: { build: Build; files: { exported: string }; verification: { ok: boolean }; tuning?: unknown } }).result;
    expect(result.files.exported).toBe(out);
    expect(result.build.sha256).toBe(build.sha256);
    expect(result.verification.ok).toBe(true);
    expect(result.tuning).toBeTruthy(); // the build's own result: what was tuned, verified and measured
    expect(sha256(out)).toBe(build.sha256);
    // The exported file's own metadata names the library the build made.
    const shown = await runCli(['inspect', out, '--json'], { TORCHTVM_HOME: home });
    expect(shown.code, shown.stderr).toBe(0);
    const exported = (shown.lines.at(-1) as { result: { exported: { library_sha256: string } } }).result.exported;
    expect(exported.library_sha256).toBe(build.library_sha256);
  }, 300_000);

  it('refuses a package changed after the build, and a folder that is not a build', async () => {
    appendFileSync(join(dir, 'build', 'model.pt'), 'x');
    const changed = await runCli(['export', join(dir, 'build'), '-o', join(dir, 'changed.pt'), '--json'], { TORCHTVM_HOME: home });
    expect(changed.code).toBe(1);
    expect(changed.stdout + changed.stderr).toMatch(/build_changed|changed after the build/);
    const none = await runCli(['export', dir, '-o', join(dir, 'none.pt')], { TORCHTVM_HOME: home });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/is not a build folder: it holds no build\.json/);
  }, 300_000);
});
