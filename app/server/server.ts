// Browser mode: the renderer and the WorkbenchApi served on 127.0.0.1 only, guarded by a random
// token. The page is loaded as http://127.0.0.1:PORT/?token=…; the first authorised request sets
// an HttpOnly, SameSite=Strict cookie so that the page's assets and its WebSocket carry the token
// without it appearing in every URL. Requests without the right token get 401 (HTTP) or a close
// with code 4401 (WebSocket). Every call is checked with validateCall before it reaches app/core.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { validateCall, type WorkbenchApi } from '../contract/api.js';
import { WorkbenchError } from '../contract/errors.js';
import { wireProtocol, type ClientMessage, type ServerMessage } from './protocol.js';

export const LOOPBACK = '127.0.0.1';
const COOKIE = 'torchtvm_token';
const MAX_MESSAGE_BYTES = 1 << 20;

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

export interface ServeOptions {
  api: WorkbenchApi;
  /** 0 picks a free port. */
  port?: number;
  rendererDir: string;
  /** Fixed token (tests); a fresh random one otherwise. */
  token?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  token: string;
  server: Server;
  close(): Promise<void>;
}

export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    // React and recharts set style attributes.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    `connect-src 'self' ws://${LOOPBACK}:${port}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function sameToken(given: string | undefined | null, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieToken(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return v.join('=');
  }
  return undefined;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const root = resolve(opts.rendererDir);
  if (!existsSync(join(root, 'index.html'))) {
    throw new WorkbenchError('not_built', `The renderer is not built (${join(root, 'index.html')} is missing); run "npm run build" first.`);
  }
  let port = 0;
  const allowedHosts = () => new Set([`${LOOPBACK}:${port}`, `localhost:${port}`]);

  /** Token from ?token= or the cookie; also checks Host against DNS rebinding. */
  const authorised = (req: IncomingMessage, url: URL): { ok: boolean; viaQuery: boolean } => {
    if (!allowedHosts().has(req.headers.host ?? '')) return { ok: false, viaQuery: false };
    const q = url.searchParams.get('token');
    if (q !== null) return { ok: sameToken(q, token), viaQuery: true };
    return { ok: sameToken(cookieToken(req), token), viaQuery: false };
  };

  const securityHeaders = (res: ServerResponse) => {
    res.setHeader('Content-Security-Policy', contentSecurityPolicy(port));
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
  };

  const server = createServer((req, res) => {
    securityHeaders(res);
    const url = new URL(req.url ?? '/', `http://${LOOPBACK}`);
    const auth = authorised(req, url);
    if (!auth.ok) {
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('401: open the URL that `torchtvm serve` printed (it carries the access token).\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' });
      res.end();
      return;
    }
    if (auth.viaQuery) res.setHeader('Set-Cookie', `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`);
    let rel: string;
    try {
      rel = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = normalize(join(root, rel));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Not found.\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', `http://${LOOPBACK}`);
    const origin = req.headers.origin;
    const originOk = origin === undefined || allowedHosts().has(origin.replace(/^http:\/\//, ''));
    const ok = url.pathname === '/api' && originOk && authorised(req, url).ok;
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!ok) {
        ws.close(4401, 'unauthorised');
        return;
      }
      serveClient(ws, opts.api);
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, LOOPBACK, () => resolveListen());
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://${LOOPBACK}:${port}/?token=${token}`;
  return {
    url,
    port,
    token,
    server,
    close: () =>
      new Promise<void>((done) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** One WebSocket client: calls answered by id, events pushed while subscribed. */
function serveClient(ws: WebSocket, api: WorkbenchApi): void {
  let unsubscribe: (() => void) | undefined;
  const send = (m: ServerMessage) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  };
  ws.on('message', async (raw, isBinary) => {
    let msg: ClientMessage;
    try {
      if (isBinary) throw new Error('binary');
      msg = wireProtocol.parse(JSON.parse(raw.toString()));
    } catch {
      ws.close(1008, 'malformed message');
      return;
    }
    if (msg.type === 'subscribe') {
      unsubscribe ??= api.onEvent((event) => send({ type: 'event', event }));
      return;
    }
    if (msg.type === 'unsubscribe') {
      unsubscribe?.();
      unsubscribe = undefined;
      return;
    }
    try {
      const { method, args } = validateCall(msg.method, msg.args);
      const fn = api[method] as (...a: unknown[]) => Promise<unknown>;
      const result = await fn.apply(api, args);
      send({ type: 'result', id: msg.id, ok: true, result });
    } catch (e) {
      const err = WorkbenchError.from(e);
      send({ type: 'result', id: msg.id, ok: false, error: err.toJSON() });
    }
  });
  ws.on('close', () => unsubscribe?.());
  ws.on('error', () => unsubscribe?.());
}
