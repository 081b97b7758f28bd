// Chart responsiveness: 5,000 tuning trials streamed into the Tune chart through the real event
// batching path (a test hook in the page), 100 per frame, then 50,000 (1,000 per frame) in a fresh
// page. Reports the update times and the chart's own redraw times (p50RedrawMs: render, commit,
// recharts' second pass and the effects; see useRedrawTimer in renderer/src/charts.tsx) and keeps
// them in test-artifacts/chart-perf.json, with the machine's load average beside them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { hasChromium, launchChromium, makeTinyModel, openModel, pageUrl, ROOT, serve, type Served, shotPath, tempDir } from './helpers.js';

/** The chart draws about this many dots at most (MAX_DRAWN_DOTS in charts.tsx, with the 1.5× it may grow by between rebuilds). */
const MAX_DOTS = 1.5 * 12000 + 1;

/** A figure from an axis tick label: "500 µs", "2 ms", "1.2 s" → ms; "5000" → 5000. */
function tickValue(text: string): number {
  const m = /^([\d.]+)\s*(ns|µs|ms|s)?$/.exec(text.trim());
  if (!m) return NaN;
  const scale = { ns: 1e-6, µs: 1e-3, ms: 1, s: 1e3 }[m[2] ?? 'ms'] ?? 1;
  return Number(m[1]) * (m[2] ? scale : 1);
}

