// Test hooks for the e2e suite, installed only when the page URL has ?testHooks=1: inject
// synthetic tuning events through the real batching path and time the chart's updates.
import { API_METHODS } from '../../app/contract/api.js';
import type { JobEvent } from '../../app/contract/jobs.js';
import { getApi } from './actions.js';
import { enqueue, nextFrame } from './events.js';
import { get, set } from './store.js';

const sockets: WebSocket[] = [];

/**
 * With ?testHooks=1, remembers the page's WebSockets so that a test can drop the connection the
 * way a sleeping laptop or a flaky proxy would. Must run before the transport connects.
 */
export function trackSockets(): void {
  if (new URLSearchParams(location.search).get('testHooks') !== '1') return;
  const Native = window.WebSocket;
  class Tracked extends Native {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  window.WebSocket = Tracked;
}

export function installTestHooks(): void {
  if (new URLSearchParams(location.search).get('testHooks') !== '1') return;
  Object.defineProperty(window, '__torchtvmTest', {
    value: Object.freeze({
      apiKeys: () => Object.keys(getApi()).sort(),
      apiMethods: () => [...API_METHODS, 'onEvent'].sort(),
      /** Closes the page's open WebSockets from the client side: the transport must reconnect by itself. */
      dropConnection() {
        let n = 0;
        for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) (ws.close(), n++);
        return n;
      },
      /** Streams n trials in batches of perFrame (one batch per frame) into a fresh fake tune job. */
      async streamTrials(n: number, perFrame: number) {
        const job = 'tune-test-hook';
        set({ tuneJob: job, trials: [], tasks: {}, view: 'tune', tuneBudget: n });
        enqueue({ event: 'job.state', job, data: { state: 'running', kind: 'tune' } });
        enqueue({ event: 'tune.tasks', job, data: { tasks: [0, 1, 2, 3].map((id) => ({ id, name: `fused_conv2d_${id}`, weight: id + 1 })) } });
        await nextFrame();
        const frameMs: number[] = [];
        const best = [Infinity, Infinity, Infinity, Infinity];
        const t0 = performance.now();
        for (let i = 0; i < n; i += perFrame) {
          const f0 = performance.now();
          for (let k = i; k < Math.min(n, i + perFrame); k++) {
            const task = k % 4;
            const lat = (task + 1) * (0.5 + Math.random()) * (1 + 3 * Math.exp(-k / 800));
            best[task] = Math.min(best[task], lat);
            const est = best.every(Number.isFinite) ? best.reduce((a, b, t) => a + b * (t + 1), 0) : null;
            const e: JobEvent = { event: 'tune.trial', job, data: { task_id: task, task_name: `fused_conv2d_${task}`, trial: Math.floor(k / 4), total_trials: k + 1, latency_ms: lat, error: null, best_ms: best[task], estimated_total_ms: est } };
            enqueue(e);
          }
          await nextFrame();
          frameMs.push(performance.now() - f0);
        }
        const totalMs = performance.now() - t0;
        const sorted = [...frameMs].sort((a, b) => a - b);
        return { points: get().trials.length, batches: frameMs.length, totalMs, meanFrameMs: totalMs / frameMs.length, p50FrameMs: sorted[Math.floor(sorted.length / 2)], maxFrameMs: sorted[sorted.length - 1] };
      },
    }),
  });
}
