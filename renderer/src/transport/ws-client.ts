// Browser mode: the WorkbenchApi over the WebSocket that `torchtvm serve` offers on /api.
// The access token rides in the handshake as a subprotocol (transport/token.ts); never in the URL or a cookie.
import { validateCall, type ApiMethod } from '../../../app/contract/api.js';
import type { ErrorInfo } from '../../../app/contract/errors.js';
import type { JobEvent } from '../../../app/contract/jobs.js';
import type { HostBridge } from './types.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type ServerMessage = { type: 'result'; id: number; ok: true; result: unknown } | { type: 'result'; id: number; ok: false; error: ErrorInfo } | { type: 'event'; event: JobEvent };

export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly detail?: string) {
    super(message);
  }
}

export function createWsClient(url: string, onStatus: (s: 'connecting' | 'open' | 'closed', why?: string) => void, protocols: string[] = []): HostBridge {
  const pending = new Map<number, Pending>();
  const listeners = new Set<(e: JobEvent) => void>();
  let nextId = 1;
  let ws: WebSocket;
  let opened: Promise<void>;

  const connect = () => {
    onStatus('connecting');
    ws = new WebSocket(url, protocols);
    opened = new Promise((resolve, reject) => {
      ws.addEventListener('open', () => {
        onStatus('open');
        ws.send(JSON.stringify({ type: 'subscribe' }));
        resolve();
      });
      ws.addEventListener('close', (ev) => {
        const why = ev.code === 4401 ? 'The server refused the access token: open the URL that `torchtvm serve` printed.' : `The connection to the workbench server closed (${ev.code}). Is \`torchtvm serve\` still running?`;
        onStatus('closed', why);
        for (const p of pending.values()) p.reject(new ApiError('disconnected', why));
        pending.clear();
        reject(new ApiError('disconnected', why));
      });
    });
    opened.catch(() => {});
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
  connect();

  const call = async (method: ApiMethod, args: unknown[]) => {
    validateCall(method, args); // fail early with the same message the server would give
    await opened;
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
    onEvent: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  } as HostBridge;
  return Object.freeze(api);
}
