// The graph view of a small MobileNet (a stem, two depthwise-separable blocks), compiled by the real
// engine in browser mode: where placement ran a depthwise convolution and its 1x1 convolution as one
// call (torchtvm.depthwise_pointwise, taken only where it timed faster here), the 1x1 node is drawn
// inside that call and the depthwise node's details show the call with both of its times.
// Screenshots in both themes at 1024×700 and 1920×1080 go to test-artifacts/screenshots/.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { hasChromium, openModel, openSession, PYTHON, type Session, setInput, shotPath, tempDir } from './helpers.js';

const LONG = 8 * 60_000;
const CONVS = '[data-testid=graph-view] .graph-node[data-op="aten::_convolution"]';

function makeMobileNet(dir: string): string {
  const out = join(dir, 'mobile.pt');
  const code = `
import sys, torch, torch.nn as nn
torch.manual_seed(0)
def block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.ReLU6(), nn.Conv2d(cin, cout, 1), nn.Hardswish())
m = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU6(), block(16, 32, 1), block(32, 64, 2)).eval()
torch.jit.save(torch.jit.trace(m, torch.randn(2, 3, 64, 64)), sys.argv[1])
`;
  const r = spawnSync(PYTHON, ['-c', code, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making the model failed: ${r.stderr}`);
  return out;
}

describe.skipIf(!hasChromium())('graph view of a depthwise + 1x1 pair run as one call (browser mode, real engine)', () => {
  let s: Session;
  let page: Page;
  let model: string;

  beforeAll(async () => {
    model = makeMobileNet(tempDir('torchtvm-pairs-'));
    s = await openSession({ prefix: 'torchtvm-graph-pairs-' });
    page = s.page;
  });

  afterAll(async () => {
    await s?.close();
  });

  const nav = (view: string) => page.click(`nav [data-view="${view}"]`);

  it('compiles the model and draws each pair as one library call', async () => {
    await page.waitForSelector('.empty h3', { timeout: 30_000 }); // the app is up
    await page.keyboard.press('Control+o');
    await page.waitForFunction(() => document.activeElement?.id === 'model-path', null, { timeout: 5_000 });
    await openModel(page, model);
    await nav('inputs');
    await setInput(page, 'x', '2,3,64,64', 'float32');
    await nav('compile');
    await page.click('[data-testid=compile-button]');
    await page.waitForSelector('[data-testid=verification-banner], .error-box', { timeout: LONG });
    expect(await page.textContent('[data-testid=verification-banner]')).toContain('Verification OK');

    await nav('graph');
    await page.waitForSelector(`${CONVS}[data-where]`, { timeout: 60_000 });
    const convs = page.locator(CONVS);
    expect(await convs.count()).toBe(5);
    // Every convolution runs in the library, in a call of its own or inside its pair's.
    expect(await convs.evaluateAll((els) => els.map((e) => e.getAttribute('data-where')))).toEqual(Array(5).fill('library'));
    const fused = await convs.evaluateAll((els) => els.map((e) => e.getAttribute('data-fused') === '1'));
    // The stem and the depthwise convolutions own their calls; a 1x1 convolution is fused exactly
    // where placement took the pair as one call (timed here), and then its depthwise node shows it.
    expect([fused[0], fused[1], fused[3]]).toEqual([false, false, false]);
    for (const [dw, pw] of [[1, 2], [3, 4]]) {
      await convs.nth(dw).click();
      const details = (await page.textContent('[data-testid=graph-selected]'))!;
      // The call's epilogue lists the 1x1 convolution, and its times include the two calls it replaced.
      expect(details.includes('1x1 conv')).toBe(fused[pw]);
      expect(/two calls \d/.test(details)).toBe(fused[pw]);
    }
    await convs.nth(1).click();
    for (const [w, h] of [[1024, 700], [1920, 1080]]) {
      await page.setViewportSize({ width: w, height: h });
      for (const theme of ['light', 'dark']) {
        await page.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        await page.screenshot({ path: shotPath(`graph-18-mobilenet-pair-${theme}-${w}x${h}`) });
      }
    }
  }, LONG);
});
