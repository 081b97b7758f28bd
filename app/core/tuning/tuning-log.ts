// Reading a MetaSchedule work dir (tasks, record counts, best latency, failures, best-so-far curves)
// is the engine's: its `tuning_log` method (native/engine/torchtvm/tune/log.py) counts records by the
// same rules as the repair a resumed tune runs, and answers beside a running job. Damaged lines are
// skipped and counted; not_found, not_a_tuning_dir and unreadable come back as WorkbenchErrors.
import { resolve } from 'node:path';
import type { TuningLog } from '../../contract/results.js';
import type { EngineRequests } from '../engine-client/engine-pool.js';

export type { TuningLog, TuningTask } from '../../contract/results.js';

/** The engine's reading of a work dir; a relative `dir` is taken from this process's working folder. */
export function readTuningLog(engine: EngineRequests, dir: string): Promise<TuningLog> {
  return engine.request('tuning_log', { dir: resolve(dir) }).done;
}
