// The engine pool against the real Python engine: a second job runs on an engine of its own while a
// tune runs (and finishes in seconds), an idle extra engine is closed, past maxEngines a job waits and
// says what for, a crashed engine is dropped. Last, through the workbench's API as the app calls it:
// a model inspected while a tune runs, its time kept in test-artifacts/inspect-during-tune.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EngineJobEvent, JobEvent } from '../../app/contract/jobs.js';
import { EnginePool, maxEnginesFromEnv, QUICK_ENGINE_METHODS } from '../../app/core/engine-client/engine-pool.js';
import { paths } from '../../app/core/paths.js';
import { createWorkbench } from '../../app/core/workbench.js';
import { makeModels, tmpHome } from './helpers.js';

let models: string;
beforeAll(() => {
  models = makeModels();
  const r = spawnSync(paths.python, [join(paths.root, 'test/fixtures/make_tune_models.py'), models], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making the tune model failed: ${r.stderr}`);
  process.env.TORCHTVM_HOME = tmpHome();
});

/** A tune that runs far longer than any test waits (it is cancelled): many trials, small rounds, one thread. */
function longTune(dir: string) {
  mkdirSync(join(models, dir, 'build'), { recursive: true });
  return { model: join(models, 'two_op.pt'), inputs: [{ name: 'x', dims: [4, 32], dtype: 'float32' as const }], trials: 5000, trials_per_iter: 2, threads: 1, measure: false, work_dir: join(models, dir, 'tuning'), out_dir: join(models, dir, 'build') };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('EnginePool', () => {
  it('inspects another model on a second engine while a tune runs, then closes that engine when it idles', async () => {
    const pool = new EnginePool({ maxEngines: 2, idleCloseMs: 1500 });
    try {
      let searching = false;
      const tune = pool.request('tune', longTune('pool-a'), (e) => e.event === 'tune.tasks' && (searching = true), 'tune-a');
      let tuneSettled = false;
      tune.done.then(
        () => (tuneSettled = true),
        () => (tuneSettled = true),
      );
      await until('the tune to list its tasks', () => searching || tuneSettled, 300_000);
      expect(tuneSettled).toBe(false);
      const tunePid = pool.pid!;

      const t0 = Date.now();
      const inspected = await pool.request('inspect', { model: join(models, 'mlp.pt') }).done;
      const seconds = (Date.now() - t0) / 1000;
      expect(inspected.inputs).toHaveLength(1);
      expect(seconds).toBeLessThan(60);
      expect(tuneSettled).toBe(false);
      expect(pool.size).toBe(2);
      const [first, second] = pool.pids;
      expect(first).toBe(tunePid);
      expect(second).not.toBe(tunePid);
      // A quick method goes to a live engine beside the tune.
      expect((await pool.request('versions', {}).done).tvm).toBeTruthy();

      // The second engine, idle past idleCloseMs, is closed; the tune's goes on.
      await until('the idle engine to close', () => pool.size === 1 && !alive(second), 20_000);
      expect(pool.pids).toEqual([tunePid]);
      expect(tuneSettled).toBe(false);

      expect(pool.cancel('tune-a')).toBe(true);
      expect(((await tune.done.catch((e) => e)) as { code: string }).code).toBe('cancelled');
    } finally {
      await pool.close();
    }
  });

  it('with one engine, a second job waits and says for what; cancel takes a waiting job off the queue', async () => {
    const pool = new EnginePool({ maxEngines: 1, cancelGraceMs: 2000 });
    try {
      const events: EngineJobEvent[] = [];
      const tune = pool.request('tune', longTune('pool-b'), undefined, 'tune-b');
      const inspect = pool.request('inspect', { model: join(models, 'mlp.pt') }, (e) => events.push(e), 'inspect-b');
      const dropped = pool.request('inspect', { model: join(models, 'two_inputs.pt') }, undefined, 'inspect-c');
      expect(pool.size).toBe(1);
      expect(pool.load).toEqual({ running: 1, waiting: 2 });
      expect(events[0]).toMatchObject({ event: 'job.progress', job: 'inspect-b', data: { stage: 'queued' } });
      expect((events[0].data as { message: string }).message).toBe('Waiting for the running tune (job tune-b) to finish: one engine runs at a time (TORCHTVM_MAX_ENGINES).');

      expect(pool.cancel('inspect-c')).toBe(true);
      expect(((await dropped.done.catch((e) => e)) as { code: string }).code).toBe('cancelled');
      expect(pool.load).toEqual({ running: 1, waiting: 1 });

      // Once the tune stops, the waiting inspection runs (on the same engine, or a fresh one if the tune had to be killed).
      expect(pool.cancel('tune-b')).toBe(true);
      expect(((await tune.done.catch((e) => e)) as { code: string }).code).toBe('cancelled');
      const r = await inspect.done;
      expect(r.inputs).toHaveLength(1);
      expect(pool.size).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('drops a crashed engine and serves the next request on a fresh one', async () => {
    const pool = new EnginePool({ maxEngines: 2 });
    try {
      expect((await pool.request('versions', {}).done).torch).toBeTruthy();
      const pid = pool.pid!;
      const job = pool.request('inspect', { model: join(models, 'mlp.pt') });
      pool.kill('SIGKILL');
      const err = (await job.done.catch((e) => e)) as { code: string; message: string };
      expect(err.code).toBe('engine_crashed');
      expect(err.message).toMatch(/^The engine stopped unexpectedly \(signal SIGKILL\) while running "inspect"/);
      expect(pool.size).toBe(0);
      expect((await pool.request('inspect', { model: join(models, 'mlp.pt') }).done).inputs).toHaveLength(1);
      expect(pool.pid).not.toBe(pid);
    } finally {
      await pool.close();
    }
  });

  it('sends to any engine the methods the engine runs beside a job (its QUICK_METHODS)', () => {
    const src = readFileSync(join(paths.engineDir, 'torchtvm/service/methods.py'), 'utf8');
    const m = /^QUICK_METHODS = frozenset\(\{([^}]*)\}\)/m.exec(src);
    expect(m, 'QUICK_METHODS in methods.py').not.toBeNull();
    const names = [...m![1].matchAll(/"([a-z_]+)"/g)].map((x) => x[1]);
    expect([...QUICK_ENGINE_METHODS].sort()).toEqual(names.sort());
  });

  it('reads TORCHTVM_MAX_ENGINES, and a bad value fails requests with a sentence', async () => {
    expect(maxEnginesFromEnv(undefined)).toBe(3);
    expect(maxEnginesFromEnv('1')).toBe(1);
    expect(() => maxEnginesFromEnv('zero')).toThrow(/TORCHTVM_MAX_ENGINES must be a whole number of engines from 1 to 64, not "zero"/);
    const before = process.env.TORCHTVM_MAX_ENGINES;
    process.env.TORCHTVM_MAX_ENGINES = '0';
    try {
      const pool = new EnginePool();
      await expect(pool.request('versions', {}).done).rejects.toMatchObject({ code: 'bad_setting' });
      process.env.TORCHTVM_MAX_ENGINES = '2';
      expect(new EnginePool().maxEngines).toBe(2);
    } finally {
      if (before === undefined) delete process.env.TORCHTVM_MAX_ENGINES;
      else process.env.TORCHTVM_MAX_ENGINES = before;
    }
  });
});

describe('Workbench: inspecting a model while a tune runs (issue 22)', () => {
  it('the inspection finishes in seconds, the tune still running', async () => {
    const wb = createWorkbench({ host: 'test' });
    try {
      let trials = 0;
      let tuneState = 'running';
      const events: JobEvent[] = [];
      wb.onEvent((e) => events.push(e));
      const { job: tuneJob } = await wb.startJob({ kind: 'tune', ...longTune('wb') });
      wb.onEvent((e) => {
        if (e.job !== tuneJob) return;
        if (e.event === 'tune.trial') trials++;
        if (e.event === 'job.state') tuneState = e.data.state;
      });
      await until('the tune to measure a trial', () => trials > 0 || tuneState !== 'running', 300_000);
      expect(tuneState).toBe('running');

      const t0 = Date.now();
      const { job } = await wb.startJob({ kind: 'inspect', model: join(models, 'mlp.pt') });
      const outcome = await wb.waitJob({ job });
      const inspectS = (Date.now() - t0) / 1000;
      expect(outcome.state).toBe('succeeded');
      // The inspection neither waited for the tune nor was told to.
      expect(events.some((e) => e.job === job && e.event === 'job.progress' && e.data.stage === 'queued')).toBe(false);
      expect(tuneState).toBe('running');
      expect((await wb.listJobs()).find((j) => j.job === tuneJob)?.state).toBe('running');
      const trialsDuringInspect = trials;

      mkdirSync(join(paths.root, 'test-artifacts'), { recursive: true });
      writeFileSync(
        join(paths.root, 'test-artifacts/inspect-during-tune.json'),
        JSON.stringify({ test: 'test/node/engine-pool.test.ts', what: 'wb.startJob(inspect mlp.pt) -> waitJob while a tune of two_op.pt runs on another engine (includes starting that engine)', inspect_s: Math.round(inspectS * 100) / 100, tune_trials_when_inspect_done: trialsDuringInspect, tune_state_when_inspect_done: tuneState, engines: wb.engine.pids.length, cpus: (await import('node:os')).cpus().length, date: new Date().toISOString() }, null, 2) + '\n',
      );
      expect(inspectS).toBeLessThan(30);

      await wb.cancelJob({ job: tuneJob });
      expect((await wb.waitJob({ job: tuneJob })).state).toBe('cancelled');
    } finally {
      await wb.close();
    }
  });
});
