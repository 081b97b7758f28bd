// The optional parts of app/core wired the Electron way: the bench runner hosts the native addon in
// a utilityProcess (a crash there fails one benchmark, not the app), and the tuning-log reader.
import { utilityProcess } from 'electron';
import { benchRunner, utilityProcessSpawner, type UtilityProcessLike } from '../core/bench/bench-host.js';
import type { JobRunner } from '../core/jobs.js';
import { readTuningLog } from '../core/tuning/log-reader.js';

export interface Services {
  runners: Partial<Record<string, JobRunner>>;
  readTuningLog: (dir: string) => Promise<Record<string, unknown>>;
}

export async function electronServices(): Promise<Services> {
  return {
    runners: { bench: benchRunner({ spawner: utilityProcessSpawner(utilityProcess as unknown as UtilityProcessLike) }) },
    readTuningLog: async (dir) => (await readTuningLog(dir)) as unknown as Record<string, unknown>,
  };
}