describe.skipIf(!hasChromium())('Tune chart with 5,000 and 50,000 points', () => {
  let server: Served;
  let browser: Browser;
  let model: string;
  beforeAll(async () => {
    const dir = tempDir('torchtvm-perf-');
    server = await serve({ TORCHTVM_HOME: join(dir, 'home') });
    browser = await launchChromium();
    model = makeTinyModel(dir);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A fresh page with the model open: the Tune view needs one; the tiny one inspects in seconds. */
  async function tunePage(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(pageUrl(server, 'testHooks=1'));
    await openModel(page, model);
    return page;
  }

  /** What the chart holds in the DOM: its SVG elements, and the dots it draws. */
  const chartDom = (page: Page) =>
    page.evaluate(() => ({
      svgNodes: document.querySelectorAll('[data-testid=tune-chart] svg *').length,
      drawnDots: Number(document.querySelector('[data-testid=tune-chart] .trial-layers')?.getAttribute('data-drawn') ?? 0),
    }));

  it('stays responsive, and redraws within a frame', async () => {
    const page = await tunePage();
    const r = await page.evaluate(() => (window as any).__torchtvmTest.streamTrials(5000, 100));
    console.log(`[chart-perf] ${r.points} points in ${r.batches} batches: update (store + React commit) p50 ${r.p50UpdateMs.toFixed(1)} ms, p90 ${r.p90UpdateMs.toFixed(1)} ms, max ${r.maxUpdateMs.toFixed(1)} ms; chart redraws ${r.chartRedraws}, p50 ${r.p50RedrawMs.toFixed(1)} ms, max ${r.maxRedrawMs.toFixed(1)} ms; frame incl. two rAF waits p50 ${r.p50FrameMs.toFixed(1)} ms`);
    expect(r.points).toBe(5000);
    // Each timed update had reached the page when its time was taken.
    expect(r.updatesCommitted).toBe(r.batches);
    // An update with 5,000 points streaming in stays within one 60 Hz frame (p50).
    expect(r.p50UpdateMs).toBeLessThanOrEqual(16);
    // The chart catches up with the last batch within its redraw interval.
    await page.waitForSelector('[data-testid=tune-chart][data-points="5000"]', { timeout: 5000 });
    // Drawn downsampled: a bounded DOM however many trials arrive (one path per task past 1,000 dots).
    const dom = await chartDom(page);
    expect(dom.svgNodes).toBeLessThan(250);
    expect(dom.drawnDots).toBeGreaterThan(1000);
    expect(dom.drawnDots).toBeLessThanOrEqual(MAX_DOTS);

    // The latest trial is drawn, where the axes say, and its tooltip names its task: trial 5000
    // is task 3's (the hook deals trials to tasks 0-3 in turn), the last dot of its path.
    const last = await page.evaluate(() => {
      const d = document.querySelector('[data-testid=tune-chart] .trial-dots[data-task="3"]')?.getAttribute('d') ?? '';
      const m = [...d.matchAll(/M([\d.]+) ([\d.]+)h0/g)].pop();
      const tick = [...document.querySelectorAll('[data-testid=tune-chart] .recharts-xAxis .recharts-cartesian-axis-tick-value')].find((t) => t.textContent === '5000');
      const box = document.querySelector('[data-testid=tune-chart] svg')!.getBoundingClientRect();
      return { x: Number(m?.[1]), y: Number(m?.[2]), tickX: Number(tick?.getAttribute('x')), left: box.left, top: box.top };
    });
    expect(Math.abs(last.x - last.tickX)).toBeLessThan(1);
    await page.mouse.move(last.left + last.x, last.top + last.y);
    const tip = page.locator('[data-testid=trial-tooltip]');
    await expect.poll(() => tip.textContent().catch(() => ''), { timeout: 5000 }).toMatch(/fused_conv2d_3\s*trial 5000:/);
    // On the latency axis too: its position from the tick labels (log scale) against the latency the tooltip gives.
    const lat = tickValue(/trial 5000: ([^b]+?)best/.exec((await tip.textContent()) ?? '')![1]);
    // The left axis' labels (anchored at their end; the right axis' at their start).
    const ticks = await page.$$eval('[data-testid=tune-chart] .recharts-yAxis .recharts-cartesian-axis-tick-value[text-anchor=end]', (els) => els.map((e) => ({ text: e.textContent ?? '', y: Number(e.getAttribute('y')) })));
    const left = ticks.filter((t) => t.text.length > 0).map((t) => ({ v: tickValue(t.text), y: t.y })).filter((t) => t.v > 0);
    expect(left.length).toBeGreaterThanOrEqual(2);
    expect(await page.getAttribute('[data-testid=tune-chart]', 'data-scale')).toBe('log');
    {
      const [a, b] = [left[0], left[left.length - 1]];
      const expectY = a.y + ((Math.log(lat) - Math.log(a.v)) / (Math.log(b.v) - Math.log(a.v))) * (b.y - a.y);
      expect(Math.abs(expectY - last.y)).toBeLessThan(1.5);
    }
    await page.mouse.move(5, 5);

    await page.screenshot({ path: shotPath('16-tune-5000-points'), fullPage: true });
    for (const theme of ['light', 'dark']) {
      await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
      await page.waitForTimeout(200);
      await page.locator('[data-testid=tune-chart]').screenshot({ path: shotPath(`16-tune-chart-5000-${theme}`) });
    }
    await page.close();

    // 50,000 trials in a fresh page (the hook's trials are one job's: a page streams them once).
    const big = await tunePage();
    const r50 = await big.evaluate(() => (window as any).__torchtvmTest.streamTrials(50000, 1000));
    await big.waitForSelector('[data-testid=tune-chart][data-points="50000"]', { timeout: 10_000 });
    const dom50 = await chartDom(big);
    await big.locator('[data-testid=tune-chart]').screenshot({ path: shotPath('16-tune-chart-50000-light') });
    await big.close();
    console.log(`[chart-perf] ${r50.points} points in ${r50.batches} batches: update p50 ${r50.p50UpdateMs.toFixed(1)} ms; chart redraws ${r50.chartRedraws}, p50 ${r50.p50RedrawMs.toFixed(1)} ms, max ${r50.maxRedrawMs.toFixed(1)} ms; ${dom50.drawnDots} dots drawn, ${dom50.svgNodes} SVG elements`);

    // The existing keys are the 5,000-point run's; the 50,000-point run's carry "50k".
    const artifact = {
      ...r,
      ...dom,
      points50k: r50.points,
      batches50k: r50.batches,
      p50UpdateMs50k: r50.p50UpdateMs,
      maxUpdateMs50k: r50.maxUpdateMs,
      chartRedraws50k: r50.chartRedraws,
      p50RedrawMs50k: r50.p50RedrawMs,
      maxRedrawMs50k: r50.maxRedrawMs,
      svgNodes50k: dom50.svgNodes,
      drawnDots50k: dom50.drawnDots,
      loadAverage1m: loadavg()[0],
    };
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    writeFileSync(join(ROOT, 'test-artifacts/chart-perf.json'), JSON.stringify(artifact, null, 1));

    expect(r50.points).toBe(50000);
    expect(dom50.svgNodes).toBeLessThan(250);
    expect(dom50.drawnDots).toBeLessThanOrEqual(MAX_DOTS);
    // The target: the chart's own redraw within a 60 Hz frame with 5,000 points (p50).
    expect(r.p50RedrawMs).toBeLessThanOrEqual(16);
    // With 50,000 the aim is the same frame (~12-19 ms measured here on a shared 2-core machine),
    // but that is not reliable there: the bound is three frames, and the figure is the report.
    expect(r50.p50RedrawMs).toBeLessThan(50);
    // A generous bound for a 2-core CI machine; the figure itself is the report.
    expect(r.meanFrameMs).toBeLessThan(150);
  });
});
