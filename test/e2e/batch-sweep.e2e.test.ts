// The Benchmark page's batch sweep (issue 24 item 4): a model exported with a symbolic batch by the
// real engine (batch=1..16), swept in the app at each power of two of its range by the real addon;
// the plot of throughput against p50 has a labelled dot per size, the best size under the typed
// latency limit marked, the limit drawn; the table marks the same size. Screenshots in both themes,
// 1280 and 800 px wide: test-artifacts/screenshots/sweep-*.png.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openModel, openSession, ROOT, type Session, setInput, shotPath } from './helpers.js';

const LONG = 10 * 60_000;

/** "8.24 µs", "1.20 ms", "1.5 s" → ms. */
function parseMs(text: string): number {
  const m = /([\d.]+)\s*(ns|µs|ms|s)/.exec(text);
  if (!m) throw new Error(`not a time: ${text}`);
  return Number(m[1]) * { ns: 1e-6, µs: 1e-3, ms: 1, s: 1000 }[m[2] as 'ns' | 'µs' | 'ms' | 's'];
}

describe.skipIf(!hasChromium())('the batch sweep on the Benchmark page', () => {
  let session: Session;
  let page: Page;
  let dir: string;
  let pageErrors: string[] = [];
  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const rows = async () =>
    page.$$eval('[data-testid=sweep-table] tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
  const runSweep = async () => {
    const before = await page.getAttribute('[data-testid=job-bench]', 'data-job').catch(() => null);
    await page.click('[data-testid=bench-run]');
    const fresh = before ? `[data-testid=job-bench]:not([data-job="${before}"])` : '[data-testid=job-bench]';
    await page.waitForSelector(`${fresh}[data-state=succeeded], ${fresh}[data-state=failed]`, { timeout: LONG });
    expect(await page.getAttribute('[data-testid=job-bench]', 'data-state'), (await page.textContent('[data-testid=job-bench]')) ?? '').toBe('succeeded');
  };

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-e2e-sweep-' });
    ({ dir, page, pageErrors } = session);
    const model = makeTinyModel(dir);
    // The build: the real engine, a symbolic batch 1..16, exported.
    const built = spawnSync(process.execPath, [join(ROOT, 'bin/torchtvm.js'), 'compile', model, '--input', 'x:batch=1..16,32:float32', '-o', join(dir, 'tiny_dyn.pt'), '--out-dir', join(dir, 'build'), '--no-measure'], { encoding: 'utf8', env: { ...process.env, TORCHTVM_HOME: join(dir, 'home') } });
    expect(built.status, built.stderr).toBe(0);
    await openModel(page, model);
    await nav('inputs');
    await setInput(page, 'x', 'batch=1..16,32', 'float32');
  }, LONG);

  afterAll(async () => {
    await session?.close();
  });

  it('sweeps the exported build at each power of two, and marks the best size under the typed limit', async () => {
    await nav('bench');
    await page.getByLabel('Exported model').fill(join(dir, 'tiny_dyn.pt'));
    await page.getByLabel('Iterations').fill('100');
    await page.check('[data-testid=bench-sweep-toggle]');
    expect(await page.textContent('[data-testid=bench-run]')).toBe('Run sweep');
    await runSweep();
    const first = await rows();
    expect(first.map((r) => Number(r[0]))).toEqual([1, 2, 4, 8, 16]);
    for (const r of first) {
      const p50 = parseMs(r[1]);
      const rate = Number(r[4].replace(/[,/s]/g, ''));
      // throughput = size × 1000 / p50, to the 3 significant digits shown (p50 itself is rounded to 3).
      expect(Math.abs(rate - (Number(r[0]) * 1000) / p50) / rate).toBeLessThan(0.02);
    }
    // Without a limit, the best is the highest throughput.
    expect(await page.locator('[data-testid=sweep-best]').count()).toBe(1);
    expect(await page.textContent('[data-testid=sweep-best]')).toBe('◀ best');
    expect(await page.locator('[data-testid=sweep-chart] .recharts-label-list text').allTextContents()).toEqual(['1', '2', '4', '8', '16']);

    // A limit between the sizes' latencies: the middle p50 of the first sweep.
    const p50s = first.map((r) => parseMs(r[1])).sort((a, b) => a - b);
    const limit = +p50s[2].toPrecision(3);
    await page.fill('[data-testid=bench-latency-limit]', String(limit));
    await runSweep();
    const second = await rows();
    const within = second.filter((r) => parseMs(r[1]) <= limit);
    const best = second.find((r) => r[6] === '◀ best');
    expect(parseMs((await page.textContent('[data-testid=sweep-table] thead th:last-child')) ?? '')).toBeCloseTo(limit, 6); // "limit 12.8 µs"
    if (within.length) {
      expect(best, JSON.stringify(second)).toBeTruthy();
      const rate = (r: string[]) => Number(r[4].replace(/[,/s]/g, ''));
      expect(rate(best!)).toBe(Math.max(...within.map(rate)));
      expect(await page.textContent('[data-testid=sweep-summary]')).toMatch(new RegExp(`Best: batch=${best![0]}, .* p50 \\(the highest throughput with p50 within`));
    } else {
      expect(await page.textContent('[data-testid=sweep-note]')).toMatch(/^No batch size meets the limit/);
    }
    for (const r of second) if (parseMs(r[1]) > limit) expect(r[6]).toBe('over the limit');
    expect(await page.locator('[data-testid=sweep-chart] .recharts-reference-line').count()).toBe(1);
    expect(await page.locator('[data-testid=sweep-chart] .recharts-reference-dot').count()).toBe(within.length ? 1 : 0);
    expect(pageErrors).toEqual([]);

    for (const theme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: theme });
      for (const width of [1280, 800]) {
        await page.setViewportSize({ width, height: 900 });
        await page.locator('[data-testid=bench-sweep]').evaluate((el) => el.scrollIntoView({ block: 'start' }));
        await page.locator('main').evaluate((el) => el.scrollBy(0, -150));
        await page.waitForTimeout(150); // ResponsiveContainer redraws at the new width
        await page.screenshot({ path: shotPath(`sweep-${theme}-${width}`) });
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
  }, LONG);
});
