// Event batching: events are queued as they arrive and applied once per animation frame (with a
// timer fallback for hidden windows, where requestAnimationFrame does not fire).
import type { JobEvent } from '../../app/contract/jobs.js';
import { applyEvents } from './store.js';

let queue: JobEvent[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  applyEvents(batch);
}

export function enqueue(e: JobEvent): void {
  queue.push(e);
  if (scheduled) return;
  scheduled = true;
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    flush();
  };
  requestAnimationFrame(once);
  setTimeout(once, 250);
}

/** Resolves after the next flush and the frame after it (the chart has rendered by then). */
export function nextFrame(): Promise<void> {
  return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r())));
}
