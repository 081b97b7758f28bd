// The Targets page (issue 25) in the browser against the real engine and TVM's own RPC tracker, all
// on 127.0.0.1: a tracker and two `torchtvm.remote.server`s of key "pair" started here (each in its
// own process group, all killed at the end). The page lists the tracker's queues (servers, free,
// busy, pending), asks the key's servers for their CPU, says that the protocol has no
// authentication, and picks the key for tuning (the Tune page says where trials are measured).
// The Benchmark page then measures on that key: the model is uploaded to one of its servers, timed
// there, and the figures name the server (issue 25, "benchmark on the target").
// Screenshots in light and dark.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, makeTinyModel, openModel, openSession, PYTHON, ROOT, type Session, setInput, shotPath } from './helpers.js';

const started: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

function start(args: string[], waitFor: RegExp): Promise<ChildProcess> {
  const p = spawn(PYTHON, args, { cwd: join(ROOT, 'native/engine'), detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  started.push(p);
  let text = '';
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${args.join(' ')} did not start in 120 s:\n${text}`)), 120_000);
    const check = (d: Buffer) => {
      text += d.toString();
      if (waitFor.test(text)) {
        clearTimeout(timer);
        ok(p);
      }
    };
    p.stdout!.on('data', check);
    p.stderr!.on('data', check);
    p.on('exit', (code) => fail(new Error(`${args.join(' ')} exited with ${code}:\n${text}`)));
  });
}

describe.skipIf(!hasChromium())('Targets page (browser mode, real tracker and servers on loopback)', () => {
  let session: Session;
  let page: Page;
  let tracker: string;

  beforeAll(async () => {
    const port = await freePort();
    tracker = `127.0.0.1:${port}`;
    await start(['-m', 'tvm.exec.rpc_tracker', '--host', '127.0.0.1', '--port', String(port), '--port-end', String(port + 1)], /bind to/);
    for (const name of ['pair-a', 'pair-b']) {
      const p = await freePort();
      await start(['-m', 'torchtvm.remote.server', '--tracker', tracker, '--key', 'pair', '--port', String(p), '--port-end', String(p + 1), '--name', name], /"event": "listening"/);
    }
    session = await openSession({ prefix: 'torchtvm-targets-', viewport: { width: 1280, height: 900 } });
    page = session.page;
  }, 300_000);

  afterAll(async () => {
    await session?.close();
    // Each in its own process group: the servers' forked sessions go with them.
    for (const p of started) {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });

  it('lists the queues, checks the key\'s CPU and picks it for tuning', async () => {
    await page.click('nav [data-view="targets"]');
    expect(await page.textContent('[data-testid=no-auth-note]')).toMatch(/no authentication/);
    expect(await page.isChecked('[data-testid=target-local]')).toBe(true);
    await page.getByLabel('Tracker address').fill(tracker);
    // Both servers registered (each pings the tracker on start).
    for (let i = 0; i < 40; i++) {
      await page.click('[data-testid=list-queues]');
      await page.waitForSelector('[data-testid=tracker-queues], [data-testid=no-queues], .error-box', { timeout: 60_000 });
      const row = await page.locator('[data-testid=tracker-queues] tbody tr').first().textContent().catch(() => '');
      if (row && /^pair\S*2/.test(row) && (row.match(/127\.0\.0\.1:/g) ?? []).length === 2) break;
      await page.waitForTimeout(1000);
    }
    const cells = await page.$$eval('[data-testid=tracker-queues] tbody tr:first-child td', (tds) => tds.map((t) => t.textContent));
    expect(cells.slice(1, 5)).toEqual(['2', '2', '0', '0']);
    expect(cells[0]).toMatch(/^pair127\.0\.0\.1:/);
    await page.click('[data-testid=check-pair]');
    await page.waitForSelector('[data-testid=probe-pair] table', { timeout: 60_000 });
    const servers = await page.$$eval('[data-testid=probe-pair] tbody tr td:first-child', (tds) => tds.map((t) => t.textContent).sort());
    expect(servers).toEqual(['pair-a', 'pair-b']);
    expect(await page.textContent('[data-testid=probe-pair]')).toMatch(/"kind":"llvm","mcpu":"/);
    await page.click('[data-testid=use-pair]');
    expect(await page.getAttribute('[data-testid=use-pair]', 'aria-pressed')).toBe('true');
    expect(await page.textContent('[data-testid=current-target]')).toContain(`key pair at tracker ${tracker}`);
  }, 300_000);

  it('benchmarks on a server of the picked key, and the figures say which one measured them', async () => {
    const model = makeTinyModel(session.dir);
    await page.click('nav [data-view="model"]');
    await openModel(page, model);
    await page.click('nav [data-view="inputs"]');
    await setInput(page, 'x', '4,32', 'float32');
    await page.click('nav [data-view="bench"]');
    // The key picked on the Targets page, with a way back to this machine, and the protocol's warning.
    expect(await page.isChecked('[data-testid=bench-target-remote]')).toBe(true);
    expect(await page.textContent('[data-testid=bench-target]')).toContain(`key pair at tracker ${tracker}`);
    expect(await page.textContent('[data-testid=bench-no-auth]')).toMatch(/no authentication/);
    await page.click('[data-testid=bench-target-local]');
    expect(await page.locator('[data-testid=bench-no-auth]').count()).toBe(0);
    await page.click('[data-testid=bench-target-remote]');
    await page.getByLabel('Iterations').fill('50');
    await page.click('[data-testid=bench-run]');
    await page.waitForSelector('[data-testid=bench-measured-on][data-remote=true] b', { timeout: 180_000 });
    await page.waitForSelector('[data-testid=bench-table]', { timeout: 60_000 });
    const where = await page.textContent('[data-testid=bench-measured-on]');
    expect(where).toMatch(new RegExp(`^Measured on pair-[ab] \\(.+\\), key pair at tracker ${tracker.replace(/\./g, '\\.')}`));
    const cells = await page.$$eval('[data-testid=bench-table] tbody tr:first-child td', (tds) => tds.map((t) => t.textContent));
    expect(cells[0]).toBe('tiny.pt');
    expect(cells[1]).toMatch(/^pair-[ab]$/);
    expect(cells[2]).toBe('50');
    expect(cells[3]).toMatch(/\d/); // p50
  }, 300_000);

  it('screenshots: light and dark', async () => {
    for (const view of ['targets', 'bench'] as const) {
      await page.click(`nav [data-view="${view}"]`);
      for (const theme of ['light', 'dark'] as const) {
        await page.evaluate((t) => { document.documentElement.dataset.theme = t; }, theme);
        for (const width of [1280, 800]) {
          await page.setViewportSize({ width, height: 900 });
          await page.waitForTimeout(300);
          await page.screenshot({ path: shotPath(`${view === 'bench' ? 'bench-remote' : 'targets'}-${theme}-${width}`), fullPage: true });
        }
      }
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    expect(session.pageErrors).toEqual([]);
  }, 120_000);
});
