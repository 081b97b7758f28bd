// Browser mode: the renderer and the WorkbenchApi served on 127.0.0.1 only, guarded by a random
// token. The page is loaded as http://127.0.0.1:PORT/#token=…: a URL fragment never leaves the
// browser, so the token is sent to no server at all when the page loads, and no cookie is set
// (a cookie for 127.0.0.1 would be sent to every local port, i.e. to every other local service).
// The page keeps the token in its own sessionStorage (scoped to this origin, port included) and
// sends it only in the WebSocket handshake, as the subprotocol `torchtvm.token.<token>`; other
// clients may send `Authorization: Bearer <token>` instead. The static files are the public
// renderer bundle and need no token. A socket without the right token is closed with code 4401.
// Every call is checked with validateCall before it reaches app/core, and calls that write files
// (export paths, build folders, tuning work dirs) must name a path inside an allowed root.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, extname, join, normalize, resolve, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { validateCall, type WorkbenchApi } from '../contract/api.js';
import { WorkbenchError } from '../contract/errors.js';
import { JobRequestSchema } from '../contract/jobs.js';
import { isInside, realPathOfTarget } from '../core/output-paths.js';
import { workbenchHome } from '../core/paths.js';
import { wireProtocol, type ClientMessage, type ServerMessage } from './protocol.js';

export const LOOPBACK = '127.0.0.1';
/** The WebSocket subprotocol the server selects; the token rides in a second one, TOKEN_PROTOCOL + token. */
export const WS_PROTOCOL = 'torchtvm';
export const TOKEN_PROTOCOL = 'torchtvm.token.';
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
  /**
   * Folders that calls may write into (export paths, build folders, tuning work dirs). Default: the
   * TORCHTVM_ALLOWED_ROOTS environment variable (folders separated by ':'), else the user's home;
   * the workbench home (project folders) is always allowed.
   */
  allowedRoots?: string[];
}

/** The folders a server lets calls write into: the given ones (or $TORCHTVM_ALLOWED_ROOTS, or the home folder) and the workbench home. */
export function writeRoots(given?: string[]): string[] {
  const fromEnv = (process.env.TORCHTVM_ALLOWED_ROOTS ?? '').split(delimiter).filter(Boolean);
  const roots = given?.length ? given : fromEnv.length ? fromEnv : [homedir()];
  return [...new Set([...roots, workbenchHome()].map((r) => realPathOfTarget(r)))];
}

/** `p` as one shell word. */
const shellWord = (p: string) => (/^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`);

/**
 * The refusal of a write outside the allowed folders: names them, and how to allow another one (the
 * command to restart with, keeping the folders allowed now). After "; choose" it stands alone: the
 * app's Export page shows that part under its own heading.
 */
export function notAllowed(what: string, roots: string[]): string {
  const home = realPathOfTarget(workbenchHome()); // always allowed, never needs --allow-root
  const keep = [...roots.filter((r) => r !== home).map(shellWord), 'NEW_FOLDER'];
  return (
    `${what} is outside the folders this server may write to; choose a path inside one of the folders it may write to: ${roots.join(', ')}. ` +
    `To allow another folder, restart the server with it added: \`torchtvm serve ${keep.map((r) => `--allow-root ${r}`).join(' ')}\` (or with TORCHTVM_ALLOWED_ROOTS=${keep.join(delimiter)} set).`
  );
}

/**
 * Refuses a startJob request that would write outside the allowed roots, naming the path and the
 * roots; returns the arguments with the roots attached to a compile or tune request, for the engine
 * to check again at each write (a client's own write_roots are replaced, never trusted).
 */
export function checkWritePaths(args: unknown[], roots: string[]): unknown[] {
  const parsed = JobRequestSchema.safeParse(args[0]);
  if (!parsed.success) return args; // refused by the job manager with its own sentence
  const req = parsed.data;
  for (const [p, what] of [
    [req.kind === 'compile' || req.kind === 'tune' || req.kind === 'export' ? req.export_path : undefined, 'export path'],
    [req.kind === 'compile' || req.kind === 'tune' ? req.out_dir : undefined, 'build folder'],
    [req.kind === 'tune' ? req.work_dir : undefined, 'tuning work dir'],
  ] as const) {
    if (typeof p !== 'string') continue;
    const real = realPathOfTarget(p);
    if (!roots.some((r) => isInside(real, r))) {
      throw new WorkbenchError('path_not_allowed', notAllowed(`The ${what} ${resolve(p)}`, roots));
    }
  }
  const raw = args[0] as Record<string, unknown>;
  return req.kind === 'compile' || req.kind === 'tune' || req.kind === 'export' ? [{ ...raw, write_roots: roots }, ...args.slice(1)] : args;
}

export interface RunningServer {
  url: string;
  port: number;
  token: string;
  /** The folders calls may write into. */
  roots: string[];
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

/** The token a WebSocket handshake carries: the `torchtvm.token.…` subprotocol, or an Authorization: Bearer header. */
function handshakeToken(req: IncomingMessage): string | undefined {
  for (const p of (req.headers['sec-websocket-protocol'] ?? '').split(',')) {
    const t = p.trim();
    if (t.startsWith(TOKEN_PROTOCOL)) return t.slice(TOKEN_PROTOCOL.length);
  }
  const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return auth?.[1];
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const root = resolve(opts.rendererDir);
  if (!existsSync(join(root, 'index.html'))) {
    throw new WorkbenchError('not_built', `The renderer is not built (${join(root, 'index.html')} is missing); run "npm run build" first.`);
  }
  let port = 0;
  const roots = writeRoots(opts.allowedRoots);
  const allowedHosts = () => new Set([`${LOOPBACK}:${port}`, `localhost:${port}`]);
  /** Host must be this server (DNS rebinding). */
  const hostOk = (req: IncomingMessage) => allowedHosts().has(req.headers.host ?? '');

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
    if (!hostOk(req)) {
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('401: open the URL that `torchtvm serve` printed, as printed (http://127.0.0.1:PORT/…).\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' });
      res.end();
      return;
    }
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

  // The server answers with the plain `torchtvm` subprotocol, never echoing the token one.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, handleProtocols: (offered) => (offered.has(WS_PROTOCOL) ? WS_PROTOCOL : false) });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', `http://${LOOPBACK}`);
    const origin = req.headers.origin;
    const originOk = origin === undefined || allowedHosts().has(origin.replace(/^http:\/\//, ''));
    const ok = url.pathname === '/api' && originOk && hostOk(req) && sameToken(handshakeToken(req), token);
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!ok) {
        ws.close(4401, 'unauthorised');
        return;
      }
      serveClient(ws, opts.api, roots);
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, LOOPBACK, () => resolveListen());
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://${LOOPBACK}:${port}/#token=${token}`;
  return {
    url,
    port,
    token,
    roots,
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
function serveClient(ws: WebSocket, api: WorkbenchApi, roots: string[]): void {
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
      ws.close(1008, 'Malformed message: send JSON {"type": "call", "id", "method", "args"} or a subscribe.');
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
      const { method, args: given } = validateCall(msg.method, msg.args);
      const args = method === 'startJob' ? checkWritePaths(given, roots) : given;
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
