// Durable runs in the browser, against the real engine: a tune keeps running on the server while
// the page loses its WebSocket (it reconnects by itself and says so) and while the page reloads
// (the model, the inputs and the chart come back from the run's recorded events); Cancel then
// works on the reattached job, and the model's runs list shows it.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openModel, openSession, type Session, shotPath, TINY_DIMS } from './helpers.js';

const LONG = 8 * 60_000;

describe.skipIf(!hasChromium())('runs survive a reconnect and a reload (browser mode, real engine)', () => {
  let dir: string;
  let model: string;
  let session: Session;
  let page: Page;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-runs-', query: 'testHooks=1', consoleErrors: false });
    ({ dir, page, pageErrors } = session);
    model = makeTinyModel(dir);
  });

  afterAll(async () => {
    await session?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const points = async () => Number((await page.getAttribute('[data-testid=tune-chart]', 'data-points')) ?? 0);

  it('starts a long tune and streams trials', async () => {
    await openModel(page, model);
    await nav('inputs');
    await page.getByLabel('input 0 dims').fill(TINY_DIMS);
    await nav('tune');
    // The default work dir is this model's own, and it is shown.
    expect(await page.textContent('[data-testid=work-dir]')).toMatch(/projects\/tiny-[0-9a-f]+\/tuning/);
    await page.getByLabel('Trial budget').fill('2000');
    await page.getByLabel('Trials per round').fill('2');
    await page.click('[data-testid=tune-start]');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0) >= 2, null, { timeout: LONG });
  }, LONG);

  it('reconnects by itself after the WebSocket drops, says so, and keeps streaming', async () => {
    const before = await points();
    expect(await page.evaluate(() => (window as any).__torchtvmTest.dropConnection())).toBe(1);
    await page.waitForSelector('[data-testid=connection-banner][data-status=reconnected]', { timeout: 30_000 });
    await page.screenshot({ path: shotPath('runs-01-reconnected') });
    expect(await page.getAttribute('[data-testid=job-tune]', 'data-state').catch(() => null)).not.toBe('failed');
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0) > n, before, { timeout: LONG });
  }, LONG);

  it('reattaches after a reload: the chart refills from the recorded events and Cancel works', async () => {
    const before = await points();
    await page.reload();
    // The session brings the model back, then the running tune is reattached.
    await page.waitForSelector('[data-testid=tune-chart]', { timeout: 120_000 });
    expect(await page.textContent('.model-bar')).toContain(model);
    await page.waitForFunction((n) => Number(document.querySelector('[data-testid=tune-chart]')?.getAttribute('data-points') ?? 0) >= n, before, { timeout: 60_000 });
    // The replayed trials are drawn once each: trial numbers in the store are unique.
    const unique = await page.evaluate(() => {
      const el = document.querySelector('[data-testid=trial-count]');
      return Number(el?.textContent ?? 0);
    });
    expect(unique).toBeGreaterThanOrEqual(before);
    expect(await page.getByLabel('input 0 dims').count()).toBe(0); // we are on the Tune page, restored
    expect(await page.isEnabled('[data-testid=tune-cancel]')).toBe(true);
    await page.screenshot({ path: shotPath('runs-02-reattached-tune') });
    await page.click('[data-testid=tune-cancel]');
    // "Cancelling…" at once, before the engine confirms.
    expect(await page.textContent('[data-testid=tune-cancel]')).toBe('Cancelling…');
    await page.waitForSelector('[data-testid=job-tune][data-state=cancelled]', { timeout: LONG });
    expect(await points()).toBeGreaterThanOrEqual(before);
  }, LONG);

  it('lists the model\'s runs after another reload, the tune marked cancelled', async () => {
    await page.reload();
    await page.waitForSelector('[data-testid=job-tune][data-state=cancelled]', { timeout: 120_000 });
    await nav('model');
    await page.waitForSelector('[data-testid=runs-list] tr[data-state=cancelled]', { timeout: 60_000 });
    const rows = await page.locator('[data-testid=runs-list] tbody tr').allTextContents();
    expect(rows[0]).toMatch(/^tune\s*cancelled/);
    await page.screenshot({ path: shotPath('runs-03-runs-list-after-reload'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, LONG);
});
