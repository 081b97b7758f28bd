// Test hooks for the e2e suite, installed only when the page URL has ?testHooks=1: inject
// synthetic tuning events through the real batching path and time the chart's updates.
import { API_METHODS } from '../../app/contract/api.js';
import type { JobEvent } from '../../app/contract/jobs.js';
import { getApi } from './actions.js';
import { enqueue, flush, nextFrame } from './events.js';
import { get, set } from './store.js';

const sockets: WebSocket[] = [];
/** Redraw costs of the tune chart (ms), recorded only while a test streams trials. */
let redraws: number[] | null = null;
export function recordRedraw(ms: number): void {
  redraws?.push(ms);
}

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
        const updateMs: number[] = [];
        let committed = 0;
        redraws = [];
        const best = [Infinity, Infinity, Infinity, Infinity];
        const t0 = performance.now();
        for (let i = 0; i < n; i += perFrame) {
          const f0 = performance.now();
          for (let k = i; k < Math.min(n, i + perFrame); k++) {
            const task = k % 4;
            // Each task's latencies in a band of its own (×2 apart, gaps between them), so that the
            // test hovering one task's dot never finds another task's dot under the pointer.
            const lat = 2 ** task * (0.75 + 0.5 * Math.random()) * (1 + 3 * Math.exp(-k / 800));
            best[task] = Math.min(best[task], lat);
            const est = best.every(Number.isFinite) ? best.reduce((a, b, t) => a + b * (t + 1), 0) : null;
            const e: JobEvent = { event: 'tune.trial', job, data: { task_id: task, task_name: `fused_conv2d_${task}`, trial: Math.floor(k / 4), total_trials: k + 1, latency_ms: lat, error: null, best_ms: best[task], estimated_total_ms: est } };
            enqueue(e);
          }
          // The update itself: fold the batch into the store and let React commit (a microtask
          // for an external-store update); the frame wait after it is not the app's work.
          const u0 = performance.now();
          flush();
          await Promise.resolve();
          await Promise.resolve();
          updateMs.push(performance.now() - u0);
          // Proof that the time covers the render: the trial counter on the page already shows this batch.
          if (document.querySelector('[data-testid=trial-count]')?.textContent === String(get().trials.length)) committed++;
          await nextFrame();
          frameMs.push(performance.now() - f0);
        }
        // Let the throttled chart catch up with the last batch before reporting its redraws.
        await new Promise((r) => setTimeout(r, 1500));
        const totalMs = performance.now() - t0;
        const q = (a: number[], p: number) => {
          const s = [...a].sort((x, y) => x - y);
          return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))] : 0;
        };
        const drawn = redraws;
        redraws = null;
        return {
          points: get().trials.length,
          batches: frameMs.length,
          totalMs,
          meanFrameMs: frameMs.reduce((a, b) => a + b, 0) / frameMs.length,
          p50FrameMs: q(frameMs, 0.5),
          maxFrameMs: q(frameMs, 1),
          updatesCommitted: committed,
          p50UpdateMs: q(updateMs, 0.5),
          p90UpdateMs: q(updateMs, 0.9),
          maxUpdateMs: q(updateMs, 1),
          chartRedraws: drawn.length,
          p50RedrawMs: q(drawn, 0.5),
          maxRedrawMs: q(drawn, 1),
        };
      },
    }),
  });
}
