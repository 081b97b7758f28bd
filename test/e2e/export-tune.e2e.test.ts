// The Export and Tune flows' rough edges, in Chromium against the real engine (tiny model):
// - export goes to the model's project folder by default (the workbench makes its exports/ folder),
//   says tuned or untuned and with which placement, has copy buttons, and its Python snippet runs
//   from a fresh shell (no PYTHONPATH, another cwd);
// - a missing parent folder is refused in the app's words with a "Create folder and export" button;
// - a tune shows elapsed time and an ETA, "Cancelling…" at once, and a resume reuses the imported
//   model kept in the work dir (its engine log, in a collapsible panel, says so).
// Screenshots of the refusal and of the tune mid-run, light and dark, 1024×700 and 1920×1080.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openModel, openSession, PYTHON, ROOT, type Session, shotPath, TINY_DIMS } from './helpers.js';

const LONG = 8 * 60_000;
const SIZES = [[1024, 700], [1920, 1080]] as const;

describe.skipIf(!hasChromium())('export refusals and tune feedback (browser mode, real engine)', () => {
  let dir: string;
  let model: string;
  let session: Session;
  let page: Page;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-export-', query: 'testHooks=1', consoleErrors: false });
    ({ dir, page, pageErrors } = session);
    model = makeTinyModel(dir);
  });

  afterAll(async () => {
    await session?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const theme = (t: string) => page.evaluate((x) => document.documentElement.setAttribute('data-theme', x), t);
  /** Screenshots of the whole window in both themes at both sizes, then back to 1280×900 light. */
  async function shots(name: string) {
    for (const [w, h] of SIZES) {
      await page.setViewportSize({ width: w, height: h });
      for (const t of ['light', 'dark']) {
        await theme(t);
        await page.waitForTimeout(250);
        await page.screenshot({ path: shotPath(`${name}-${t}-${w}x${h}`) });
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    await theme('light');
  }

  it('exports to the project folder by default, labelled, with copy buttons and a snippet that runs from a fresh shell', async () => {
    await openModel(page, model);
    await nav('inputs');
    await page.getByLabel('input 0 dims').fill(TINY_DIMS);
    await nav('export');
    const path = await page.inputValue('[aria-label="Export path"]');
    expect(path).toMatch(/projects\/tiny-[0-9a-f]+\/exports\/tiny\.tvm\.pt$/);
    expect(path.startsWith(join(dir, 'home'))).toBe(true);
    expect(path.startsWith(ROOT)).toBe(false);
    expect(await page.textContent('[data-testid=export-kind]')).toMatch(/^Untuned build, placement auto/);
    await page.click('[data-testid=export-button]');
    await page.waitForSelector('[data-testid=export-done], [data-testid=job-compile][data-state=failed]', { timeout: LONG });
    expect(existsSync(path)).toBe(true);
    expect(await page.textContent('[data-testid=export-build]')).toMatch(/^Build: untuned · \d{4}-\d\d-\d\d \d\d:\d\d · [0-9a-f]{12} \(untuned; placement auto/);
    expect(await page.locator('button.copy').count()).toBeGreaterThanOrEqual(3); // the path and both snippets
    const py = (await page.textContent('[data-testid=python-snippet]'))!;
    const cpp = (await page.textContent('[data-testid=cpp-snippet]'))!;
    expect(py).toContain('libtorchtvm_runtime.so');
    expect(cpp).toMatch(/dlopen\(".*libtorchtvm_runtime\.so"/);
    // A fresh shell: no PYTHONPATH, another working directory, only a Python that has torch.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir() };
    const r = spawnSync(PYTHON, ['-c', py], { cwd: tmpdir(), env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('torch.Size([4, 10])');
  }, LONG);

  it('refuses a missing folder in plain words, and creates it when asked', async () => {
    const out = join(dir, 'new', 'deeper', 'tiny.tvm.pt');
    await page.getByLabel('Export path').fill(out);
    await page.click('[data-testid=export-button]');
    const refusal = page.locator('[data-testid=export-refusal][data-code=folder_missing]');
    await refusal.waitFor({ timeout: 60_000 });
    const text = (await refusal.textContent())!;
    expect(text).toContain(join(dir, 'new', 'deeper'));
    expect(text).toMatch(/does not exist/);
    expect(text).not.toMatch(/--mkdir|command line|folder_missing/);
    expect(existsSync(join(dir, 'new'))).toBe(false);
    await shots('export-01-missing-folder');
    // Editing the path clears the refusal (it was about the old path) ...
    await page.getByLabel('Export path').fill(out + 'x');
    expect(await refusal.count()).toBe(0);
    await page.getByLabel('Export path').fill(out);
    await page.click('[data-testid=export-button]');
    await refusal.waitFor({ timeout: 60_000 });
    // ... and the button retries with the folder created.
    await page.click('[data-testid=export-create-folder]');
    await page.waitForSelector('[data-testid=export-done]', { timeout: LONG });
    expect(existsSync(out)).toBe(true);
    expect(await page.textContent('[data-testid=export-done]')).toContain(out);
    await page.screenshot({ path: shotPath('export-02-created-and-exported'), fullPage: true });
  }, LONG);

  it('says a build it did not export was not written, why, and exports it only when asked', async () => {
    // A build for AMD Excavator (FMA4, XOP): never run here, so not verified, so not exported.
    const flags = spawnSync('grep', ['-m1', '^flags', '/proc/cpuinfo'], { encoding: 'utf8' }).stdout;
    if (/\bfma4\b/.test(flags)) return; // a Bulldozer runs it: nothing to refuse here
    const out = join(dir, 'bdver4.tvm.pt');
    await nav('compile');
    await page.getByLabel('Target').fill('{"kind": "llvm", "mcpu": "bdver4"}');
    await nav('export');
    await page.getByLabel('Export path').fill(out);
    await page.click('[data-testid=export-button]');
    const skipped = page.locator('[data-testid=export-skipped]');
    await skipped.waitFor({ timeout: LONG });
    const text = (await skipped.textContent())!;
    expect(text).toMatch(/Nothing was written\. Not exported: .*fma4.*which this CPU lacks/);
    expect(text).not.toMatch(/pass --export-unverified|export_unverified/);
    expect(await page.locator('[data-testid=export-done]').count()).toBe(0);
    expect(existsSync(out)).toBe(false);
    await shots('export-03-not-exported');
    await page.click('[data-testid=export-anyway]');
    await page.waitForSelector('[data-testid=export-done]', { timeout: LONG });
    expect(existsSync(out)).toBe(true);
    await nav('compile');
    await page.getByLabel('Target').fill('llvm');
  }, LONG);

  it('shows elapsed time and an ETA while tuning, and "Cancelling…" at once', async () => {
    await nav('tune');
    await page.getByLabel('Trial budget').fill('150');
    await page.getByLabel('Trials per round').fill('2');
    await page.click('[data-testid=tune-start]');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0) >= 6, null, { timeout: LONG });
    await expect.poll(() => page.textContent('[data-testid=elapsed]'), { timeout: 30_000 }).toMatch(/\d+ (s|min).* elapsed · about .* left/);
    await shots('tune-01-running');
    await page.click('[data-testid=tune-cancel]');
    expect(await page.textContent('[data-testid=tune-cancel]')).toBe('Cancelling…');
    expect(await page.textContent('.job-status .stage')).toBe('Cancelling…');
    await page.waitForSelector('[data-testid=job-tune][data-state=cancelled]', { timeout: LONG });
  }, LONG);

  it('resumes without importing again; the engine log says so in a collapsible panel', async () => {
    // A cancel on a busy machine may end the engine (after its grace period), and a fresh engine
    // re-reads its source: so the first resume runs to its budget, and the second one, in the same
    // engine, must reuse the import the first one kept.
    const resume = async () => {
      const n = Number(await page.textContent('[data-testid=trial-count]'));
      await page.getByLabel('Trial budget').fill(String(n + 2));
      await page.getByRole('button', { name: 'Resume' }).click();
      await page.waitForSelector('[data-testid=job-tune][data-state=running], [data-testid=tune-cancel]:not([disabled])', { timeout: 60_000 });
      await page.waitForSelector('[data-testid=job-tune][data-state=succeeded]', { timeout: LONG });
    };
    await resume();
    await resume();
    const log = page.locator('[data-testid=job-log]');
    expect(await log.evaluate((el) => el.tagName)).toBe('DETAILS');
    expect(await log.getAttribute('open')).toBeNull(); // folded until asked for
    await log.locator('summary').click();
    const text = (await log.textContent())!;
    expect(text).toMatch(/Resuming from \d+ record/);
    expect(text).toMatch(/Reused the imported model and its \d+ tuning tasks/);
    await page.screenshot({ path: shotPath('tune-02-resumed-log'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 2 * LONG);

  it('exports the tuned build the Tune page shows, byte for byte, without building again', async () => {
    const tuned = (await page.textContent('[data-testid=result-build]'))!;
    const id = /· ([0-9a-f]{12})/.exec(tuned)![1];
    await nav('export');
    const choice = page.locator('[data-testid=export-choice-tuned]');
    expect(await choice.textContent()).toContain(id);
    expect(await choice.locator('input').isChecked()).toBe(true); // the newest build for these inputs
    expect(await page.textContent('[data-testid=export-kind]')).toContain(`Exports build ${id} as it was verified and measured`);
    const out = join(dir, 'tuned.tvm.pt');
    await page.getByLabel('Export path').fill(out);
    const t0 = Date.now();
    await page.click('[data-testid=export-button]');
    await page.waitForSelector('[data-testid=export-done]', { timeout: 120_000 });
    const took = Date.now() - t0;
    expect(await page.textContent('[data-testid=export-build]')).toContain(id);
    // The file is the build's package: its SHA-256 starts with the build's id.
    const sum = createHash('sha256').update(readFileSync(out)).digest('hex');
    expect(sum.slice(0, 12)).toBe(id);
    // The export job ran no stage of a build: its recorded events show only the copy.
    const runs = readdirSync(join(dir, 'home'), { recursive: true, encoding: 'utf8' }).filter((f) => /runs\/export-[^/]+\/events\.jsonl$/.test(f));
    const newest = runs.map((f) => join(dir, 'home', f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
    const stages = readFileSync(newest, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; data: { stage?: string } }).filter((e) => e.event === 'job.progress').map((e) => e.data.stage);
    expect(stages).toEqual(['export']);
    expect(took).toBeLessThan(60_000);
    await shots('export-04-tuned-build');
    await nav('graph');
    expect(await page.textContent('[data-testid=graph-build]')).toContain(id);
    await page.screenshot({ path: shotPath('export-05-graph-of-the-build') });
  }, LONG);
});
