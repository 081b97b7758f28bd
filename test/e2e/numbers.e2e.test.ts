// One tuned run, its numbers on every page (issue 22, items 2, 3 and 7): the Tune page, the Tuning
// logs page and `torchtvm log` show the same trial count, first and best estimate and measured
// latency for the same work dir; the estimate is labelled as one; the Benchmark page states its
// ratio the CLI's way. Screenshots of the Tune, Tuning logs and Benchmark pages in both themes, at
// 1280 and 1024 px, go to test-artifacts/screenshots/numbers-*.png.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TuningLogSchema } from '../../app/contract/results.js';
import { latestRun, tuneFigures } from '../../app/contract/tune-record.js';
import { hasChromium, makeTinyModel, openModel, openSession, ROOT, type Session, setInput, shotPath, TINY_DIMS } from './helpers.js';

const LONG = 10 * 60_000;

describe.skipIf(!hasChromium())('one tuned run, the same numbers on every page', () => {
  let dir: string;
  let model: string;
  let session: Session;
  let page: Page;
  let pageErrors: string[] = [];
  const wd = () => join(dir, 'wd');
  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const text = async (sel: string) => ((await page.textContent(sel)) ?? '').trim();
  const shots = async (name: string) => {
    for (const theme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: theme });
      for (const width of [1280, 1024]) {
        await page.setViewportSize({ width, height: 900 });
        // The page scrolls inside <main>: one screenshot per screenful, top to bottom.
        const height = await page.locator('main').evaluate((el) => el.scrollHeight);
        for (let y = 0, k = 0; y < height; y += 800, k++) {
          await page.locator('main').evaluate((el, top) => el.scrollTo(0, top), y);
          await page.screenshot({ path: shotPath(`numbers-${name}-${theme}-${width}${k ? `-${k + 1}` : ''}`) });
        }
        await page.locator('main').evaluate((el) => el.scrollTo(0, 0));
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
  };

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-e2e-numbers-' });
    ({ dir, page, pageErrors } = session);
    model = makeTinyModel(dir);
    await openModel(page, model);
    await nav('inputs');
    await setInput(page, 'x', TINY_DIMS, 'float32');
  }, LONG);

  afterAll(async () => {
    await session?.close();
  });

  let tune: { trials: string; first: string; best: string; measured: string };

  it('tunes once: the Tune page shows the run record, the estimate labelled as an estimate', async () => {
    await nav('tune');
    await page.getByLabel('Trial budget').fill('6');
    await page.getByLabel('Trials per round').fill('4'); // batches of 4 against 6: the budget is exact
    await page.getByLabel('Tuning work dir').fill(wd());
    await page.click('[data-testid=tune-start]');
    await page.waitForSelector('[data-testid=job-tune][data-state=succeeded], [data-testid=job-tune][data-state=failed]', { timeout: LONG });
    expect(await page.getAttribute('[data-testid=job-tune]', 'data-state'), await text('[data-testid=job-tune]')).toBe('succeeded');
    await page.waitForSelector('[data-testid=tune-measured]', { timeout: 60_000 });
    tune = { trials: await text('[data-testid=trial-count]'), first: await text('[data-testid=tune-first-estimate]'), best: await text('[data-testid=tune-estimate]'), measured: await text('[data-testid=tune-measured]') };
    expect(tune.trials).toBe('6');
    expect(await page.getAttribute('[data-testid=trial-count]', 'data-budget')).toBe('6');
    expect(await text('.stats')).toMatch(/estimated end-to-end \(sum of kernels, an estimate\)/);
    // The shares of the tasks table are of the headline's estimate.
    expect(await text('[data-testid=task-table-total]')).toContain(`Shares are of the estimate, ${tune.best}`);
    // The ratio is bold only when the measurement supports it; otherwise a warning says why.
    const verdict = await page.getAttribute('[data-testid=speedup]', 'data-verdict');
    if (verdict) expect(await page.locator('[data-testid=ratio-warning]').count()).toBe(1);
    await shots('tune');
  }, LONG);

  it('the log reader shows the same figures, in the app and in the CLI', async () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/torchtvm.js'), 'log', wd(), '--json'], { encoding: 'utf8', env: { ...process.env, TORCHTVM_HOME: join(dir, 'home') } });
    expect(r.status, r.stderr).toBe(0);
    const log = TuningLogSchema.parse(JSON.parse(r.stdout.trim().split('\n').pop()!).result);
    const f = tuneFigures(latestRun(log)!);
    expect([String(latestRun(log)!.total), f.first, f.best, f.measured]).toEqual([tune.trials, tune.first, tune.best, tune.measured]);

    await nav('logs');
    await page.getByLabel('Tuning work dir').fill(wd());
    await page.click('text=Open work dir');
    await page.waitForSelector('[data-testid=log-runs]', { timeout: 60_000 });
    expect(await text('[data-testid=log-estimate]')).toBe(tune.best);
    const cells = await page.locator('[data-testid=log-runs] tbody tr').last().locator('td').allTextContents();
    // run, state, trials, this run, first estimate, estimate, measured
    expect(cells.slice(2)).toEqual(['6 of 6', '6 this run', tune.first, tune.best, tune.measured]);
    await shots('logs');
    expect(pageErrors).toEqual([]);
  }, LONG);

  it('the Benchmark page states the build against the model the CLI\'s way', async () => {
    await nav('tune');
    const pkg = (await page.locator('tr:has(td:text-is("package")) code').first().textContent())?.trim();
    expect(pkg).toBeTruthy();
    await nav('bench');
    await page.getByLabel('Exported model').fill(pkg!);
    await page.getByLabel('Iterations').fill('100');
    await page.click('text=Run benchmark');
    await page.waitForSelector('[data-testid=job-bench][data-state=succeeded], [data-testid=job-bench][data-state=failed]', { timeout: LONG });
    expect(await page.getAttribute('[data-testid=job-bench]', 'data-state'), await text('[data-testid=job-bench]')).toBe('succeeded');
    expect(await text('[data-testid=bench-ratio]')).toMatch(/^(\d+(\.\d+)?× (faster|slower)|same speed)$/);
    await shots('bench');
    expect(pageErrors).toEqual([]);
  }, LONG);
});
