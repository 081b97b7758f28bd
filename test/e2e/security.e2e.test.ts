// Security of the page and of `torchtvm serve`, in Chromium against the real server: no Node in the
// page, the API is exactly the allow-list, tokens are enforced, CSP blocks inline script, loopback only.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, serve, shotPath, tempDir, type Served } from './helpers.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

describe.skipIf(!hasChromium())('security (browser mode, Chromium)', () => {
  let server: Served;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    server = await serve({ TORCHTVM_HOME: join(tempDir('torchtvm-sec-'), 'home') });
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${server.url}&testHooks=1`);
    await page.waitForSelector('nav');
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('gives the page no Node: require, process, module and Buffer are undefined', async () => {
    expect(await page.evaluate(() => [typeof (globalThis as any).require, typeof (globalThis as any).process, typeof (globalThis as any).module, typeof (globalThis as any).Buffer])).toEqual(['undefined', 'undefined', 'undefined', 'undefined']);
  });

  it('exposes exactly the allow-list (and no window.workbench in a plain browser)', async () => {
    const { keys, methods, bridge } = await page.evaluate(() => {
      const t = (window as any).__torchtvmTest;
      return { keys: t.apiKeys(), methods: t.apiMethods(), bridge: typeof (window as any).workbench };
    });
    expect(keys).toEqual(methods);
    expect(methods).toEqual(['cancelJob', 'getRun', 'info', 'listJobs', 'listRuns', 'onEvent', 'readTuningLog', 'recentModels', 'startJob', 'waitJob']);
    expect(bridge).toBe('undefined');
  });

  it('sends the CSP header and blocks inline script', async () => {
    const res = await page.request.get(server.url);
    expect(res.headers()['content-security-policy']).toContain("script-src 'self'");
    const ran = await page.evaluate(async () => {
      (window as any).__inlineRan = false;
      const s = document.createElement('script');
      s.textContent = 'window.__inlineRan = true';
      document.body.appendChild(s);
      await new Promise((r) => setTimeout(r, 100));
      return (window as any).__inlineRan;
    });
    expect(ran).toBe(false);
  });

  it('refuses HTTP without the token or with a wrong one', async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const ctx = await browser.newContext(); // no cookie
    const p = await ctx.newPage();
    expect((await p.goto(`${origin}/`))!.status()).toBe(401);
    expect((await p.goto(`${origin}/?token=not-the-token`))!.status()).toBe(401);
    await p.screenshot({ path: shotPath('20-security-401') });
    await ctx.close();
  });

  it('closes a WebSocket without the right token, even from the page itself', async () => {
    // The page's HttpOnly cookie rides along on same-origin sockets: use a wrong token explicitly.
    const code = await page.evaluate((port) => new Promise<number>((r) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api?token=wrong`);
      ws.onclose = (e) => r(e.code);
    }), server.port);
    expect(code).toBe(4401);
    // From another origin (no cookie, no token) the socket never opens.
    const other = await browser.newPage();
    await other.goto('about:blank');
    const opened = await other.evaluate((port) => new Promise<boolean>((r) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api`);
      let open = false;
      ws.onopen = () => (open = true);
      ws.onclose = () => r(open);
      ws.onerror = () => setTimeout(() => r(open), 100);
      setTimeout(() => r(open), 5000);
    }), server.port);
    expect(opened).toBe(false);
    await other.close();
  });

  it('validates calls coming over the socket', async () => {
    const replies = await page.evaluate(async (token) => {
      const ws = new WebSocket(`ws://${location.host}/api?token=${token}`);
      await new Promise((r) => (ws.onopen = r));
      const ask = (msg: unknown) => new Promise<any>((r) => {
        ws.onmessage = (m) => r(JSON.parse(String(m.data)));
        ws.send(JSON.stringify(msg));
      });
      const out = [
        await ask({ type: 'call', id: 1, method: 'startJob', args: [{ kind: 'shell', cmd: 'id' }] }),
        await ask({ type: 'call', id: 2, method: 'constructor', args: [] }),
        await ask({ type: 'call', id: 3, method: 'cancelJob', args: [{ job: 'x', extra: 1 }] }),
        await ask({ type: 'call', id: 4, method: 'listJobs', args: [] }),
      ];
      ws.close();
      return out;
    }, server.token);
    expect(replies.slice(0, 3).map((r) => [r.ok, r.error.code])).toEqual([[false, 'bad_request'], [false, 'bad_request'], [false, 'bad_request']]);
    expect(replies[3]).toMatchObject({ id: 4, ok: true, result: [] });
  });

  it('listens on 127.0.0.1 only', () => {
    expect(server.url.startsWith('http://127.0.0.1:')).toBe(true);
    const ss = spawnSync('ss', ['-ltnH', `sport = :${server.port}`], { encoding: 'utf8' });
    if (ss.status === 0 && ss.stdout.trim()) {
      for (const line of ss.stdout.trim().split('\n')) expect(line).toContain(`127.0.0.1:${server.port}`);
    }
  });
});
