// Browser-mode server: token in the URL fragment and the WebSocket handshake (never a cookie),
// loopback only, CSP, validated messages, writes only inside the allowed roots.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { WorkbenchApi } from '../../app/contract/api.js';
import type { JobEvent } from '../../app/contract/jobs.js';
import { startServer, type RunningServer } from '../../app/server/server.js';

// A stand-in for app/core, enough to see calls arrive and events leave (the e2e tests use the real one).
const listeners = new Set<(e: JobEvent) => void>();
const calls: string[] = [];
const started: unknown[] = [];
const api: WorkbenchApi = {
  info: async () => (calls.push('info'), { version: '0', versions: {}, exampleModel: null, platform: 'test', host: 'browser' }),
  startJob: async (req) => (calls.push('startJob'), started.push(req), { job: 'inspect-1' }),
  cancelJob: async () => ({ cancelled: false }),
  trackerQueues: async ({ tracker }) => ({ tracker, keys: [] }),
  waitJob: async ({ job }) => ({ state: 'cancelled', job }),
  listJobs: async () => [],
  readTuningLog: async () => ({ dir: '/', tasks: [], records: 0, failures: 0, estimated_ms: null, skipped: { workload_lines: 0, record_lines: 0, reasons: [] }, targets: [], model: null, named_by: 'index' as const }),
  recentModels: async () => [],
  listRuns: async () => ({ project: '/p', defaults: { work_dir: '/p/tuning', export_path: '/p/exports/m.tvm.pt' }, runs: [] }),
  getRun: async () => {
    throw new Error('no runs here');
  },
  onEvent: (l) => (listeners.add(l), () => listeners.delete(l)),
};

let srv: RunningServer;
let top: string;
beforeAll(async () => {
  top = mkdtempSync(join(tmpdir(), 'torchtvm-srv-'));
  const dir = join(top, 'site');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(dir, 'assets', 'a.js'), 'console.log(1)');
  writeFileSync(join(top, 'secret.txt'), 'secret');
  mkdirSync(join(top, 'allowed'));
  symlinkSync('/etc', join(top, 'allowed', 'etc-link'));
  srv = await startServer({ api, port: 0, rendererDir: dir, allowedRoots: [join(top, 'allowed')] });
});
afterAll(() => srv?.close());

const base = () => `http://127.0.0.1:${srv.port}`;

