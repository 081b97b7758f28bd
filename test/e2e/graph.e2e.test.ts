// The graph view on the bundled ResNet-18, against the real engine: per-op output shapes from the
// pre-filled input (1×3×224×224 float32), then a compile (placement auto, no tuning) and the
// placement colours matched by identity: every convolution in a library kernel (with its
// BatchNorm, residual add and ReLU fused into the call), pooling and flatten in TVM kernels.
// Screenshots in both themes at 1024×700 and 1920×1080 go to test-artifacts/screenshots/.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmtMs } from '../../app/contract/format.js';
import type { CompileResult } from '../../app/contract/results.js';
import { hasChromium, openSession, PYTHON, ROOT, shotPath, type Session } from './helpers.js';

const LONG = 8 * 60_000;
const NODES = '[data-testid=graph-view] .graph-node';

describe.skipIf(!hasChromium())('graph view of ResNet-18 with placement colours (browser mode, real engine)', () => {
  let s: Session;
  let page: Page;

  beforeAll(async () => {
    s = await openSession({ prefix: 'torchtvm-graph-' });
    page = s.page;
  });

  afterAll(async () => {
    await s?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);
  const whereOf = (op: string) => page.locator(`${NODES}[data-op="${op}"]`).evaluateAll((els) => els.map((e) => e.getAttribute('data-where')));

  /** Screenshots of the page as it is, in both themes at 1024×700 and 1920×1080. */
  async function plainShots(name: string) {
    for (const [w, h] of [[1024, 700], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      for (const theme of ['light', 'dark']) {
        await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        await page.screenshot({ path: shotPath(`${name}-${theme}-${w}x${h}`) });
      }
    }
    await page.evaluate(() => document.documentElement.setAttribute('data-theme', 'light'));
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  /** The selected op lies inside the graph's box and not under the details panel. */
  async function selectedInView(): Promise<{ inside: boolean; covered: boolean }> {
    const where = () => {
      const box = document.querySelector('[data-testid=graph-view]')!.getBoundingClientRect();
      const node = document.querySelector('[data-testid=graph-view] .graph-node.selected')!.getBoundingClientRect();
      const panel = document.querySelector('[data-testid=graph-selected]')!.getBoundingClientRect();
      return {
        inside: node.left >= box.left && node.right <= box.right && node.top >= box.top && node.bottom <= box.bottom,
        covered: node.right > panel.left && node.left < panel.right && node.bottom > panel.top && node.top < panel.bottom,
      };
    };
    // The view pans after the panel is drawn (and after a resize): give it a few frames.
    await page.waitForTimeout(250);
    return page.evaluate(where);
  }

  /**
   * The model's succeeded compile runs as the workbench recorded them (the engine's result, as the
   * CLI's --json prints it), oldest first.
   */
  function compileRuns(): Array<{ job: string; request: { compare_ops?: boolean }; result: CompileResult }> {
    const projects = join(s.dir, 'home', 'projects');
    const out: Array<{ job: string; request: { compare_ops?: boolean }; result: CompileResult; at: number }> = [];
    for (const p of existsSync(projects) ? readdirSync(projects) : []) {
      const runs = join(projects, p, 'runs');
      for (const job of existsSync(runs) ? readdirSync(runs) : []) {
        const file = join(runs, job, 'outcome.json');
        if (!job.startsWith('compile-') || !existsSync(file)) continue;
        const outcome = JSON.parse(readFileSync(file, 'utf8')) as { state: string; result: CompileResult };
        const run = JSON.parse(readFileSync(join(runs, job, 'run.json'), 'utf8')) as { startedAt: number };
        if (outcome.state === 'succeeded') out.push({ job, request: JSON.parse(readFileSync(join(runs, job, 'request.json'), 'utf8')), result: outcome.result, at: run.startedAt });
      }
    }
    return out.sort((a, b) => a.at - b.at);
  }

  const colourBy = (mode: string) => page.click(`[data-testid=colour-by] [data-mode=${mode}]`);

  /** `query`: what to search for (Enter selects and centres the first match). */
  async function shots(name: string, query = 'max_pool2d') {
    for (const [w, h] of [[1024, 700], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      for (const theme of ['light', 'dark']) {
        await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        // Centre the first max-pool: the stem, the first residual block and its skip edge show.
        await page.getByLabel('Search the graph').fill(query);
        await page.getByLabel('Search the graph').press('Enter');
        await page.waitForTimeout(200);
        await page.screenshot({ path: shotPath(`${name}-${theme}-${w}x${h}`) });
      }
    }
    await page.evaluate(() => document.documentElement.setAttribute('data-theme', 'light'));
    await page.setViewportSize({ width: 1280, height: 900 });
  }

  it('opens the bundled ResNet-18 and shows every op with its output shape and dtype', async (ctx) => {
    // The button shows once the app knows its bundled example (absent where assets/models is not made).
    const example = await page.waitForSelector('text=Open bundled example (ResNet-18)', { timeout: 30_000 }).catch(() => null);
    if (!example) ctx.skip();
    await page.click('text=Open bundled example (ResNet-18)');
    await page.waitForFunction(() => document.querySelector('.model-bar code')?.textContent?.endsWith('resnet18.pt'), null, { timeout: 120_000 });
    await nav('graph');
    await page.waitForSelector(NODES, { timeout: 30_000 });
    // The shapes come from the engine running the model on the pre-filled input specs.
    await page.waitForSelector(`${NODES}[data-op="aten::_convolution"][data-shape]`, { timeout: 120_000 });
    expect(await page.locator('[data-testid=graph-shapes-status]').count()).toBe(0);
    const shapes = await page.locator(`${NODES}[data-op="aten::_convolution"]`).evaluateAll((els) => els.map((e) => e.getAttribute('data-shape')));
    expect(shapes).toHaveLength(20);
    expect(shapes[0]).toBe('1×64×112×112 float32');
    expect(shapes).toContain('1×64×56×56 float32');
    expect(shapes).toContain('1×512×7×7 float32');
    expect(await page.locator(`${NODES}[data-op="aten::linear"]`).getAttribute('data-shape')).toBe('1×1000 float32');
    // The shape is drawn on the node itself, not only kept in an attribute.
    expect(await page.locator(`${NODES}[data-op="aten::max_pool2d"] .graph-sub`).textContent()).toBe('1×64×56×56 float32');
    expect(await page.locator(`${NODES}[data-op="input"] .graph-sub`).textContent()).toBe('1×3×224×224 float32');
    // Shapes are searchable, typed with an x as on a keyboard: max-pool and layer1's ops.
    await page.getByLabel('Search the graph').fill('1x64x56x56');
    expect(Number((await page.textContent('[data-testid=graph-matches]'))!.split(' ')[0])).toBeGreaterThan(10);
    // Module paths are searchable too, by prefix: all of layer2 (its two blocks and the
    // downsample), or one block. A saved model keeps no scope names; the engine reads each op's
    // module hierarchy instead.
    const matches = async (q: string) => {
      await page.getByLabel('Search the graph').fill(q);
      return Number((await page.textContent('[data-testid=graph-matches]'))!.split(' ')[0]);
    };
    expect(await matches('layer2')).toBe(16); // layer2.0: 2 convs, 2 BNs, 2 ReLUs, downsample conv+BN, add; layer2.1: the same without the downsample
    expect(await matches('layer2.1')).toBe(7);
    expect(await matches('layer2.1.conv')).toBe(2);
    await page.getByLabel('Search the graph').press('Enter');
    expect(await page.textContent('[data-testid=graph-selected]')).toContain('layer2.1.conv1');
    await shots('graph-01-resnet18-shapes');
    // Clicking an op shows its details beside it, never over it: at 1024 px the panel takes almost
    // half the box, so the view pans the op clear of it. The graph is dragged right first, so that
    // the first convolution lies where the panel opens (the box's top right).
    await page.setViewportSize({ width: 1024, height: 700 });
    await page.getByLabel('Search the graph').fill('');
    await page.getByLabel('Close the details').click();
    await page.getByText('Fit width').click();
    const gb = (await page.locator('[data-testid=graph-view]').boundingBox())!;
    const conv = page.locator(`${NODES}[data-op="aten::_convolution"]`).first();
    const before = (await conv.boundingBox())!;
    const dx = gb.x + gb.width - 40 - (before.x + before.width);
    await page.mouse.move(gb.x + 15, gb.y + gb.height - 15);
    await page.mouse.down();
    await page.mouse.move(gb.x + 15 + dx / 2, gb.y + gb.height - 15);
    await page.mouse.move(gb.x + 15 + dx, gb.y + gb.height - 15);
    await page.mouse.up();
    const under = (await conv.boundingBox())!;
    expect(under.x + under.width).toBeGreaterThan(gb.x + gb.width - 0.45 * gb.width); // where the panel will be
    await conv.click();
    expect(await selectedInView()).toEqual({ inside: true, covered: false });
    await page.screenshot({ path: shotPath('graph-04-resnet18-selected-light-1024x700') });
    await page.setViewportSize({ width: 1280, height: 900 });
    // The Model page names every op in full (the longest is aten::adaptive_avg_pool2d), and the
    // Inputs page's dtype select shows its whole value, at 1024 px as at 1920.
    await nav('model');
    await page.setViewportSize({ width: 1024, height: 700 });
    const cut = await page.locator('.histogram .bar-label').evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().height > 24).map((e) => e.textContent));
    expect(cut).toEqual([]);
    await plainShots('graph-05-resnet18-model-page');
    await nav('inputs');
    await page.setViewportSize({ width: 1024, height: 700 });
    expect(await page.getByLabel('input 0 dtype').evaluate((e) => e.getBoundingClientRect().width)).toBeGreaterThanOrEqual(100);
    await plainShots('graph-06-resnet18-inputs-page');
    await nav('graph');
  }, LONG);

  it('compiles (placement auto, no tuning) and colours each op by where it runs, matched by identity', async (ctx) => {
    if (!(await page.locator(`${NODES}[data-op="aten::_convolution"]`).count())) ctx.skip();
    await nav('compile');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[data-testid=verification-banner], .error-box', { timeout: LONG });
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');
    await nav('graph');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=graph-view]')?.getAttribute('data-placed')) > 0, null, { timeout: 30_000 });
    // Every convolution runs in a library kernel, found by the node it came from (not by order).
    const convs = page.locator(`${NODES}[data-op="aten::_convolution"]`);
    expect(await convs.evaluateAll((els) => els.map((e) => `${e.getAttribute('data-where')}/${e.getAttribute('data-match')}`))).toEqual(Array(20).fill('library/id'));
    // What the library fuses into each call runs there too.
    expect(new Set(await whereOf('aten::batch_norm'))).toEqual(new Set(['library']));
    expect(await whereOf('aten::add')).toEqual(Array(8).fill('library'));
    // The max pool runs PyTorch's kernel too (by identity); the flatten runs in TVM (a view).
    expect(await page.locator(`${NODES}[data-op="aten::max_pool2d"]`).evaluateAll((els) => els.map((e) => `${e.getAttribute('data-where')}/${e.getAttribute('data-match')}`))).toEqual(['library/id']);
    expect(await whereOf('aten::flatten')).toEqual(['tvm']);
    // The global pool went where it timed faster on this machine: TVM's mean, or PyTorch's / the runtime's.
    const [pool] = await whereOf('aten::adaptive_avg_pool2d');
    expect(['tvm', 'library']).toContain(pool);
    const inLibrary = 22 + (pool === 'library' ? 1 : 0); // 20 convs + max pool + fc (+ the pool); 20 BN, 17 ReLU, 8 adds
    const inTvm = pool === 'library' ? '1 op' : '2 ops';
    expect(await page.textContent('[data-testid=graph-legend]')).toMatch(new RegExp(`library kernel \\(oneDNN/MKL\\) \\(${inLibrary} ops \\+ 45 fused; \\d+% of the time\\).*TVM kernel \\(${inTvm}; \\d+% of the time\\)`));
    // Heavy ops carry a bar for their share of the time; fused ops do not repeat it.
    expect(await page.locator(`${NODES}[data-op="aten::_convolution"] .share-bar`).count()).toBe(20);
    expect(await page.locator(`${NODES}[data-fused] .share-bar`).count()).toBe(0);
    // A fused op's details name the call it runs in.
    await page.locator(`${NODES}[data-op="aten::batch_norm"]`).first().click();
    expect(await page.textContent('[data-testid=graph-selected]')).toMatch(/library kernel.*fused into the call of _convolution/);
    await shots('graph-02-resnet18-placement');
    // Layer 1's first convolution: the build timed it as oneDNN's direct convolution and as
    // Winograd, and its details show both times and the algorithm that won by more than 5%.
    await convs.nth(1).click();
    const details = (await page.textContent('[data-testid=graph-selected]'))!;
    const [, direct, directUnit, wino, winoUnit] = details.match(/alonelibrary ([\d.]+) (ms|µs) · Winograd ([\d.]+) (ms|µs)/)!;
    const ms = (v: string, unit: string) => Number(v) / (unit === 'µs' ? 1000 : 1);
    expect(details.includes('Winograd F(4×4, 3×3)')).toBe(ms(wino, winoUnit) < 0.95 * ms(direct, directUnit));
    expect(details).not.toMatch(/TVM [\d.]+ (ms|µs)/); // a conv of an untuned build: TVM's kernel is not a candidate
    for (const [w, h] of [[1024, 700], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      for (const theme of ['light', 'dark']) {
        await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        // The selected op stays in view, clear of the panel, when the window is resized.
        expect(await selectedInView()).toEqual({ inside: true, covered: false });
        await page.screenshot({ path: shotPath(`graph-03-resnet18-winograd-details-${theme}-${w}x${h}`) });
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    expect(s.pageErrors).toEqual([]);
  }, LONG);

  it("colours by time (a heat scale in ms, as the placement report's times) and sorts the per-op table", async (ctx) => {
    if (!(await page.locator(`${NODES}[data-placed]`).count()) && !(await page.locator(`${NODES}[data-where]`).count())) ctx.skip();
    // The build the graph shows is the compile's, as the engine reported it.
    const [compiled] = compileRuns();
    expect(compiled.request.compare_ops).toBeUndefined();
    const ops = compiled.result.placement!.ops;
    const timed = ops.filter((o) => o.ms !== null);
    const slowest = timed.reduce((a, b) => (b.ms! > a.ms! ? b : a));
    const fastest = timed.reduce((a, b) => (b.ms! < a.ms! ? b : a));
    // Placement first (the default): the legend of where ops run.
    expect(await page.getAttribute('[data-testid=graph-legend]', 'data-mode')).toBe('placement');
    expect(await page.getAttribute('[data-testid=colour-by] [data-mode=placement]', 'aria-checked')).toBe('true');
    await colourBy('time');
    expect(await page.getAttribute('[data-testid=graph-legend]', 'data-mode')).toBe('time');
    // The legend runs from the fastest op's time to the slowest's, in ms, in 5 steps.
    const legend = page.locator('[data-testid=time-legend]');
    expect(Number(await legend.getAttribute('data-max-ms'))).toBeCloseTo(slowest.ms!, 9);
    expect(Number(await legend.getAttribute('data-min-ms'))).toBeCloseTo(fastest.ms!, 9);
    const steps = await legend.locator('.heat-step').allTextContents();
    expect(steps).toHaveLength(5);
    expect(steps[4]).toBe(fmtMs(slowest.ms!));
    expect(steps[0]).toBe(fmtMs(fastest.ms!));
    // Each timed op carries its time and a colour of the scale; the slowest has the darkest.
    const slowNode = page.locator(`${NODES}[data-id="${slowest.node}"]`);
    expect(Number(await slowNode.getAttribute('data-ms'))).toBeCloseTo(slowest.ms!, 9);
    expect(await slowNode.evaluate((e) => e.classList.contains('ink-light'))).toBe(true);
    // Ops without a time of their own (TVM's kernels, timed together) are greyed, and the legend says why.
    const untimed = (await whereOf('aten::adaptive_avg_pool2d'))[0] === 'tvm' ? ['aten::adaptive_avg_pool2d', 'aten::flatten'] : ['aten::flatten'];
    for (const op of untimed) expect(await page.locator(`${NODES}[data-op="${op}"].muted`).count()).toBe(1);
    expect(await page.textContent('[data-testid=time-untimed]')).toMatch(new RegExp(`grey: no time of its own \\(${untimed.length === 1 ? '1 op' : '2 ops'}\\)`));
    await shots('graph-08-resnet18-time');
    // The table, sorted by time (largest first), starts with the slowest op; a click on its row
    // selects it in the graph, in view and clear of the details panel.
    const table = page.locator('[data-testid=op-table]');
    expect(await table.locator('tbody tr').count()).toBe(24); // 20 convs, max pool, avg pool, flatten, fc; BN, ReLU and adds are fused
    await table.locator('th button[data-sort=ms]').click();
    expect(await table.locator('th:has(button[data-sort=ms])').getAttribute('aria-sort')).toBe('descending');
    const first = table.locator('tbody tr').first();
    expect(await first.getAttribute('data-id')).toBe(slowest.node);
    expect(await first.locator('td').nth(3).textContent()).toBe(fmtMs(slowest.ms!));
    const times = await table.locator('tbody tr td[data-ms]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-ms'))));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    await page.setViewportSize({ width: 1024, height: 700 });
    await table.locator('tbody tr').nth(1).click();
    const second = await table.locator('tbody tr').nth(1).getAttribute('data-id');
    expect(await page.getAttribute(`${NODES}.selected`, 'data-id')).toBe(second);
    expect(await selectedInView()).toEqual({ inside: true, covered: false });
    await page.screenshot({ path: shotPath('graph-09-resnet18-table-row-selected-light-1024x700') });
    await first.click();
    expect(await page.getAttribute(`${NODES}.selected`, 'data-id')).toBe(slowest.node);
    expect(await page.textContent('[data-testid=graph-selected]')).toContain(fmtMs(slowest.ms!));
    await page.setViewportSize({ width: 1280, height: 900 });
    // Sorted the other way, the slowest op is the last of the timed ones.
    await table.locator('th button[data-sort=ms]').click();
    expect(await table.locator('tbody tr td[data-ms]').last().evaluate((e) => e.closest('tr')!.getAttribute('data-id'))).toBe(slowest.node);
    expect(s.pageErrors).toEqual([]);
  }, LONG);

  it('colours by error after comparing each op with PyTorch on demand: ResNet-18 has no op past the tolerance', async (ctx) => {
    if (!compileRuns().length) ctx.skip();
    await colourBy('error');
    expect(await page.getAttribute('[data-testid=graph-legend]', 'data-mode')).toBe('error');
    // The compile did not compare ops (never in the default build): the mode offers to.
    const offer = page.locator('[data-testid=compare-offer]');
    expect(await offer.textContent()).toMatch(/no per-op comparison.*on demand only, never in the default build/);
    await plainShots('graph-10-resnet18-error-offer');
    await page.click('[data-testid=compare-ops]');
    await page.waitForSelector('[data-testid=error-legend], [data-testid=compare-offer] .error-box', { timeout: LONG });
    const runs = compileRuns();
    const compared = runs[runs.length - 1];
    expect(compared.request.compare_ops).toBe(true);
    const oc = compared.result.op_comparison!;
    expect(oc.ops.length).toBeGreaterThan(20);
    expect(oc.first_failing).toBeNull();
    // The graph now shows the compared build, its legend and table as the engine reported them.
    expect(await page.textContent('[data-testid=graph-build]')).toContain(compared.result.build!.id);
    const legend = page.locator('[data-testid=error-legend]');
    expect(await legend.getAttribute('data-failing')).toBe('0');
    expect(Number(await legend.getAttribute('data-compared'))).toBe(oc.ops.length);
    expect(await page.textContent('[data-testid=first-failing]')).toContain('Every op within the tolerance');
    const summary = page.locator('[data-testid=op-table-summary]');
    expect(Number(await summary.getAttribute('data-rows'))).toBeGreaterThan(0);
    expect(await summary.getAttribute('data-failing')).toBe('0');
    expect(await page.locator('[data-testid=op-table] tbody td[data-ok]').count()).toBeGreaterThan(20);
    expect(await page.locator('[data-testid=op-table] tbody td[data-ok=false]').count()).toBe(0);
    // Every convolution was compared, each within its tolerance; no op is outlined as the first failing.
    expect(await page.locator(`${NODES}[data-op="aten::_convolution"]`).evaluateAll((els) => els.map((e) => e.getAttribute('data-error')))).toEqual(Array(20).fill('ok'));
    expect(await page.locator(`${NODES} .first-outline`).count()).toBe(0);
    // A convolution's details: its error, both tensors' statistics and the histogram of the difference.
    await page.getByLabel('Search the graph').fill('layer1.0.conv1');
    await page.getByLabel('Search the graph').press('Enter');
    const details = page.locator('[data-testid=graph-selected]');
    expect(await details.locator('[data-testid=node-error]').textContent()).toMatch(/within tolerance · max abs [\d.e+-]+ · max rel [\d.e+-]+ · [\d.<]+% of the tolerance/);
    expect(await details.locator('[data-testid=tensor-stats] tbody tr').count()).toBe(4);
    expect(await details.locator('[data-testid=diff-histogram] rect.bin').count()).toBe(16);
    await shots('graph-11-resnet18-error', 'layer1.0.conv1');
    // Sorted by error, the largest share of the tolerance comes first.
    const table = page.locator('[data-testid=op-table]');
    await table.locator('th button[data-sort=error]').click();
    const worst = oc.ops.reduce((a, b) => ((b.max_abs as number) / (b.atol! + b.rtol! * (b.scale as number)) > (a.max_abs as number) / (a.atol! + a.rtol! * (a.scale as number)) ? b : a));
    expect(await table.locator('tbody tr').first().getAttribute('data-id')).toBe(worst.node);
    // Back to placement: the compared build's placement, as the default mode shows it.
    await colourBy('placement');
    expect(await page.locator(`${NODES}[data-op="aten::_convolution"][data-where=library]`).count()).toBe(20);
    expect(s.pageErrors).toEqual([]);
  }, LONG);

  it("shows the CLI's build in each of the three colour modes with the CLI's --json figures", async (ctx) => {
    if (!compileRuns().length) ctx.skip();
    // The same model compiled by the CLI, with the per-op comparison, into the same workbench home:
    // the app shows that build (the newest compile) after a reload.
    const model = (await page.textContent('.model-bar code'))!;
    const cli = spawnSync(process.execPath, [join(ROOT, 'bin/torchtvm.js'), 'compile', model, '--input', 'x:1,3,224,224:float32', '--compare-ops', '--json'], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, TORCHTVM_HOME: join(s.dir, 'home'), TORCHTVM_ALLOWED_ROOTS: s.dir }, timeout: LONG - 60_000, maxBuffer: 64 << 20,
    });
    expect(cli.status, cli.stderr).toBe(0);
    // --json prints one JSON object a line (events, then the outcome with the result).
    const r = (JSON.parse(cli.stdout.trim().split('\n').at(-1)!) as { result: CompileResult }).result;
    const oc = r.op_comparison!;
    expect(oc.first_failing).toBeNull();
    await page.reload();
    await page.waitForFunction((m) => document.querySelector('.model-bar code')?.textContent === m, model, { timeout: 120_000 });
    await nav('graph');
    await page.waitForFunction((id) => document.querySelector('[data-testid=graph-build]')?.textContent?.includes(id), r.build!.id, { timeout: 60_000 });

    // Placement: each op the CLI placed by identity runs where the CLI says, and the legend counts them.
    await colourBy('placement');
    const placed = r.placement!.ops.filter((o) => o.node);
    // ResNet-18's ops are all followed to their nodes; a transpose the layout pass added (the
    // input's, where the stem is not the direct loop, timed as TVM's and PyTorch's) is no op of the model.
    expect(placed.length).toBe(r.placement!.ops.filter((o) => o.kind !== 'permute').length);
    const whereById = await page.locator(`${NODES}[data-where]`).evaluateAll((els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-id'), e.getAttribute('data-where')])));
    for (const o of placed) expect(whereById[o.node!], `${o.name} (${o.node})`).toBe(o.where);
    const libraryOps = placed.filter((o) => o.where === 'library').length;
    expect(await page.textContent('[data-testid=graph-legend]')).toContain(`library kernel (oneDNN/MKL) (${libraryOps} ops`);
    await shots('graph-15-resnet18-cli-build-placement');

    // Time: a library call's time is the placement report's; a TVM op's, its kernel calls' in the comparison.
    await colourBy('time');
    const expected = new Map<string, number>();
    for (const o of placed) if (o.ms !== null) expected.set(o.node!, (expected.get(o.node!) ?? 0) + o.ms);
    const libraryNodes = new Set(expected.keys());
    for (const row of oc.ops) if (row.node && row.ms !== undefined && !libraryNodes.has(row.node)) expected.set(row.node, (expected.get(row.node) ?? 0) + row.ms);
    const shownMs = await page.locator(`${NODES}[data-ms]`).evaluateAll((els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-id'), Number(e.getAttribute('data-ms'))])));
    expect(Object.keys(shownMs).sort()).toEqual([...expected.keys()].sort());
    for (const [id, ms] of expected) expect(shownMs[id], id).toBeCloseTo(ms, 9);
    const legend = page.locator('[data-testid=time-legend]');
    expect(Number(await legend.getAttribute('data-max-ms'))).toBeCloseTo(Math.max(...expected.values()), 9);
    expect(Number(await legend.getAttribute('data-min-ms'))).toBeCloseTo(Math.min(...expected.values()), 9);
    // The pool has a time of its own: the comparison's (TVM's kernel) or the report's (a library
    // call). The flatten is a view of the pool's buffer (a reshape: no kernel, no time).
    const byComparison = expected.size - libraryNodes.size; // the legend names them where there are any
    if (byComparison) expect(Number(await page.getAttribute('[data-testid=time-from-comparison]', 'data-count'))).toBe(byComparison);
    else expect(await page.locator('[data-testid=time-from-comparison]').count()).toBe(0);
    expect(await page.locator(`${NODES}[data-op="aten::adaptive_avg_pool2d"][data-ms]`).count()).toBe(1);
    expect(await page.locator(`${NODES}[data-op="aten::flatten"][data-ms]`).count()).toBe(0);
    await shots('graph-16-resnet18-cli-build-time');

    // Error: every op the CLI compared, with its verdict, and none past the tolerance.
    await colourBy('error');
    const errLegend = page.locator('[data-testid=error-legend]');
    expect(Number(await errLegend.getAttribute('data-compared'))).toBe(oc.ops.length);
    expect(await errLegend.getAttribute('data-failing')).toBe('0');
    const shownErr = await page.locator(`${NODES}[data-error]`).evaluateAll((els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-id'), e.getAttribute('data-error')])));
    for (const row of oc.ops) if (row.node) expect(shownErr[row.node], row.op).toBe(row.ok ? 'ok' : 'over');
    await shots('graph-17-resnet18-cli-build-error', 'layer2.0.downsample');
    await colourBy('placement');
    expect(s.pageErrors).toEqual([]);
  }, LONG);

  it('opens a torch.export .pt2 with a dynamic batch: the Model page shows its own specs, and its graph is searchable by module path', async () => {
    const pt2 = join(s.dir, 'blocks.pt2');
    const code = `
import sys, torch
class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(32, 64)
        self.fc2 = torch.nn.Linear(64, 32)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(Block(), Block())
        self.head = torch.nn.Linear(32, 10)
    def forward(self, x):
        return self.head(self.encoder(x.view(-1, 16, 32)))
ep = torch.export.export(Net().eval(), (torch.randn(4, 16, 32),), dynamic_shapes=({0: torch.export.Dim('b', min=1, max=64)},))
torch.export.save(ep, sys.argv[1])
`;
    const made = spawnSync(PYTHON, ['-c', code, pt2], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    await nav('model');
    await page.fill('#model-path', pt2);
    await page.press('#model-path', 'Enter');
    await page.waitForFunction((m) => document.querySelector('.model-bar code')?.textContent === m, pt2, { timeout: 120_000 });
    // Its own spec: the dynamic batch under its name and range, never "?".
    const row = await page.locator('[data-testid=inspection] table').first().locator('tbody tr').first().textContent();
    expect(row).toContain('[batch=1..64, 16, 32]');
    expect(row).toContain('float32');
    expect(row).not.toContain('?');
    await plainShots('graph-07-pt2-model-page');
    // The graph knows each op's module path (torch.export's nn_module_stack): search by prefix.
    await nav('graph');
    await page.waitForSelector(NODES, { timeout: 30_000 });
    await page.getByLabel('Search the graph').fill('encoder');
    expect(await page.textContent('[data-testid=graph-matches]')).toBe('6 matches'); // two blocks of fc1, relu, fc2
    await page.getByLabel('Search the graph').fill('encoder.1.fc');
    expect(await page.textContent('[data-testid=graph-matches]')).toBe('2 matches');
    await page.getByLabel('Search the graph').press('Enter');
    expect(await page.textContent('[data-testid=graph-selected]')).toContain('encoder.1.fc1');
    expect(s.pageErrors).toEqual([]);
  }, LONG);

  it('a composite TorchScript node (a traced TransformerEncoderLayer, one node) shows every one of its calls with its time', async () => {
    // Traced without grad, the layer is one aten::_transformer_encoder_layer_fwd node; the build
    // runs it as several calls (projections, attention, feed-forward), each naming that node.
    const enc = join(s.dir, 'encoder.pt');
    const code = `
import sys, torch
torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True).eval()
with torch.no_grad():
    torch.jit.trace(layer, torch.randn(2, 16, 64)).save(sys.argv[1])
`;
    const made = spawnSync(PYTHON, ['-c', code, enc], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    await nav('model');
    await page.fill('#model-path', enc);
    await page.press('#model-path', 'Enter');
    await page.waitForFunction((m) => document.querySelector('.model-bar code')?.textContent === m, enc, { timeout: 120_000 });
    await nav('inputs');
    await page.getByLabel('input 0 dims').fill('2,16,64');
    await nav('compile');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[data-testid=verification-banner], .error-box', { timeout: LONG });
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');
    await nav('graph');
    await colourBy('placement');
    const node = page.locator(`${NODES}[data-op="aten::_transformer_encoder_layer_fwd"]`);
    await page.waitForFunction(() => !!document.querySelector('[data-testid=graph-view] .graph-node[data-op="aten::_transformer_encoder_layer_fwd"][data-where]'), null, { timeout: 30_000 });
    const runs = compileRuns().filter((r) => r.result.model === enc);
    const result = runs[runs.length - 1].result;
    const id = (await node.getAttribute('data-id'))!;
    const calls = result.placement!.ops.filter((o) => o.node === id);
    expect(calls.length).toBeGreaterThan(1);
    expect(Number(await node.getAttribute('data-calls'))).toBe(calls.length);
    await node.click();
    const details = page.locator('[data-testid=graph-selected]');
    const rows = details.locator('[data-testid=node-calls] tr');
    expect(await rows.count()).toBe(calls.length);
    expect(await rows.evaluateAll((els) => els.map((e) => e.querySelector('td.num')!.textContent))).toEqual(calls.map((c) => fmtMs(c.ms)));
    const total = calls.reduce((a, c) => a + (c.ms ?? 0), 0);
    expect(await details.textContent()).toContain(`${fmtMs(total)}`);
    expect(await page.locator(`[data-testid=op-table] tbody tr[data-id="${id}"] td[data-ms]`).textContent()).toBe(fmtMs(total));
    // Coloured by where most of its time runs; where its calls run in several places, the node
    // says so (a striped top, and "mostly" in its details).
    const byWhere = new Map<string, number>();
    for (const c of calls) byWhere.set(c.where, (byWhere.get(c.where) ?? 0) + (c.ms ?? 0));
    const majority = [...byWhere].sort((a, b) => b[1] - a[1])[0][0];
    expect(await node.getAttribute('data-where')).toBe(majority);
    expect(await node.getAttribute('data-mixed')).toBe(byWhere.size > 1 ? '1' : null);
    await shots('graph-12-encoder-composite', '_transformer');
    // Compared with PyTorch, its details list the kernels the placement report does not (TVM's own,
    // such as its layer norms) after its timed calls: every kernel the comparison found in it.
    await colourBy('error');
    await page.click('[data-testid=compare-ops]');
    await page.waitForSelector('[data-testid=error-legend], [data-testid=compare-offer] .error-box', { timeout: LONG });
    expect(await page.getAttribute('[data-testid=error-legend]', 'data-failing')).toBe('0');
    const after = compileRuns().filter((r) => r.result.model === enc);
    const compared = after[after.length - 1].result;
    const kernels = compared.op_comparison!.ops.filter((o) => o.node === id).map((o) => o.op);
    const placedNames = compared.placement!.ops.filter((o) => o.node === id).map((o) => o.name);
    await page.getByLabel('Search the graph').fill('_transformer');
    await page.getByLabel('Search the graph').press('Enter');
    const listed = await details.locator('[data-testid=node-calls] tr code').allTextContents();
    expect(listed).toEqual([...placedNames, ...kernels.filter((k) => !placedNames.includes(k))]);
    expect(new Set(listed)).toEqual(new Set([...kernels, ...placedNames]));
    await shots('graph-13-encoder-composite-error', '_transformer');
    await colourBy('placement');
    expect(s.pageErrors).toEqual([]);
  }, LONG);
});
