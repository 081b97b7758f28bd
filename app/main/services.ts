// The optional parts of app/core wired the Electron way: the bench runner hosts the native addon in
// a utilityProcess (a crash there fails one benchmark, not the app). Tuning logs are read by the
// engine (app/core/tuning/tuning-log.ts), the same in every host.
import { utilityProcess } from 'electron';
import { benchRunner, utilityProcessSpawner } from '../core/bench/bench-host.js';
import type { JobRunner } from '../core/jobs.js';

export interface Services {
  runners: Partial<Record<string, JobRunner>>;
}

export async function electronServices(): Promise<Services> {
  return {
    runners: { bench: benchRunner({ spawner: utilityProcessSpawner(utilityProcess) }) },
  };
}
