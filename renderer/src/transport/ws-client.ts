// Browser mode: the WorkbenchApi over the WebSocket that `torchtvm serve` offers on /api.
// The access token rides in the handshake as a subprotocol (transport/token.ts); never in the URL or a cookie.
import { validateCall, type ApiMethod } from '../../../app/contract/api.js';
import type { ErrorInfo } from '../../../app/contract/errors.js';
import type { JobEvent } from '../../../app/contract/jobs.js';
import { REFUSED_TOKEN } from './token.js';
import type { HostBridge } from './types.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type ServerMessage = { type: 'result'; id: number; ok: true; result: unknown } | { type: 'result'; id: number; ok: false; error: ErrorInfo } | { type: 'event'; event: JobEvent };

export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly detail?: string) {
    super(message);
  }
}

/** How long a call waits for the connection (at first, or while it reconnects) before it gives up with a sentence. */
const CALL_WAIT_MS = 15_000;
/** Reconnect backoff: 0.5 s, 1 s, 2 s, then every 4 s. */
const backoff = (attempt: number) => Math.min(4000, 500 * 2 ** attempt);

export type WsStatus = 'connecting' | 'open' | 'closed' | 'reconnecting' | 'refused';

/**
 * `noToken`: the tab has no token (the sentence saying so). Then no socket is opened at all (the
 * server would only refuse it): the status is 'refused' at once and every call fails with that
 * sentence, so the page never looks usable, even for a moment.
 */
export function createWsClient(url: string, onStatus: (s: WsStatus, why?: string) => void, onReconnect?: () => void, protocols: string[] = [], noToken?: string): HostBridge {
  const pending = new Map<number, Pending>();
  const listeners = new Set<(e: JobEvent) => void>();
  let nextId = 1;
  let ws: WebSocket;
  let isOpen = false;
  let everOpened = false;
  let attempt = 0;
  let refused = false;
  let waiters: Array<(refusal?: Error) => void> = [];
  let lastWhy: string | undefined;

  // A lost connection is retried by itself (the server may be restarting, the laptop waking up);
  // a refused token is not, since retrying cannot fix it.
  const connect = () => {
    onStatus(attempt > 0 ? 'reconnecting' : 'connecting', lastWhy);
    ws = new WebSocket(url, protocols);
    ws.addEventListener('open', () => {
      isOpen = true;
      attempt = 0;
      lastWhy = undefined;
      ws.send(JSON.stringify({ type: 'subscribe' }));
      onStatus('open');
      const again = everOpened;
      everOpened = true;
      waiters.forEach((w) => w());
      waiters = [];
      if (again) onReconnect?.();
    });
    ws.addEventListener('close', (ev) => {
      const wasOpen = isOpen;
      isOpen = false;
      refused = ev.code === 4401;
      const why = refused ? REFUSED_TOKEN : `Lost the connection to the workbench server (${ev.code}); reconnecting by itself${wasOpen ? '' : ' (is `torchtvm serve` still running?)'}…`;
      lastWhy = why;
      onStatus(refused ? 'refused' : 'closed', why);
      for (const p of pending.values()) p.reject(refused ? new ApiError('access_refused', why) : new ApiError('disconnected', 'The connection to the workbench server was lost before it answered; it reconnects by itself, then try again.'));
      pending.clear();
      if (refused) {
        // Calls waiting for the socket fail now, with the reason, rather than after a timeout.
        waiters.forEach((w) => w(new ApiError('access_refused', why)));
        waiters = [];
      } else setTimeout(connect, backoff(attempt++));
    });
    ws.addEventListener('message', (m) => {
      const msg = JSON.parse(String(m.data)) as ServerMessage;
      if (msg.type === 'event') listeners.forEach((l) => l(msg.event));
      else {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (!p) return;
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new ApiError(msg.error.code, msg.error.message, msg.error.detail));
      }
    });
  };
  if (noToken) {
    refused = true;
    lastWhy = noToken;
    onStatus('refused', noToken);
  } else connect();

  /** Resolves once the socket is open; a call made while reconnecting waits a little rather than failing at once. */
  const whenOpen = () =>
    isOpen
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => {
          if (refused) return reject(new ApiError('access_refused', lastWhy ?? REFUSED_TOKEN));
          const t = setTimeout(() => {
            waiters = waiters.filter((w) => w !== go);
            reject(new ApiError('disconnected', 'The workbench server is not reachable; the app keeps trying to reconnect. Is `torchtvm serve` still running?'));
          }, CALL_WAIT_MS);
          const go = (refusal?: Error) => {
            clearTimeout(t);
            if (refusal) reject(refusal);
            else resolve();
          };
          waiters.push(go);
        });

  const call = async (method: ApiMethod, args: unknown[]) => {
    validateCall(method, args); // fail early with the same message the server would give
    await whenOpen();
    const id = nextId++;
    return new Promise<unknown>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ type: 'call', id, method, args }));
    });
  };

  const api = {
    info: () => call('info', []),
    startJob: (r) => call('startJob', [r]),
    cancelJob: (a) => call('cancelJob', [a]),
    waitJob: (a) => call('waitJob', [a]),
    listJobs: () => call('listJobs', []),
    readTuningLog: (a) => call('readTuningLog', [a]),
    recentModels: () => call('recentModels', []),
    trackerQueues: (a) => call('trackerQueues', [a]),
    listRuns: (a) => call('listRuns', [a]),
    getRun: (a) => call('getRun', [a]),
    onEvent: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  } as HostBridge;
  return Object.freeze(api);
}
