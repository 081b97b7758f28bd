// Issue 22: the engine serves several jobs at once. In Chromium against the real engine: a tune runs
// on model A in one tab; opening model B (an inspect job) in a second tab meanwhile finishes in
// seconds on an engine of its own instead of waiting behind the tune, and A's tune runs on. The
// measured time is kept in test-artifacts/inspect-during-tune-e2e.json.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openSession, pageUrl, ROOT, type Session, shotPath, TINY_DIMS } from './helpers.js';

const LONG = 8 * 60_000;

describe.skipIf(!hasChromium())('opening a second model while a tune runs (browser mode, real engine)', () => {
  let modelA: string;
  let modelB: string;
  let session: Session;
  let page: Page;

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-pool-', query: 'testHooks=1', consoleErrors: false });
    page = session.page;
    modelA = makeTinyModel(session.dir);
    mkdirSync(join(session.dir, 'other'));
    modelB = join(session.dir, 'other', 'tiny.pt');
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
    await expect.poll(() => page.getAttribute('.model-bar', 'title'), { timeout: 120_000 }).toBe(path);
    await page.waitForSelector('[data-testid=inspection]', { timeout: 120_000 });
  };
  const points = () => page.evaluate(() => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0));

  it('inspects model B in seconds while model A tunes, and A\'s tune runs on', async () => {
    await open(modelA);
    await nav('inputs');
    await page.getByLabel('input 0 dims').fill(TINY_DIMS);
    await nav('tune');
    await page.getByLabel('Trial budget').fill('5000');
    await page.getByLabel('Trials per round').fill('2');
    await page.click('[data-testid=tune-start]');
    // The tune is measuring: its engine is busy for the rest of this test.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0) >= 1, null, { timeout: LONG });

    // Model B in a second tab of the same server (the first keeps A's Tune page, live).
    const other = await session.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await other.goto(pageUrl(session.server, 'testHooks=1'));
    await other.click('nav [data-view="model"]');
    await other.fill('#model-path', modelB);
    const t0 = Date.now();
    await other.click('form button[type=submit]');
    await expect.poll(() => other.getAttribute('.model-bar', 'title'), { timeout: 120_000 }).toBe(modelB);
    await other.waitForSelector('[data-testid=inspection]', { timeout: 120_000 });
    const inspectS = (Date.now() - t0) / 1000;
    await other.screenshot({ path: shotPath('pool-01-model-b-during-tune') });
    // (While a tune runs its page shows its own status line, with Cancel enabled.)
    const tuneRunning = await page.isEnabled('[data-testid=tune-cancel]');
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    writeFileSync(
      join(ROOT, 'test-artifacts/inspect-during-tune-e2e.json'),
      JSON.stringify({ test: 'test/e2e/inspect-during-tune.e2e.test.ts', what: "Chromium, browser mode: open model B (Open -> its inspection shown) in a second tab while model A tunes; includes starting a second engine", inspect_s: Math.round(inspectS * 100) / 100, tune_running_then: tuneRunning, cpus: cpus().length, date: new Date().toISOString() }, null, 2) + '\n',
    );
    expect(inspectS).toBeLessThan(30);
    await other.close();

    // A's tune ran on meanwhile, and still gains trials.
    expect(tuneRunning).toBe(true);
    const before = await points();
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0) > n, before, { timeout: LONG });
    await page.screenshot({ path: shotPath('pool-02-tune-runs-on') });

    await page.click('[data-testid=tune-cancel]');
    await page.waitForSelector('[data-testid=job-tune][data-state=cancelled]', { timeout: LONG });
  }, LONG);
});
