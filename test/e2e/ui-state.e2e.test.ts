// The input parser, per-model status, the graph view with placement colours, and the tune chart
// in both themes and two window sizes: in Chromium against the real engine (tiny models; the
// bundled ResNet-18 is only inspected, for its graph and its pre-filled input).
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openSession, type Session, shotPath } from './helpers.js';

const LONG = 8 * 60_000;

describe.skipIf(!hasChromium())('inputs, per-model status, graph view, charts (browser mode, real engine)', () => {
  let dir: string;
  let modelA: string;
  let modelB: string;
  let session: Session;
  let page: Page;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-ui-', query: 'testHooks=1', consoleErrors: false });
    ({ dir, page, pageErrors } = session);
    modelA = makeTinyModel(dir);
    mkdirSync(join(dir, 'other'));
    modelB = join(dir, 'other', 'tiny.pt');
    copyFileSync(modelA, modelB);
  });

  afterAll(async () => {
    await session?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const open = async (path: string) => {
    await nav('model');
    await page.fill('#model-path', path);
    await page.click('form button[type=submit]');
  };
  const errors = () => page.locator('[data-testid=input-error]');

  it('parses input specs strictly, naming the field, with a chip of the parsed shape', async () => {
    await open(modelA);
    await page.waitForSelector('[data-testid=inspection]', { timeout: 120_000 });
    await nav('inputs');
    // Nothing typed yet: no red row.
    expect(await errors().count()).toBe(0);
    expect(await page.locator('input.invalid').count()).toBe(0);
    const dims = page.getByLabel('input 0 dims');
    await dims.fill('1 3 32 32');
    await expect.poll(() => errors().count()).toBe(1);
    expect(await errors().first().getAttribute('data-field')).toBe('dims');
    expect(await errors().first().textContent()).toMatch(/dims: .*separate dimensions with commas, e\.g\. 1,3,32,32/);
    expect(await page.locator('input.invalid').count()).toBe(1);
    await dims.fill('1,3,abc');
    await expect.poll(() => errors().first().textContent()).toMatch(/"abc" is not a number; for a symbolic size give its range, e\.g\. abc=1\.\.64/);
    await page.screenshot({ path: shotPath('ui-01-inputs-error') });
    await dims.fill('torch.Size([4, 32])');
    await expect.poll(() => errors().count()).toBe(0);
    expect(await page.textContent('[data-testid=spec-chip]')).toBe('x: [4, 32] float32');
    await dims.fill('[4, 32]');
    await expect.poll(() => page.textContent('[data-testid=spec-chip]')).toBe('x: [4, 32] float32');
    await dims.fill('batch=1..8,32');
    await expect.poll(() => page.textContent('[data-testid=spec-chip]')).toBe('x: [batch=1..8, 32] float32 · symbolic');
    await dims.fill('4,32');
    await page.screenshot({ path: shotPath('ui-02-inputs-chip') });
  });

  it('compiles, and the graph view colours each op by where it runs', async () => {
    await nav('compile');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[data-testid=verification-banner], .error-box', { timeout: LONG });
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');
    const speed = await page.textContent('[data-testid=speedup]');
    expect(speed).toMatch(/^(\d+(\.\d+)?× (faster|slower)|same speed)$/);
    await nav('graph');
    await page.waitForSelector('[data-testid=graph-view] .graph-node', { timeout: 30_000 });
    expect(Number(await page.getAttribute('[data-testid=graph-view]', 'data-placed'))).toBeGreaterThan(0);
    const linears = page.locator('[data-testid=graph-view] .graph-node[data-op="aten::linear"]');
    expect(await linears.count()).toBe(2);
    for (const w of await linears.evaluateAll((els) => els.map((e) => e.getAttribute('data-where')))) expect(['library', 'tvm']).toContain(w);
    expect(await page.textContent('[data-testid=graph-legend]')).toMatch(/TVM kernel/);
    await page.getByLabel('Search the graph').fill('linear');
    expect(await page.textContent('[data-testid=graph-matches]')).toBe('2 matches');
    await page.getByLabel('Search the graph').press('Enter');
    await page.waitForSelector('[data-testid=graph-selected]');
    await page.screenshot({ path: shotPath('ui-03-graph-tiny-placement'), fullPage: true });
  }, LONG);

  it('keeps the current model when an open fails', async () => {
    await open(join(dir, 'missing.pt'));
    await page.waitForSelector('[data-testid=job-inspect][data-state=failed]', { timeout: 60_000 });
    expect(await page.textContent('[data-testid=still-showing]')).toContain(modelA);
    expect(await page.textContent('.model-bar')).toContain(modelA);
    await nav('compile');
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');
  });

  it('shows nothing stale after switching models, and restores a model\'s own results when it is reopened', async () => {
    await open(modelB);
    // While B opens the bar reads "Model: A · opening B…" and A's inspection stays: wait for B itself.
    await expect.poll(() => page.getAttribute('.model-bar', 'title'), { timeout: 120_000 }).toBe(modelB);
    await page.waitForSelector('[data-testid=inspection]', { timeout: 120_000 });
    for (const v of ['compile', 'tune', 'bench', 'export']) expect(await page.locator(`nav [data-view=${v}] .dot`).count()).toBe(0);
    await nav('compile');
    expect(await page.locator('[data-testid=verification-banner]').count()).toBe(0);
    expect(await page.locator('.job-status .ok').count()).toBe(0);
    await nav('tune');
    const wd = await page.textContent('[data-testid=work-dir]');
    expect(wd).toMatch(/projects\/tiny-[0-9a-f]+\/tuning/);
    await nav('export');
    expect(await page.locator('[data-testid=export-done]').count()).toBe(0);
    expect(await page.inputValue('[aria-label="Export path"]')).toMatch(/projects\/tiny-[0-9a-f]+\/exports\/tiny\.tvm\.pt$/);
    await page.screenshot({ path: shotPath('ui-04-model-b-clean') });
    // Back to A: its compile comes back from its runs, with its status.
    await open(modelA);
    await expect.poll(() => page.getAttribute('.model-bar', 'title'), { timeout: 120_000 }).toBe(modelA);
    await page.waitForSelector('[data-testid=inspection]', { timeout: 120_000 });
    await nav('compile');
    await page.waitForSelector('[data-testid=verification-banner]', { timeout: 30_000 });
    expect(await page.locator('nav [data-view=compile] .dot.succeeded').count()).toBe(1);
    await nav('tune');
    expect(await page.textContent('[data-testid=work-dir]')).not.toBe(wd);
  }, LONG);

  it('keeps the last good build when a compile fails', async () => {
    await nav('compile');
    await page.getByLabel('Target').fill('no-such-target');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[data-testid=job-compile][data-state=failed]', { timeout: LONG });
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');
    expect(await page.textContent('[data-testid=previous-result]')).toMatch(/last successful build/);
    await page.screenshot({ path: shotPath('ui-05-failed-compile-keeps-result'), fullPage: true });
    await page.getByLabel('Target').fill('llvm');
  }, LONG);

  it('draws the tune chart readably in both themes at 1024×700 and 1920×1080', async () => {
    await page.evaluate(() => (window as any).__torchtvmTest.streamTrials(400, 20));
    await page.waitForSelector('[data-testid=tune-chart][data-points="400"]', { timeout: 10_000 });
    expect(await page.getAttribute('[data-testid=tune-chart]', 'data-scale')).toBe('log');
    // Dots coloured by task: four tasks, four fills, and a legend naming them.
    const fills = await page.locator('[data-testid=tune-chart] .trial-dot').evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute('fill')))]);
    expect(fills.length).toBe(4);
    expect(await page.textContent('[data-testid=chart-legend]')).toContain('fused_conv2d_3');
    // Integer trial ticks, time ticks with units.
    const ticks = await page.locator('[data-testid=tune-chart] .recharts-xAxis .recharts-cartesian-axis-tick-value').allTextContents();
    for (const t of ticks) expect(t).toMatch(/^\d+$/);
    const yTicks = await page.locator('[data-testid=tune-chart] .recharts-yAxis .recharts-cartesian-axis-tick-value').allTextContents();
    for (const t of yTicks) expect(t).toMatch(/(ms|µs|ns|s)$|^0$/);
    // The tooltip names the task.
    const dot = page.locator('[data-testid=tune-chart] .trial-dot').nth(50);
    await dot.hover({ force: true });
    await expect.poll(() => page.locator('[data-testid=trial-tooltip]').textContent().catch(() => '')).toMatch(/fused_conv2d_\d/);
    for (const [w, h] of [[1024, 700], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      for (const theme of ['light', 'dark']) {
        await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        await page.waitForTimeout(300);
        await page.locator('[data-testid=tune-chart]').screenshot({ path: shotPath(`ui-06-tune-chart-${theme}-${w}x${h}`) });
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.evaluate(() => document.documentElement.setAttribute('data-theme', 'light'));
  });

  it('draws the bundled ResNet-18 graph and pre-fills its input', async (ctx) => {
    await nav('model');
    const example = await page.locator('text=Open bundled example (ResNet-18)').count();
    if (!example) ctx.skip();
    await page.click('text=Open bundled example (ResNet-18)');
    // The first <code> of the model bar is the open model (a second one names a model still opening).
    await page.waitForFunction(() => document.querySelector('.model-bar code')?.textContent?.endsWith('resnet18.pt'), null, { timeout: 120_000 });
    await nav('inputs');
    expect(await page.inputValue('[aria-label="input 0 dims"]')).toBe('1,3,224,224');
    await nav('graph');
    await page.waitForSelector('[data-testid=graph-view] .graph-node', { timeout: 30_000 });
    expect(await page.locator('[data-testid=graph-view] .graph-node[data-op="aten::_convolution"]').count()).toBe(20);
    await page.getByLabel('Search the graph').fill('add');
    await page.screenshot({ path: shotPath('ui-07-graph-resnet18') });
    await page.evaluate(() => document.documentElement.setAttribute('data-theme', 'dark'));
    await page.screenshot({ path: shotPath('ui-08-graph-resnet18-dark') });
    await page.evaluate(() => document.documentElement.setAttribute('data-theme', 'light'));
    expect(pageErrors).toEqual([]);
  }, LONG);
});
