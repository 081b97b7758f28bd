// The workflow in the browser, against the real engine: open a tiny model → set inputs → compile
// and verify → tune 8 trials (points on the chart) → export (the file loads) → benchmark and tuning
// logs where those runners exist. Screenshots of every view go to test-artifacts/screenshots/.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openModel, openSession, ROOT, type Session, shotPath, TINY_DIMS } from './helpers.js';

const LONG = 8 * 60_000;

describe.skipIf(!hasChromium())('workbench in Chromium (browser mode, real engine)', () => {
  let dir: string;
  let model: string;
  let session: Session;
  let page: Page;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-e2e-' });
    ({ dir, page, pageErrors } = session);
    model = makeTinyModel(dir);
  });

  afterAll(async () => {
    await session?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);

  it('shows the empty Model view with the code-execution notice', async () => {
    expect(await page.getByRole('note').textContent()).toContain('executes code');
    expect(await page.locator('.empty h3').first().textContent()).toBe('Open a TorchScript model to begin');
    await page.screenshot({ path: shotPath('01-model-empty') });
  });

  it('opens the tiny model and shows its inspection', async () => {
    await page.keyboard.press('Control+o');
    // The shortcut focuses the path field on the next frame.
    await page.waitForFunction(() => document.activeElement?.id === 'model-path', null, { timeout: 5_000 });
    await openModel(page, model);
    const text = await page.textContent('[data-testid=inspection]');
    expect(text).toMatch(/aten::linear/);
    expect(text).toMatch(/parameters/);
    await page.screenshot({ path: shotPath('02-model-inspected'), fullPage: true });
  });

  it('validates input specs as they are typed', async () => {
    await nav('inputs');
    const dims = page.getByLabel('input 0 dims');
    await dims.fill('4,0');
    await expect.poll(() => page.locator('[data-testid=input-error]').count()).toBe(1);
    expect(await page.textContent('[data-testid=input-error]')).toMatch(/positive integer/);
    await page.screenshot({ path: shotPath('03-inputs-error') });
    await page.getByLabel('input 0 name').fill('x');
    await dims.fill(TINY_DIMS);
    await page.getByLabel('input 0 dtype').selectOption('float32');
    await expect.poll(() => page.locator('[data-testid=input-error]').count()).toBe(0);
    await page.screenshot({ path: shotPath('04-inputs') });
  });

  it('compiles and verifies against PyTorch', async () => {
    await nav('compile');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[role=progressbar]', { timeout: 60_000 });
    await page.screenshot({ path: shotPath('05-compile-running') });
    await page.waitForSelector('[data-testid=verification-banner], .error-box', { timeout: LONG });
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');
    expect(await page.locator('[data-testid=verification-table] tbody tr').count()).toBeGreaterThan(0);
    await page.screenshot({ path: shotPath('06-compile-verified'), fullPage: true });
  }, LONG);

  it('tunes 8 trials and plots them live', async () => {
    await nav('tune');
    await page.getByLabel('Trial budget').fill('8');
    await page.getByLabel('Tuning work dir').fill(join(dir, 'tuning-a'));
    await page.click('[data-testid=tune-start]');
    await page.waitForSelector('[data-testid=tune-chart], [data-testid=job-tune][data-state=failed]', { timeout: LONG });
    const failed = await page.locator('[data-testid=job-tune][data-state=failed]').count();
    if (failed) throw new Error(`tuning failed: ${await page.textContent('[data-testid=job-tune]')}`);
    await page.screenshot({ path: shotPath('07-tune-running') });
    await page.waitForSelector('[data-testid=job-tune][data-state=succeeded], [data-testid=job-tune][data-state=failed]', { timeout: LONG });
    expect(await page.getAttribute('[data-testid=job-tune]', 'data-state')).toBe('succeeded');
    const points = Number(await page.getAttribute('[data-testid=tune-chart]', 'data-points'));
    expect(points).toBeGreaterThanOrEqual(1);
    expect(await page.locator('[data-testid=tune-chart] .trial-dot').count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('[data-testid=task-table] tbody tr').count()).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: shotPath('08-tune-done'), fullPage: true });
  }, 2 * LONG);

  it('exports one .pt that loads and carries its metadata', async () => {
    const out = join(dir, 'tiny.tvm.pt');
    await nav('export');
    await page.getByLabel('Export path').fill(out);
    await page.keyboard.press('Control+e');
    await page.waitForSelector('[data-testid=export-done], [data-testid=job-compile][data-state=failed]', { timeout: LONG });
    expect(existsSync(out)).toBe(true);
    expect(await page.textContent('[data-testid=python-snippet]')).toContain('torch.jit.load');
    expect(await page.textContent('[data-testid=cpp-snippet]')).toContain('torch::jit::load');
    await page.screenshot({ path: shotPath('09-export'), fullPage: true });
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/torchtvm.js'), 'inspect', out, '--json'], { encoding: 'utf8', env: { ...process.env, TORCHTVM_HOME: join(dir, 'home') } });
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(last.result?.exported, r.stdout + r.stderr).toBeTruthy();
    // and the app shows it too
    await nav('model');
    await page.fill('#model-path', out);
    await page.click('form button[type=submit]');
    await page.waitForSelector('[data-testid=exported-meta]', { timeout: 120_000 });
    await page.screenshot({ path: shotPath('10-model-exported-metadata'), fullPage: true });
    await openModel(page, model);
  }, LONG);

  it('benchmarks the original against the export (if the bench runner is wired)', async (ctx) => {
    await nav('bench');
    await page.getByLabel('Exported model').fill(join(dir, 'tiny.tvm.pt'));
    await page.getByLabel('Iterations').fill('50');
    await page.click('text=Run benchmark');
    await page.waitForSelector('[data-testid=job-bench][data-state=succeeded], [data-testid=job-bench][data-state=failed]', { timeout: LONG });
    await page.screenshot({ path: shotPath('11-bench'), fullPage: true });
    const state = await page.getAttribute('[data-testid=job-bench]', 'data-state');
    const msg = await page.textContent('[data-testid=job-bench]');
    if (state === 'failed' && /cannot run bench jobs/.test(msg ?? '')) {
      console.warn('[e2e] bench runner not wired into `torchtvm serve` yet: benchmark step skipped');
      ctx.skip();
    }
    expect(state, msg ?? '').toBe('succeeded');
    expect(await page.locator('[data-testid=bench-table] tbody tr').count()).toBe(2);
    // The exported file is named as the build it copies (its SHA-256 is the build's).
    expect(await page.textContent('[data-testid=bench-builds]')).toMatch(/tiny\.tvm\.pt: build (un)?tuned · .* · [0-9a-f]{12}/);
  }, LONG);

  it('opens a tuning work dir and compares runs (if the log reader is wired)', async (ctx) => {
    await nav('logs');
    await page.screenshot({ path: shotPath('12-logs-empty') });
    const work = join(dir, 'tuning-a');
    expect(readdirSync(work)).toContain('database_tuning_record.json');
    await page.getByLabel('Tuning work dir').fill(work);
    await page.click('text=Open work dir');
    await page.waitForSelector('[data-testid=logs-chart], .error-box', { timeout: 60_000 });
    await page.screenshot({ path: shotPath('13-logs'), fullPage: true });
    if (await page.locator('.error-box').count()) {
      const msg = await page.textContent('.error-box');
      if (/not available in this build/.test(msg ?? '')) {
        console.warn('[e2e] tuning-log reader not wired into `torchtvm serve` yet: logs step skipped');
        ctx.skip();
      }
      throw new Error(msg ?? 'error');
    }
    expect(await page.locator('[data-testid=logs-chart] .recharts-line').count()).toBeGreaterThanOrEqual(1);
  });

  it('switches to the dark theme', async () => {
    await nav('tune');
    await page.click('[data-testid=theme-toggle]'); // system → light
    await page.click('[data-testid=theme-toggle]'); // light → dark
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await page.screenshot({ path: shotPath('14-tune-dark'), fullPage: true });
    await nav('compile');
    await page.screenshot({ path: shotPath('15-compile-dark'), fullPage: true });
    await page.click('[data-testid=theme-toggle]'); // back to system
  });

  it('logged no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
