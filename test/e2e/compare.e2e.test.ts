// Compare builds (issue 24 item 2) in the browser against the real engine: the tiny MLP compiled
// (untuned) and tuned (a few trials); both picked as A and B in the Model page's runs list; the
// Compare page's per-op table matches `torchtvm compare --json` of the same two build folders;
// "Measure both" benches them interleaved and overlays the histograms; "Show in the graph" colours
// each op of the model's graph by what B does against A. Screenshots in light and dark, 1280 and
// 800 px wide.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fmtSideError, type BuildComparison } from '../../app/contract/build-compare.js';
import { fmtMs } from '../../app/contract/format.js';
import { abVerdict } from '../../renderer/src/views/graph-data.js';
import { hasChromium, makeTinyModel, openModel, openSession, ROOT, type Session, shotPath, TINY_DIMS } from './helpers.js';

const LONG = 10 * 60_000;

describe.skipIf(!hasChromium())('Compare builds (browser mode, real engine)', () => {
  let session: Session;
  let page: Page;
  let model: string;

  beforeAll(async () => {
    session = await openSession({ prefix: 'torchtvm-compare-', viewport: { width: 1280, height: 900 } });
    page = session.page;
    model = makeTinyModel(session.dir);
  });

  afterAll(async () => {
    await session?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);

  /** `torchtvm compare A B --no-bench --all --json`: the comparison as the CLI gives it. */
  function cliCompare(dirA: string, dirB: string): BuildComparison {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/torchtvm.js'), 'compare', dirA, dirB, '--no-bench', '--all', '--json'], { encoding: 'utf8', env: { ...process.env, TORCHTVM_HOME: join(session.dir, 'home') } });
    expect(r.status, r.stderr).toBe(0);
    return (JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { result: { comparison: BuildComparison } }).result.comparison;
  }

  it('compiles the model, then tunes it: two builds in the runs list', async () => {
    await openModel(page, model);
    await nav('inputs');
    await page.getByLabel('input 0 dims').fill(TINY_DIMS);
    await nav('compile');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[data-testid=job-compile][data-state=succeeded]', { timeout: LONG });
    await nav('tune');
    await page.getByLabel('Trial budget').fill('4');
    await page.click('[data-testid=tune-start]');
    await page.waitForSelector('[data-testid=job-tune][data-state=succeeded]', { timeout: LONG });
    await nav('model');
    await page.waitForSelector('[data-testid=model-runs] tr[data-state=succeeded] [data-testid=pick-a]', { timeout: 60_000 });
    expect(await page.locator('[data-testid=model-runs] tr[data-state=succeeded]').count()).toBeGreaterThanOrEqual(2);
  }, 2 * LONG);

  it('picks the compile as A and the tune as B in the runs list and opens Compare', async () => {
    expect(await page.isDisabled('[data-testid=open-compare]')).toBe(true);
    // Newest first: the tune, then the compile.
    const rows = page.locator('[data-testid=model-runs] tr[data-state=succeeded]');
    const kinds = await rows.locator('td:first-child').allTextContents();
    await rows.nth(kinds.indexOf('compile')).locator('[data-testid=pick-a]').click();
    await rows.nth(kinds.indexOf('tune')).locator('[data-testid=pick-b]').click();
    expect(await rows.nth(kinds.indexOf('compile')).locator('[data-testid=pick-a]').getAttribute('aria-pressed')).toBe('true');
    await page.click('[data-testid=open-compare]');
    await page.waitForSelector('[data-testid=compare-table]', { timeout: 60_000 });
    const tuned = page.locator('[data-testid=compare-facts] tbody tr', { hasText: 'tuned' }).first();
    expect(await tuned.getAttribute('data-differs')).toBe('1');
    expect(await tuned.textContent()).toMatch(/tunednoyes \(\d+ trials\)/);
  }, LONG);

  it('shows the same per-op table as torchtvm compare --json of the two build folders', async () => {
    await page.check('[data-testid=compare-all]');
    const dirA = (await page.textContent('[data-testid=compare-dir-a]'))!;
    const dirB = (await page.textContent('[data-testid=compare-dir-b]'))!;
    const cli = cliCompare(dirA, dirB);
    const where = (w: string | null | undefined) => (w === undefined || w === null ? '–' : w === 'tvm' ? 'TVM' : w === 'torchscript' ? 'TorchScript' : 'library');
    const expected = cli.rows.map((x) => [x.scope ? `${x.scope} ${x.kind}` : x.kind, x.a ? where(x.a.where) : '–', x.b ? where(x.b.where) : '–', fmtMs(x.a?.ms), fmtMs(x.b?.ms), fmtSideError(x.a), fmtSideError(x.b), x.differs ? '1' : '']);
    const shown = await page.$$eval('[data-testid=compare-table] tbody tr', (trs) => trs.map((tr) => [...[...tr.querySelectorAll('td')].slice(0, 7).map((td) => td.textContent ?? ''), (tr as HTMLElement).dataset.differs ?? '']));
    expect(expected.length).toBeGreaterThan(0);
    expect(shown).toEqual(expected);
    // A differing time is highlighted.
    const diffTime = cli.rows.findIndex((x) => x.diff.time);
    if (diffTime >= 0) expect(await page.locator('[data-testid=compare-table] tbody tr').nth(diffTime).locator('[data-testid=time-b]').getAttribute('class')).toBe('diff');
    await page.waitForSelector('[data-testid=compare-chart] .recharts-bar-rectangle', { state: 'attached' });
  }, LONG);

  it('Measure both benches A and B interleaved and overlays their histograms', async () => {
    await page.click('[data-testid=measure-both]');
    await page.waitForSelector('[data-testid=compare-histogram] .recharts-bar-rectangle', { state: 'attached', timeout: LONG });
    await page.waitForSelector('[data-testid=compare-latency]', { timeout: LONG });
    const rows = await page.$$eval('[data-testid=compare-latency] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    expect(rows).toHaveLength(2);
    expect(await page.textContent('[data-testid=compare-ratio]')).toMatch(/B against A at p50: .*(faster|slower|same speed)/);
  }, LONG);

  it('screenshots: light and dark, 1280 and 800 wide', async () => {
    for (const theme of ['light', 'dark'] as const) {
      await page.evaluate((t) => { document.documentElement.dataset.theme = t; }, theme);
      for (const width of [1280, 800]) {
        // The page scrolls inside <main>: a window as tall as its content shows all of it.
        await page.setViewportSize({ width, height: 900 });
        await page.waitForTimeout(300);
        const height = await page.evaluate(() => document.querySelector('main')!.scrollHeight);
        await page.setViewportSize({ width, height: Math.min(4000, Math.max(900, height + 8)) });
        await page.waitForTimeout(300);
        await page.screenshot({ path: shotPath(`compare-${theme}-${width}`) });
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    await nav('model');
    await page.screenshot({ path: shotPath('compare-runs-list-picked') });
    expect(session.pageErrors).toEqual([]);
  }, LONG);

  it('shows A and B in the graph: each op coloured by what B does against A, as torchtvm compare --json says', async () => {
    await nav('compare');
    const dirA = (await page.textContent('[data-testid=compare-dir-a]'))!;
    const dirB = (await page.textContent('[data-testid=compare-dir-b]'))!;
    const cli = cliCompare(dirA, dirB);
    await page.click('[data-testid=compare-in-graph]');
    await page.waitForSelector('[data-testid=ab-legend]', { timeout: 60_000 });
    expect(await page.getAttribute('[data-testid=colour-by] [data-mode=ab]', 'aria-checked')).toBe('true');
    expect(Number(await page.getAttribute('[data-testid=ab-legend]', 'data-rows'))).toBe(cli.rows.length);
    // Each node a row names carries that row's verdict (the first row naming it, as the CLI lists them).
    const expected = new Map<string, string>();
    for (const row of cli.rows) for (const n of row.nodes) if (!expected.has(n)) expected.set(n, abVerdict(row));
    expect(expected.size).toBeGreaterThan(0);
    const shown = await page.locator('[data-testid=graph-view] .graph-node[data-ab]').evaluateAll((els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-id'), e.getAttribute('data-ab')])));
    expect(shown).toEqual(Object.fromEntries(expected));
    // An op's details give both sides.
    const [first] = expected.keys();
    await page.click(`[data-testid=graph-view] .graph-node[data-id="${first}"]`);
    expect(await page.textContent('[data-testid=ab-details]')).toMatch(/time .+ → .+error .+ → /);
    for (const theme of ['light', 'dark'] as const) {
      await page.evaluate((t) => { document.documentElement.dataset.theme = t; }, theme);
      for (const width of [1280, 800]) {
        await page.setViewportSize({ width, height: 800 });
        await page.waitForTimeout(300);
        await page.screenshot({ path: shotPath(`compare-graph-${theme}-${width}`) });
      }
    }
    await page.evaluate(() => { document.documentElement.dataset.theme = 'light'; });
    await page.setViewportSize({ width: 1280, height: 900 });
    // Back to one build: the A/B mode goes with the comparison.
    await page.click('[data-testid=ab-builds] button:has-text("stop comparing")');
    expect(await page.locator('[data-testid=colour-by] [data-mode=ab]').count()).toBe(0);
    expect(session.pageErrors).toEqual([]);
  }, LONG);
});
