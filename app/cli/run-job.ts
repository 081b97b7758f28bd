// Runs one job from the CLI: streams its events, Ctrl-C cancels it, the exit code says how it ended.
import type { JobEvent, JobOutcome, JobRequest } from '../contract/jobs.js';
import type { Workbench } from '../core/workbench.js';
import type { Output } from './output.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, cancelled: 130 } as const;

export async function runJob(wb: Workbench, request: JobRequest, out: Output, onEvent?: (e: JobEvent) => void): Promise<JobOutcome> {
  // Subscribe before starting so that no event is missed; keep only this job's.
  let job: string | undefined;
  const early: JobEvent[] = [];
  const off = wb.onEvent((e) => {
    if (job === undefined) {
      early.push(e);
      return;
    }
    handle(e);
  });
  const handle = (e: JobEvent) => {
    if (e.job !== job) return;
    out.event(e);
    if (e.event === 'job.progress') {
      const pct = e.data.fraction !== undefined ? ` ${Math.round(e.data.fraction * 100)}%` : '';
      out.progress(`[${e.data.stage}]${pct} ${e.data.message}`);
    } else if (e.event === 'log' && (e.data.level === 'warn' || e.data.level === 'error')) {
      out.warn(e.data.message);
    }
    onEvent?.(e);
  };
  try {
    job = (await wb.startJob(request)).job;
  } catch (e) {
    off();
    throw e;
  }
  early.forEach(handle);
  let interrupts = 0;
  const onSigint = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(EXIT.cancelled);
    out.progress('cancelling… (Ctrl-C again to quit at once)');
    void wb.cancelJob({ job: job! });
  };
  process.on('SIGINT', onSigint);
  try {
    return await wb.waitJob({ job: job! });
  } finally {
    process.off('SIGINT', onSigint);
    off();
    out.clearProgress();
  }
}
