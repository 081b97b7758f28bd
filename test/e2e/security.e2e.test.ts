// Security of the page and of `torchtvm serve`, in Chromium against the real server: no Node in the
// page, the API is exactly the allow-list, tokens are enforced, CSP blocks inline script, loopback
// only, and the token is unreadable from any other local port (two servers side by side, one page).
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, makeTinyModel, pageUrl, serve, shotPath, tempDir, TINY_DIMS, type Served } from './helpers.js';
import { spawnSync } from 'node:child_process';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe.skipIf(!hasChromium())('security (browser mode, Chromium)', () => {
  let server: Served;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    server = await serve({ TORCHTVM_HOME: join(tempDir('torchtvm-sec-'), 'home') });
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage(); // one profile: the two-servers test opens more pages in it
    await page.goto(pageUrl(server, 'testHooks=1'));
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
    expect(methods).toEqual(['cancelJob', 'getRun', 'info', 'listJobs', 'listRuns', 'onEvent', 'readTuningLog', 'recentModels', 'startJob', 'trackerQueues', 'waitJob']);
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

  it('serves the page without a token but gives it no API: the socket is refused and the page says so', async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    const res = (await p.goto(`${origin}/`))!;
    expect(res.status()).toBe(200);
    expect(res.headers()['set-cookie']).toBeUndefined();
    await p.waitForSelector('[data-testid=access-banner]', { timeout: 15_000 });
    expect(await p.textContent('[data-testid=access-banner]')).toContain('This tab has no access token');
    await p.screenshot({ path: shotPath('20-security-no-token') });
    await ctx.close();
  });

  it('closes a WebSocket without the right token, even from the page itself', async () => {
    const code = await page.evaluate((port) => new Promise<number>((r) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/api`, ['torchtvm', 'torchtvm.token.wrong']);
      ws.onclose = (e) => r(e.code);
    }), server.port);
    expect(code).toBe(4401);
    // The page's own address no longer shows the token (moved to this origin's sessionStorage).
    expect(await page.evaluate(() => location.href)).not.toContain(server.token);
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
      const ws = new WebSocket(`ws://${location.host}/api`, ['torchtvm', `torchtvm.token.${token}`]);
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

  it('keeps the token unreadable from another local port: two servers side by side, one page, and a third service', async () => {
    // Another local service: records every request it gets and serves a page that looks for tokens.
    const seen: IncomingHttpHeaders[] = [];
    const spy = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>spy</title><p>other service</p>');
    });
    await new Promise<void>((r) => spy.listen(0, '127.0.0.1', () => r()));
    const spyUrl = `http://127.0.0.1:${(spy.address() as AddressInfo).port}/`;
    const second = await serve({ TORCHTVM_HOME: join(tempDir('torchtvm-sec2-'), 'home') });
    const ctx = page.context(); // one browser profile for everything below
    try {
      // The second server's page opens in the same browser, beside the first one.
      const pageB = await ctx.newPage();
      await pageB.goto(pageUrl(second, 'testHooks=1'));
      await pageB.waitForSelector('nav');
      expect(second.token).not.toBe(server.token);
      // Neither overwrote the other: each page still holds its own token and its own API works.
      const callOwn = (p: Page) => p.evaluate(() => new Promise<{ ok: boolean }>((r) => {
        const token = sessionStorage.getItem('torchtvm.token');
        const ws = new WebSocket(`ws://${location.host}/api`, ['torchtvm', `torchtvm.token.${token}`]);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'call', id: 1, method: 'listJobs', args: [] }));
        ws.onmessage = (m) => (r(JSON.parse(String(m.data))), ws.close());
        ws.onclose = (e) => r({ ok: false, code: e.code } as never);
      }));
      expect(await page.evaluate(() => sessionStorage.getItem('torchtvm.token'))).toBe(server.token);
      expect(await pageB.evaluate(() => sessionStorage.getItem('torchtvm.token'))).toBe(second.token);
      expect(await callOwn(page)).toMatchObject({ ok: true });
      expect(await callOwn(pageB)).toMatchObject({ ok: true });
      // From the second server's origin (another port), the first one's token is nowhere to be read.
      const fromB = await pageB.evaluate(() => ({ cookie: document.cookie, storage: JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }), href: location.href }));
      expect(fromB.cookie).toBe('');
      expect(JSON.stringify(fromB)).not.toContain(server.token);
      // A third local service, reached from the workbench page by a redirect and opened directly: it
      // receives no cookie, no Referer and no token, and its page can read none.
      await page.evaluate((u) => (location.href = u), spyUrl);
      await page.waitForURL(spyUrl);
      const spyPage = await ctx.newPage();
      await spyPage.goto(spyUrl);
      for (const p of [page, spyPage]) {
        const inside = await p.evaluate(() => document.cookie + JSON.stringify({ ...sessionStorage }) + JSON.stringify({ ...localStorage }) + location.href);
        expect(inside).not.toContain(server.token);
        expect(inside).not.toContain(second.token);
      }
      // The other service's page (no CSP of ours there) cannot use the workbench's socket either:
      // without the token, and from a foreign origin, it is refused.
      const fromSpy = await spyPage.evaluate((portA) => new Promise<number | string>((r) => {
        const ws = new WebSocket(`ws://127.0.0.1:${portA}/api`, ['torchtvm']);
        ws.onclose = (e) => r(e.code);
        setTimeout(() => r('no answer'), 10_000);
      }), server.port);
      expect(fromSpy).toBe(4401);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      for (const h of seen) {
        expect(h.cookie).toBeUndefined();
        expect(JSON.stringify(h)).not.toContain(server.token);
        expect(JSON.stringify(h)).not.toContain(second.token);
      }
      await spyPage.screenshot({ path: shotPath('21-security-other-port') });
      // Back on the first server, a reload in the same tab finds its token again (this origin's storage).
      await page.goBack();
      await page.waitForSelector('nav');
      expect(await callOwn(page)).toMatchObject({ ok: true });
      await pageB.close();
      await spyPage.close();
    } finally {
      await second.stop();
      spy.closeAllConnections(); // the browser keeps its connection alive
      await new Promise((r) => spy.close(r));
    }
  });

  it('listens on 127.0.0.1 only', () => {
    expect(server.url.startsWith('http://127.0.0.1:')).toBe(true);
    const ss = spawnSync('ss', ['-ltnH', `sport = :${server.port}`], { encoding: 'utf8' });
    if (ss.status === 0 && ss.stdout.trim()) {
      for (const line of ss.stdout.trim().split('\n')) expect(line).toContain(`127.0.0.1:${server.port}`);
    }
  });

  // These open models (inspect jobs): after the test above that expects the server to have run no job yet.
  it('makes a tab without a token read-only: a banner says how to get a link that works, and no button that would fail is enabled', async () => {
    // The case: the workbench is open with its token in one tab (a model open), and a second
    // tab is opened from the address bar. It shares the first one's localStorage (the last model and
    // its inspection) but not its sessionStorage (the token).
    const dir = tempDir('torchtvm-sec-ro-');
    const model = makeTinyModel(dir);
    const ctx = await browser.newContext({ viewport: { width: 1024, height: 700 } });
    try {
      const withToken = await ctx.newPage();
      await withToken.goto(server.url);
      await withToken.fill('#model-path', model);
      await withToken.press('#model-path', 'Enter');
      await withToken.waitForFunction((m) => document.querySelector('.model-bar code')?.textContent === m, model, { timeout: 120_000 });
      expect(await withToken.locator('[data-testid=access-banner]').count()).toBe(0);
      const errors: string[] = [];
      const p = await ctx.newPage();
      p.on('pageerror', (e) => errors.push(String(e)));
      await p.goto(`http://127.0.0.1:${server.port}/`);
      await p.waitForSelector('[data-testid=access-banner]');
      const banner = (await p.textContent('[data-testid=access-banner]'))!;
      expect(banner).toContain('Read-only');
      expect(banner).toContain('This tab has no access token');
      // How to get a link that works: the URL serve printed, with the token in its fragment.
      expect(banner).toContain(`http://127.0.0.1:${server.port}/#token=`);
      expect(banner).toContain('torchtvm serve');
      expect(banner).toContain('every button on the page is disabled');
      // The model this browser had open is shown (from its own storage), read-only.
      await p.waitForFunction((m) => document.querySelector('.model-bar code')?.textContent === m, model, { timeout: 30_000 });
      const enabled = () => p.locator('main').evaluate((m) => [...m.querySelectorAll('button, input, select, textarea')].filter((e) => !e.matches(':disabled')).map((e) => e.outerHTML.slice(0, 120)));
      const isDisabled = (sel: string) => p.locator(sel).evaluate((e) => e.matches(':disabled'));
      for (const view of ['model', 'graph', 'inputs', 'compile', 'tune', 'logs', 'bench', 'export']) {
        await p.click(`nav [data-view="${view}"]`);
        await p.waitForSelector(`nav [data-view="${view}"][aria-current=page]`);
        expect({ view, enabled: await enabled() }).toEqual({ view, enabled: [] });
      }
      await p.click('nav [data-view="compile"]');
      expect(await isDisabled('[data-testid=compile-button]')).toBe(true);
      await p.click('nav [data-view="tune"]');
      expect(await isDisabled('[data-testid=tune-start]')).toBe(true);
      await p.click('nav [data-view="export"]');
      expect(await isDisabled('[data-testid=export-button]')).toBe(true);
      // Ctrl+E (export) does nothing either: no job was started, so no refusal to show.
      await p.keyboard.press('Control+e');
      await p.waitForTimeout(300);
      expect(await p.locator('[data-testid=export-refusal], .error-box').count()).toBe(0);
      // Navigation and the theme still work: they need no server.
      expect(await p.locator('nav button:disabled').count()).toBe(0);
      for (const [w, h] of [[1024, 700], [1920, 1080]]) {
        await p.setViewportSize({ width: w, height: h });
        for (const theme of ['light', 'dark']) {
          await p.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
          await p.screenshot({ path: shotPath(`22-security-read-only-${theme}-${w}x${h}`) });
        }
      }
      expect(errors).toEqual([]);
      // The tab with the token is unaffected.
      expect(await withToken.locator('[data-testid=access-banner]').count()).toBe(0);
    } finally {
      await ctx.close();
    }
  });

  it('refuses an export outside the allowed folders with a message that names them and how to add one', async () => {
    const dir = tempDir('torchtvm-sec-roots-');
    const model = makeTinyModel(dir);
    const ctx = await browser.newContext({ viewport: { width: 1024, height: 700 } });
    try {
      const p = await ctx.newPage();
      await p.goto(server.url);
      await p.fill('#model-path', model);
      await p.press('#model-path', 'Enter');
      await p.waitForFunction((m) => document.querySelector('.model-bar code')?.textContent === m, model, { timeout: 120_000 });
      await p.click('nav [data-view="inputs"]');
      await p.getByLabel('input 0 dims').fill(TINY_DIMS); // a saved TorchScript model keeps no input shapes
      await p.click('nav [data-view="export"]');
      const outside = '/var/tmp/torchtvm-not-allowed/model_tvm.pt'; // the server may write under the temp folder and its home only
      await p.getByLabel('Export path').fill(outside);
      await p.click('[data-testid=export-button]');
      const refusal = p.locator('[data-testid=export-refusal][data-code=path_not_allowed]');
      await refusal.waitFor({ timeout: 60_000 });
      const text = (await refusal.textContent())!;
      expect(text).toContain(outside);
      expect(text).toContain(realpathSync(tmpdir())); // the allowed folder, named
      expect(text).toContain('--allow-root');
      expect(text).toContain('TORCHTVM_ALLOWED_ROOTS');
      for (const theme of ['light', 'dark']) {
        await p.evaluate((t) => document.documentElement.setAttribute('data-theme', t), theme);
        await p.screenshot({ path: shotPath(`23-security-export-not-allowed-${theme}-1024x700`) });
      }
    } finally {
      await ctx.close();
    }
  });
});
