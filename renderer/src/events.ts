// Event batching: events are queued as they arrive and applied once per animation frame (with a
// timer fallback for hidden windows, where requestAnimationFrame does not fire).
import type { JobEvent } from '../../app/contract/jobs.js';
import { applyEvents } from './store.js';

let queue: JobEvent[] = [];
let scheduled = false;
/** Jobs whose recorded events are being fetched: their live events wait here, to land after the replay. */
const held = new Map<string, JobEvent[]>();

/** Starts holding a job's live events (call before fetching its recorded ones). */
export function hold(job: string): void {
  if (held.has(job)) return;
  // Events already queued for the next frame are live ones too: they must land after the replay.
  held.set(job, queue.filter((e) => e.job === job));
  queue = queue.filter((e) => e.job !== job);
}

/** Applies a job's recorded events, then whatever arrived live meanwhile (duplicates are dropped by the store). */
export function release(job: string, recorded: JobEvent[]): void {
  const live = held.get(job) ?? [];
  held.delete(job);
  applyEvents([...recorded, ...live]);
}

/** Applies the queued events now (the frame callback does this; tests call it to time an update). */
export function flush(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  applyEvents(batch);
}

export function enqueue(e: JobEvent): void {
  const h = held.get(e.job);
  if (h) {
    h.push(e);
    return;
  }
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
