// The graph view on the bundled ResNet-18, against the real engine: per-op output shapes from the
// pre-filled input (1×3×224×224 float32), then a compile (placement auto, no tuning) and the
// placement colours matched by identity: every convolution in a library kernel (with its
// BatchNorm, residual add and ReLU fused into the call), pooling and flatten in TVM kernels.
// Screenshots in both themes at 1024×700 and 1920×1080 go to test-artifacts/screenshots/.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hasChromium, openSession, PYTHON, shotPath, type Session } from './helpers.js';

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

  async function shots(name: string) {
    for (const [w, h] of [[1024, 700], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      for (const theme of ['light', 'dark']) {
        await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        // Centre the first max-pool: the stem, the first residual block and its skip edge show.
        await page.getByLabel('Search the graph').fill('max_pool2d');
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
    // The max pool runs PyTorch's kernel too (by identity); the rest runs in TVM's own kernels.
    expect(await page.locator(`${NODES}[data-op="aten::max_pool2d"]`).evaluateAll((els) => els.map((e) => `${e.getAttribute('data-where')}/${e.getAttribute('data-match')}`))).toEqual(['library/id']);
    for (const op of ['aten::adaptive_avg_pool2d', 'aten::flatten']) expect(await whereOf(op)).toEqual(['tvm']);
    expect(await page.textContent('[data-testid=graph-legend]')).toMatch(/library kernel \(oneDNN\/MKL\) \(22 ops \+ 45 fused; \d+% of the time\).*TVM kernel \(2 ops; \d+% of the time\)/); // 20 convs + max pool + fc; 20 BN, 17 ReLU, 8 adds
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
});
