// Runs on disk: every compile/tune/bench/export job leaves request, events (JSON lines) and outcome
// in its model's project folder; a fresh store (a restarted app) lists them and marks the ones that
// were running as interrupted.
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobManager } from '../../app/core/jobs.js';
import { RunStore } from '../../app/core/runs/run-store.js';
import { projectDir } from '../../app/core/paths.js';

describe('run store', () => {
  const home = mkdtempSync(join(tmpdir(), 'torchtvm-runs-'));
  const model = join(home, 'm.pt');
  const inputs = [{ name: 'x', dims: [4, 32], dtype: 'float32' as const }];
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
          return { ok: true };
        },
        compile: async () => ({ built: true }),
        inspect: async () => ({}),
      },
      store,
    );
    jobs.onEvent((e) => store.event(e));
    const tune = jobs.start({ kind: 'tune', model, inputs, trials: 3 });
    await new Promise((r) => setTimeout(r, 20));
    const live = store.list(model);
    expect(live.runs).toHaveLength(1);
    expect(live.runs[0]).toMatchObject({ job: tune, kind: 'tune', state: 'running' });
    expect(live.defaults.workDir).toBe(join(projectDir(model), 'tuning'));
    expect(live.defaults.exportPath).toBe(join(projectDir(model), 'exports', 'm.tvm.pt'));
    const mid = store.get(model, tune);
    expect(mid.events.filter((e) => e.event === 'tune.trial')).toHaveLength(3);
    expect(mid.outcome).toBeNull();

    // A restarted app: the run was running when its process stopped.
    const restarted = new RunStore();
    expect(restarted.list(model).runs[0]).toMatchObject({ job: tune, state: 'interrupted' });
    expect(restarted.get(model, tune).events.filter((e) => e.event === 'tune.trial').map((e) => (e.data as { trial: number }).trial)).toEqual([1, 2, 3]);

    release();
    expect((await jobs.wait(tune)).state).toBe('succeeded');
    const exp = jobs.start({ kind: 'compile', model, inputs, exportPath: join(home, 'out.pt') });
    await jobs.wait(exp);
    jobs.start({ kind: 'inspect', model });
    const after = new RunStore().list(model);
    expect(after.runs.map((r) => [r.kind, r.state])).toEqual([['export', 'succeeded'], ['tune', 'succeeded']]);
    const dir = join(projectDir(model), 'runs', tune);
    expect(readdirSync(dir).sort()).toEqual(['events.jsonl', 'outcome.json', 'request.json', 'run.json']);
    expect(JSON.parse(readFileSync(join(dir, 'outcome.json'), 'utf8'))).toMatchObject({ state: 'succeeded', result: { ok: true } });
    expect(readdirSync(dir).some((f) => f.endsWith('.tmp'))).toBe(false);
    expect(existsSync(join(projectDir(model), 'exports'))).toBe(true);
  });

  it('refuses job ids that are not job ids', () => {
    expect(() => new RunStore().get(model, 'tune-1-zz')).toThrow(/There is no run/);
  });
});
