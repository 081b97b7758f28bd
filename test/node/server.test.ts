// Browser-mode server: token on HTTP and WebSocket, loopback only, CSP, validated messages.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { WorkbenchApi } from '../../app/contract/api.js';
import type { JobEvent } from '../../app/contract/jobs.js';
import { startServer, type RunningServer } from '../../app/server/server.js';

// A stand-in for app/core, enough to see calls arrive and events leave (the e2e tests use the real one).
const listeners = new Set<(e: JobEvent) => void>();
const calls: string[] = [];
const api: WorkbenchApi = {
  info: async () => (calls.push('info'), { version: '0', versions: {}, exampleModel: null, platform: 'test', host: 'browser' }),
  startJob: async () => (calls.push('startJob'), { job: 'inspect-1' }),
  cancelJob: async () => ({ cancelled: false }),
  waitJob: async ({ job }) => ({ state: 'succeeded', job, result: {} }),
  listJobs: async () => [],
  readTuningLog: async () => ({}),
  recentModels: async () => [],
  listRuns: async () => ({ project: '/p', defaults: { workDir: '/p/tuning', exportPath: '/p/exports/m.tvm.pt' }, runs: [] }),
  getRun: async () => {
    throw new Error('no runs here');
  },
  onEvent: (l) => (listeners.add(l), () => listeners.delete(l)),
};

let srv: RunningServer;
beforeAll(async () => {
  const top = mkdtempSync(join(tmpdir(), 'torchtvm-srv-'));
  const dir = join(top, 'site');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(dir, 'assets', 'a.js'), 'console.log(1)');
  writeFileSync(join(top, 'secret.txt'), 'secret');
  srv = await startServer({ api, port: 0, rendererDir: dir });
});
afterAll(() => srv?.close());

const base = () => `http://127.0.0.1:${srv.port}`;

function openWs(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(url, { headers });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  return new Promise((ok, fail) => {
    ws.on('open', () => ok({ ws, closed }));
    ws.on('error', fail);
  });
}

function call(ws: WebSocket, msg: unknown): Promise<Record<string, unknown>> {
  return new Promise((ok) => {
    const on = (d: WebSocket.RawData) => {
      const m = JSON.parse(String(d));
      if (m.type === 'result') {
        ws.off('message', on);
        ok(m);
      }
    };
    ws.on('message', on);
    ws.send(JSON.stringify(msg));
  });
}

describe('browser-mode server', () => {
  it('prints a 127.0.0.1 URL with a long random token and binds loopback only', async () => {
    expect(srv.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
    expect((srv.server.address() as { address: string }).address).toBe('127.0.0.1');
    const others = Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal).map((a) => a!.address);
    for (const addr of others) {
      const refused = await new Promise<boolean>((r) => {
        const s = connect({ host: addr, port: srv.port });
        s.on('connect', () => (s.destroy(), r(false)));
        s.on('error', () => r(true));
      });
      expect(refused, `reachable on ${addr}`).toBe(true);
    }
  });

  it('refuses HTTP without the token or with a wrong one', async () => {
    expect((await fetch(`${base()}/`)).status).toBe(401);
    expect((await fetch(`${base()}/?token=wrong`)).status).toBe(401);
    expect((await fetch(`${base()}/?token=${srv.token.slice(0, -1)}x`)).status).toBe(401);
    expect((await fetch(`${base()}/assets/a.js`)).status).toBe(401);
  });

  it('serves with the token, sets CSP and an HttpOnly cookie, and stays inside its folder', async () => {
    const r = await fetch(srv.url);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toMatch(/default-src 'self'.*script-src 'self'/);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const cookie = r.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const withCookie = await fetch(`${base()}/assets/a.js`, { headers: { cookie: cookie.split(';')[0] } });
    expect(withCookie.status).toBe(200);
    expect(withCookie.headers.get('content-type')).toMatch(/javascript/);
    const traversal = await fetch(`${base()}/%2e%2e/secret.txt?token=${srv.token}`);
    expect([403, 404]).toContain(traversal.status);
    expect(await traversal.text()).not.toContain('secret');
    expect((await fetch(`${base()}/`, { method: 'POST', headers: { cookie: cookie.split(';')[0] } })).status).toBe(405);
  });

  it('refuses a request whose Host is not 127.0.0.1 (DNS rebinding)', async () => {
    const status = await new Promise<number>((r) => {
      const s = connect({ host: '127.0.0.1', port: srv.port }, () => s.write(`GET /?token=${srv.token} HTTP/1.1\r\nHost: evil.example:${srv.port}\r\nConnection: close\r\n\r\n`));
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => r(Number(/HTTP\/1.1 (\d+)/.exec(text)?.[1])));
    });
    expect(status).toBe(401);
  });

  it('closes WebSockets without the right token, or from another origin', async () => {
    const wsBase = `ws://127.0.0.1:${srv.port}/api`;
    expect(await (await openWs(wsBase)).closed).toBe(4401);
    expect(await (await openWs(`${wsBase}?token=nope`)).closed).toBe(4401);
    expect(await (await openWs(`${wsBase}?token=${srv.token}`, { Origin: 'http://evil.example' })).closed).toBe(4401);
  });

  it('answers validated calls, rejects malformed ones, and pushes events to subscribers', async () => {
    const { ws, closed } = await openWs(`ws://127.0.0.1:${srv.port}/api?token=${srv.token}`);
    expect(await call(ws, { type: 'call', id: 1, method: 'info', args: [] })).toMatchObject({ id: 1, ok: true, result: { host: 'browser' } });
    expect(await call(ws, { type: 'call', id: 2, method: 'constructor', args: [] })).toMatchObject({ id: 2, ok: false, error: { code: 'bad_request' } });
    expect(await call(ws, { type: 'call', id: 3, method: 'startJob', args: [{ kind: 'compile', model: 'm.pt', inputs: [] }] })).toMatchObject({ id: 3, ok: false, error: { code: 'bad_request' } });
    expect(calls).toEqual(['info']);
    ws.send(JSON.stringify({ type: 'subscribe' }));
    await new Promise((r) => setTimeout(r, 50));
    const got = new Promise((r) => ws.once('message', (d) => r(JSON.parse(String(d)))));
    listeners.forEach((l) => l({ event: 'log', job: 'j', data: { level: 'info', message: 'hi' } }));
    expect(await got).toEqual({ type: 'event', event: { event: 'log', job: 'j', data: { level: 'info', message: 'hi' } } });
    ws.send('{"type":"call","id":"x"}');
    expect(await closed).toBe(1008);
    await new Promise((r) => setTimeout(r, 50));
    expect(listeners.size).toBe(0);
  });
});
