// Runs on disk: every compile/tune/bench/export job leaves request, events (JSON lines) and outcome
// in its model's project folder; a fresh store (a restarted app) lists them and marks the ones that
// were running as interrupted.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompileResult, TuneResult } from '../../app/contract/results.js';
import { JobManager } from '../../app/core/jobs.js';
import { RunStore } from '../../app/core/runs/run-store.js';
import { projectDir } from '../../app/core/paths.js';
import { NotARegularFile, readRegularFile } from '../../app/core/read-file.js';

describe('run store', () => {
  const home = mkdtempSync(join(tmpdir(), 'torchtvm-runs-'));
  const model = join(home, 'm.pt');
  const inputs = [{ name: 'x', dims: [4, 32], dtype: 'float32' as const }];
  /** The smallest results the contract accepts (the runners here stand in for the engine). */
  const built: CompileResult = { model, inputs, target: { kind: 'llvm', mcpu: null, features: [] }, num_outputs: 1, timings_s: { import: 0, build: 0 }, verification: { ok: true, outputs: [] }, threads: 1, files: {} };
  const tuned: TuneResult = { ...built, tuning: { trials: 3, new_trials: 3, budget: 3, tasks: [], estimated_ms: null, work_dir: join(home, 'w'), resumed_records: 0, notes: [], curve: [] } };
  let saved: string | undefined;
  beforeAll(() => {
    saved = process.env.TORCHTVM_HOME;
    process.env.TORCHTVM_HOME = home;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.TORCHTVM_HOME;
    else process.env.TORCHTVM_HOME = saved;
  });

  it('records request, events and outcome, replays them, and survives a restart', async () => {
    const store = new RunStore();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const jobs = new JobManager(
      {
        tune: async (_req, ctx) => {
          for (let i = 1; i <= 3; i++) ctx.emit({ event: 'tune.trial', data: { task_id: 0, task_name: 'dense', trial: i, total_trials: i, latency_ms: 1 / i, best_ms: 1 / i, estimated_total_ms: 1 / i } });
          await gate;
          return tuned;
        },
        compile: async () => built,
        inspect: async () => ({ path: model, inputs: [], ops: {}, parameters: { count: 0, bytes: 0, tensors: 0 }, exported: null }),
      },
      store,
    );
    jobs.onEvent((e) => store.event(e));
    const tune = jobs.start({ kind: 'tune', model, inputs, trials: 3 });
    await new Promise((r) => setTimeout(r, 20));
    const live = store.list(model);
    expect(live.runs).toHaveLength(1);
    expect(live.runs[0]).toMatchObject({ job: tune, kind: 'tune', state: 'running' });
    expect(live.defaults.work_dir).toBe(join(projectDir(model), 'tuning'));
    expect(live.defaults.export_path).toBe(join(projectDir(model), 'exports', 'm.tvm.pt'));
    const mid = await store.get(model, tune);
    expect(mid.events.filter((e) => e.event === 'tune.trial')).toHaveLength(3);
    expect(mid.outcome).toBeNull();

    // A restarted app: the run was running when its process stopped.
    const restarted = new RunStore();
    expect(restarted.list(model).runs[0]).toMatchObject({ job: tune, state: 'interrupted' });
    expect((await restarted.get(model, tune)).events.filter((e) => e.event === 'tune.trial').map((e) => (e.data as { trial: number }).trial)).toEqual([1, 2, 3]);

    release();
    expect((await jobs.wait(tune)).state).toBe('succeeded');
    const exp = jobs.start({ kind: 'compile', model, inputs, export_path: join(home, 'out.pt') });
    await jobs.wait(exp);
    jobs.start({ kind: 'inspect', model });
    const after = new RunStore().list(model);
    expect(after.runs.map((r) => [r.kind, r.state])).toEqual([['export', 'succeeded'], ['tune', 'succeeded']]);
    const dir = join(projectDir(model), 'runs', tune);
    expect(readdirSync(dir).sort()).toEqual(['events.jsonl', 'outcome.json', 'request.json', 'run.json']);
    expect(JSON.parse(readFileSync(join(dir, 'outcome.json'), 'utf8'))).toMatchObject({ state: 'succeeded', result: { tuning: { trials: 3 } } });
    expect(JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8'))).toMatchObject({ kind: 'tune', trials: 3, measure: true });
    expect((await new RunStore().get(model, tune)).outcome).toMatchObject({ state: 'succeeded', result: { tuning: { trials: 3 } } });
    expect(readdirSync(dir).some((f) => f.endsWith('.tmp'))).toBe(false);
    expect(existsSync(join(projectDir(model), 'exports'))).toBe(true);
  });

  it('lists a tune by what it did, from its record: a cancelled run of 24 did 9', async () => {
    const store = new RunStore();
    const jobs = new JobManager(
      {
        tune: async (_req, ctx) => {
          ctx.emit({ event: 'tune.tasks', data: { tasks: [{ id: 0, name: 'dense', weight: 1, default_ms: 2 }], budget: 24, resumed_records: 0, estimated_ms: 2 } });
          for (let i = 1; i <= 9; i++) ctx.emit({ event: 'tune.trial', data: { task_id: 0, task_name: 'dense', trial: i, total_trials: i, latency_ms: 1 + 1 / i, best_ms: 1 + 1 / i, estimated_total_ms: 1 + 1 / i } });
          await new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(Object.assign(new Error('cancelled'), { code: 'cancelled' }))));
          return tuned;
        },
      },
      store,
    );
    jobs.onEvent((e) => store.event(e));
    const tune = jobs.start({ kind: 'tune', model, inputs, trials: 24 });
    await new Promise((r) => setTimeout(r, 20));
    expect(store.list(model).runs.find((r) => r.job === tune)?.tune).toMatchObject({ state: 'running', budget: 24, trials: 9, total: 9 });
    jobs.cancel(tune);
    expect((await jobs.wait(tune)).state).toBe('cancelled');
    const listed = new RunStore().list(model).runs.find((r) => r.job === tune)!;
    expect(listed.tune).toMatchObject({ state: 'cancelled', budget: 24, resumed: 0, trials: 9, total: 9, first_estimate_ms: 2, estimate_ms: 1 + 1 / 9 });
  });

  it('reads run records written before the wire was snake_case (camelCase request keys)', async () => {
    const job = 'tune-7-old1';
    const dir = join(projectDir(model), 'runs', job);
    mkdirSync(dir, { recursive: true });
    const request = { kind: 'tune', model, inputs, target: 'llvm', measure: true, trials: 5, trialsPerTask: 2, trialsPerIter: 4, workDir: join(home, 'old-tuning'), exportPath: join(home, 'old.pt'), outDir: join(home, 'old-build'), createParent: true, tuneSizes: { batch: 4 } };
    writeFileSync(join(dir, 'request.json'), JSON.stringify(request));
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ job, kind: 'export', state: 'succeeded', model, startedAt: 1, finishedAt: 2, request, events: 1 }));
    writeFileSync(join(dir, 'events.jsonl'), JSON.stringify({ event: 'log', job, data: { level: 'info', message: 'hello' } }) + '\n' + JSON.stringify({ event: 'log', job, data: { level: 'loud' } }) + '\n');
    writeFileSync(join(dir, 'outcome.json'), JSON.stringify({ state: 'succeeded', job, result: tuned }));
    const listed = new RunStore().list(model).runs.find((r) => r.job === job);
    expect(listed?.request).toEqual({ kind: 'tune', model, inputs, target: 'llvm', measure: true, trials: 5, trials_per_task: 2, trials_per_iter: 4, work_dir: join(home, 'old-tuning'), export_path: join(home, 'old.pt'), out_dir: join(home, 'old-build'), create_parent: true, tune_sizes: { batch: 4 } });
    const rec = await new RunStore().get(model, job);
    expect(rec.summary.request).toMatchObject({ work_dir: join(home, 'old-tuning') });
    // An event that is not one of the contract's is skipped, like a torn line.
    expect(rec.events).toEqual([{ event: 'log', job, data: { level: 'info', message: 'hello' } }]);
    expect(rec.outcome).toMatchObject({ state: 'succeeded', result: { tuning: { trials: 3 } } });
    // A summary without its request (an older layout) takes it from request.json.
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ job, kind: 'export', state: 'succeeded', model, startedAt: 1, events: 1 }));
    expect((await new RunStore().get(model, job)).summary.request).toMatchObject({ kind: 'tune', export_path: join(home, 'old.pt') });
  });

  it('turns an outcome that does not match the contract into a failed outcome naming the issues', async () => {
    const job = 'compile-8-old2';
    const dir = join(projectDir(model), 'runs', job);
    mkdirSync(dir, { recursive: true });
    const request = { kind: 'compile', model, inputs, target: 'llvm', measure: true };
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ job, kind: 'compile', state: 'succeeded', model, startedAt: 1, request, events: 0 }));
    writeFileSync(join(dir, 'outcome.json'), JSON.stringify({ state: 'succeeded', job, result: { ...built, verification: { ok: 'yes' } } }));
    const rec = await new RunStore().get(model, job);
    expect(rec.outcome).toMatchObject({ state: 'failed', error: { code: 'bad_run_record' } });
    expect(rec.outcome?.state === 'failed' && rec.outcome.error.message).toMatch(/verification\.ok: /);
  });

  it('shows a run whose run.json is damaged, rebuilt from its request, events and outcome', async () => {
    const job = 'compile-10-mh4k2x1a';
    const dir = join(projectDir(model), 'runs', job);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'request.json'), JSON.stringify({ kind: 'compile', model, inputs, target: 'llvm', measure: true }));
    writeFileSync(join(dir, 'events.jsonl'), JSON.stringify({ event: 'log', job, data: { level: 'info', message: 'hello' } }) + '\n');
    writeFileSync(join(dir, 'outcome.json'), JSON.stringify({ state: 'succeeded', job, result: built }));
    writeFileSync(join(dir, 'run.json'), '{"job": "compile-10-mh4k2x1a", "st'); // cut short
    const listed = new RunStore().list(model).runs.find((r) => r.job === job);
    expect(listed).toMatchObject({ job, kind: 'compile', state: 'succeeded', events: 1, startedAt: parseInt('mh4k2x1a', 36) });
    expect(listed?.damaged).toMatch(/run\.json\) is missing or damaged/);
    expect((await new RunStore().get(model, job)).outcome).toMatchObject({ state: 'succeeded' });
  });

  it('lists a run another live process owns as running, and counts the events of an interrupted one', async () => {
    const job = 'compile-11-mh4k2x1b';
    const dir = join(projectDir(model), 'runs', job);
    mkdirSync(dir, { recursive: true });
    const other = spawn('sleep', ['30']);
    try {
      const request = { kind: 'compile', model, inputs, target: 'llvm', measure: true };
      writeFileSync(join(dir, 'run.json'), JSON.stringify({ job, kind: 'compile', state: 'running', model, startedAt: 1, request, events: 0, owner: { pid: other.pid, host: hostname() } }));
      const line = JSON.stringify({ event: 'log', job, data: { level: 'info', message: 'x' } }) + '\n';
      writeFileSync(join(dir, 'events.jsonl'), line.repeat(6));
      expect(new RunStore().list(model).runs.find((r) => r.job === job)).toMatchObject({ state: 'running' });
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    expect(new RunStore().list(model).runs.find((r) => r.job === job)).toMatchObject({ state: 'interrupted', events: 6 });
  });

  it('a run whose record cannot be written still runs, and its log says so', async () => {
    const other = join(home, 'unwritable.pt');
    const runsDir = join(projectDir(other), 'runs');
    mkdirSync(projectDir(other), { recursive: true });
    writeFileSync(runsDir, 'a file where the runs folder goes');
    const store = new RunStore();
    const jobs = new JobManager({ compile: async () => ({ ...built, model: other }) }, store);
    const logs: string[] = [];
    jobs.onEvent((e) => e.event === 'log' && logs.push(e.data.message));
    const job = jobs.start({ kind: 'compile', model: other, inputs });
    expect((await jobs.wait(job)).state).toBe('succeeded');
    expect(logs.some((m) => m.startsWith("This run's record could not be written to") && m.includes('it will not be listed after a restart'))).toBe(true);
  });

  it('reads a FIFO or a folder put in place of a record as missing, without blocking', async () => {
    const job = 'compile-9-fifo1';
    const dir = join(projectDir(model), 'runs', job);
    mkdirSync(dir, { recursive: true });
    const request = { kind: 'compile', model, inputs, target: 'llvm', measure: true };
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ job, kind: 'compile', state: 'succeeded', model, startedAt: 1, request, events: 0 }));
    // A FIFO blocks a plain read until a writer comes: this test would hang, not fail, before.
    execFileSync('mkfifo', [join(dir, 'events.jsonl'), join(dir, 'outcome.json')]);
    const rec = await new RunStore().get(model, job);
    expect(rec.events).toEqual([]);
    expect(rec.outcome).toBeNull();
  });

  it('keeps the newest events of a log past its size limit, and their lines whole', async () => {
    const file = join(home, 'big.jsonl');
    const line = JSON.stringify({ event: 'log', job: 'x', data: { level: 'info', message: 'y'.repeat(100) } }) + '\n';
    writeFileSync(file, line.repeat(10));
    const { text, truncated } = readRegularFile(file, line.length * 3 + 5);
    expect(truncated).toBe(true);
    expect(text.split('\n').slice(1, -1)).toEqual([line.trimEnd(), line.trimEnd(), line.trimEnd()]);
    expect(() => readRegularFile(home, 10)).toThrow(NotARegularFile);
  });

  it('streams a long event log: the newest 50,000 events, the count of the rest, other clients served meanwhile', async () => {
    const job = 'compile-12-mh4k2x1c';
    const dir = join(projectDir(model), 'runs', job);
    mkdirSync(dir, { recursive: true });
    const request = { kind: 'compile', model, inputs, target: 'llvm', measure: true };
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ job, kind: 'compile', state: 'succeeded', model, startedAt: 1, request, events: 60_000 }));
    const lines: string[] = [];
    for (let i = 0; i < 60_000; i++) lines.push(JSON.stringify({ event: 'log', job, data: { level: 'info', message: `line ${i}` } }));
    writeFileSync(join(dir, 'events.jsonl'), lines.join('\n') + '\n{"event": "log", "jo'); // and a torn last line
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const rec = await new RunStore().get(model, job);
    clearInterval(timer);
    expect(rec.events).toHaveLength(50_000);
    expect(rec.events_dropped).toBe(10_000);
    expect(rec.events[0]).toMatchObject({ data: { message: 'line 10000' } });
    expect(rec.events.at(-1)).toMatchObject({ data: { message: 'line 59999' } });
    expect(ticks).toBeGreaterThan(0); // the event loop ran while the log was read
  });

  it('refuses job ids that are not job ids', async () => {
    await expect(new RunStore().get(model, 'tune-1-zz')).rejects.toThrow(/There is no run/);
  });
});