function openWs(url: string, headers: Record<string, string> = {}, protocols: string[] = []): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(url, protocols, { headers });
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
    expect(srv.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]{32}$/);
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

  it('serves the public page without the token, sets CSP, never sets a cookie, and stays inside its folder', async () => {
    const r = await fetch(srv.url); // the #token fragment is not sent
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toMatch(/default-src 'self'.*script-src 'self'/);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('set-cookie')).toBeNull();
    const asset = await fetch(`${base()}/assets/a.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(asset.headers.get('set-cookie')).toBeNull();
    expect((await fetch(`${base()}/?token=${srv.token}`)).headers.get('set-cookie')).toBeNull();
    const traversal = await fetch(`${base()}/%2e%2e/secret.txt`);
    expect([403, 404]).toContain(traversal.status);
    expect(await traversal.text()).not.toContain('secret');
    expect((await fetch(`${base()}/`, { method: 'POST' })).status).toBe(405);
  });

  it('refuses a request whose Host is not 127.0.0.1 (DNS rebinding)', async () => {
    const status = await new Promise<number>((r) => {
      const s = connect({ host: '127.0.0.1', port: srv.port }, () => s.write(`GET / HTTP/1.1\r\nHost: evil.example:${srv.port}\r\nConnection: close\r\n\r\n`));
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => r(Number(/HTTP\/1.1 (\d+)/.exec(text)?.[1])));
    });
    expect(status).toBe(401);
  });

  it('closes WebSockets without the right token in the handshake, or from another origin', async () => {
    const wsBase = `ws://127.0.0.1:${srv.port}/api`;
    expect(await (await openWs(wsBase)).closed).toBe(4401);
    expect(await (await openWs(wsBase, {}, ['torchtvm', 'torchtvm.token.nope'])).closed).toBe(4401);
    // The token in the URL is not accepted (URLs end up in logs and history).
    expect(await (await openWs(`${wsBase}?token=${srv.token}`, {}, ['torchtvm'])).closed).toBe(4401);
    expect(await (await openWs(wsBase, { Origin: 'http://evil.example' }, ['torchtvm', `torchtvm.token.${srv.token}`])).closed).toBe(4401);
    expect(await (await openWs(wsBase, { Origin: 'http://127.0.0.1:1' }, ['torchtvm', `torchtvm.token.${srv.token}`])).closed).toBe(4401);
    expect(await (await openWs(wsBase, { Authorization: 'Bearer nope' })).closed).toBe(4401);
  });

  it('takes the token as a subprotocol (selecting only the plain one) or as a Bearer header', async () => {
    const viaProtocol = await openWs(`ws://127.0.0.1:${srv.port}/api`, {}, ['torchtvm', `torchtvm.token.${srv.token}`]);
    expect(viaProtocol.ws.protocol).toBe('torchtvm');
    expect(await call(viaProtocol.ws, { type: 'call', id: 1, method: 'listJobs', args: [] })).toMatchObject({ id: 1, ok: true });
    viaProtocol.ws.close();
    const viaHeader = await openWs(`ws://127.0.0.1:${srv.port}/api`, { Authorization: `Bearer ${srv.token}` });
    expect(await call(viaHeader.ws, { type: 'call', id: 2, method: 'listJobs', args: [] })).toMatchObject({ id: 2, ok: true });
    viaHeader.ws.close();
  });

  it('refuses calls that would write outside the allowed roots (symbolic links resolved)', async () => {
    const { ws } = await openWs(`ws://127.0.0.1:${srv.port}/api`, { Authorization: `Bearer ${srv.token}` });
    const job = (extra: Record<string, unknown>) => ({ type: 'call', id: 7, method: 'startJob', args: [{ kind: 'tune', trials: 1, model: join(top, 'm.pt'), inputs: [{ name: 'x', dims: [1], dtype: 'float32' }], ...extra }] });
    const before = calls.length;
    for (const extra of [{ export_path: '/etc/cron.d/x.pt' }, { export_path: join(top, 'allowed', 'etc-link', 'x.pt') }, { export_path: join(top, 'allowed', '..', 'x.pt') }, { out_dir: '/var/tmp/ttvm-out' }, { work_dir: '/' }] as Array<Record<string, string>>) {
      const r = (await call(ws, job(extra))) as { ok: boolean; error: { code: string; message: string } };
      expect(r.ok).toBe(false);
      expect(r.error.code).toBe('path_not_allowed');
      // The refusal names the folders it may write to, and how to add one (keeping those).
      expect(r.error.message).toContain(`is outside the folders this server may write to; choose a path inside one of the folders it may write to: ${srv.roots.join(', ')}.`);
      expect(r.error.message).toContain(`To allow another folder, restart the server with it added: \`torchtvm serve --allow-root ${srv.roots[0]} --allow-root NEW_FOLDER\` (or with TORCHTVM_ALLOWED_ROOTS=${srv.roots[0]}${delimiter}NEW_FOLDER set).`);
    }
    expect(calls.length).toBe(before);
    expect(await call(ws, job({ export_path: join(top, 'allowed', 'sub', 'x.pt'), write_roots: ['/'] }))).toMatchObject({ ok: true });
    expect(calls.at(-1)).toBe('startJob');
    // The job carries the server's own folders for the engine to check again at each write; the
    // client's are replaced.
    expect((started.at(-1) as { write_roots: string[] }).write_roots).toEqual(srv.roots);
    ws.close();
  });

  it('answers validated calls, rejects malformed ones, and pushes events to subscribers', async () => {
    const { ws, closed } = await openWs(`ws://127.0.0.1:${srv.port}/api`, {}, ['torchtvm', `torchtvm.token.${srv.token}`]);
    expect(await call(ws, { type: 'call', id: 1, method: 'info', args: [] })).toMatchObject({ id: 1, ok: true, result: { host: 'browser' } });
    expect(await call(ws, { type: 'call', id: 2, method: 'constructor', args: [] })).toMatchObject({ id: 2, ok: false, error: { code: 'bad_request' } });
    expect(await call(ws, { type: 'call', id: 3, method: 'startJob', args: [{ kind: 'compile', model: 'm.pt', inputs: [{ name: 'x', dims: [0], dtype: 'float32' }] }] })).toMatchObject({ id: 3, ok: false, error: { code: 'bad_request' } });
    expect(calls.filter((c) => c === 'info')).toEqual(['info']);
    expect(calls.filter((c) => c === 'startJob')).toHaveLength(1); // only the allowed one from the test above
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
