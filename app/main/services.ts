// Optional parts of app/core that other modules provide: the bench runner (native addon, hosted in
// a utilityProcess here) and the tuning-log reader. Loaded when present so the shell runs without them.
import type { JobRunner } from '../core/jobs.js';

export interface Services {
  runners: Partial<Record<string, JobRunner>>;
  readTuningLog?: (dir: string) => Promise<Record<string, unknown>>;
}

export async function electronServices(): Promise<Services> {
  return { runners: {} };
}
