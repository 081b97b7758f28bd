// The engine client against the real Python engine: requests, events, errors, cancel, crashes.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../app/contract/errors.js';
import { EngineClient } from '../../app/core/engine-client/engine-client.js';
import { createWorkbench } from '../../app/core/workbench.js';
import { makeModels, tmpHome } from './helpers.js';

let models: string;
beforeAll(() => {
  models = makeModels();
  process.env.TORCHTVM_HOME = tmpHome();
});

const mlpSpec = [{ name: 'x', dims: [2, 16], dtype: 'float32' as const }];

describe('EngineClient', () => {
  const engine = new EngineClient({ cancelGraceMs: 3000 });
  afterAll(() => engine.close());

  it('runs a compile with progress events and a verified result', async () => {
    const events: string[] = [];
    const { done } = engine.request('compile', { model: join(models, 'mlp.pt'), inputs: mlpSpec, out_dir: join(models, 'build'), measure: false }, (e) => events.push(`${e.event}:${(e.data as { stage?: string }).stage}`));
    const r = (await done) as { verification: { ok: boolean; outputs: Array<{ max_abs: number }> }; files: { library: string } };
    expect(r.verification.ok).toBe(true);
    expect(r.verification.outputs[0].max_abs).toBeLessThan(1e-4);
    expect(events).toEqual(expect.arrayContaining(['job.progress:load', 'job.progress:import', 'job.progress:build', 'job.progress:verify']));
    expect(r.files.library).toMatch(/model\.so$/);
  });

  it('turns an engine error into a WorkbenchError with the code and sentence', async () => {
    const err = await engine.request('inspect', { model: join(models, 'state_dict.pt') }).done.catch((e) => e);
    expect(err).toBeInstanceOf(WorkbenchError);
    expect(err.code).toBe('not_torchscript');
    expect(err.message).toMatch(/state dict/);
  });

  it('reports a killed engine as a sentence and starts a fresh one on the next request', async () => {
    // Killed on its first build event, not after a fixed delay: a fast machine could finish first.
    let killed = false;
    const { done } = engine.request('compile', { model: join(models, 'mlp.pt'), inputs: mlpSpec, out_dir: join(models, 'build2'), measure: true }, (e) => {
      if (!killed && (e.data as { stage?: string }).stage === 'build') {
        killed = true;
        engine.kill('SIGKILL');
      }
    });
    const pid = engine.pid;
    const err = await done.catch((e) => e);
    expect(err.code).toBe('engine_crashed');
    expect(err.message).toMatch(/^The engine stopped unexpectedly \(signal SIGKILL\) while running "compile"/);
    const r = await engine.request('versions', {}).done;
    expect(r.tvm).toMatch(/^0\.2/);
    expect(engine.pid).not.toBe(pid);
  });

  it('cancels a running job', async () => {
    let cancelled = false;
    const { id, done } = engine.request('compile', { model: join(models, 'mlp.pt'), inputs: mlpSpec, out_dir: join(models, 'build3') }, (e) => {
      if (!cancelled && (e.data as { stage?: string }).stage === 'import') {
        cancelled = true;
        engine.cancel(id);
      }
    });
    const err = await done.catch((e) => e);
    expect(err.code).toBe('cancelled');
    // the engine still serves (or was replaced after a forced stop)
    expect((await engine.request('versions', {}).done).torch).toBeTruthy();
  });
});

describe('EngineClient killing a job that will not stop', () => {
  it('sends the requests queued behind it to a fresh engine instead of failing them', async () => {
    const engine = new EngineClient({ cancelGraceMs: 50 });
    try {
      let queued: { id: string; done: Promise<unknown> } | undefined;
      const first = engine.request('compile', { model: join(models, 'mlp.pt'), inputs: mlpSpec, out_dir: join(models, 'build-kill') }, (e) => {
        if (!queued && (e.data as { stage?: string }).stage === 'import') {
          queued = engine.request('inspect', { model: join(models, 'mlp.pt') });
          engine.cancel(first.id); // the import does not look at cancel within 50 ms: killed
        }
      });
      const before = await first.done.catch((e) => e);
      expect(before.code).toBe('cancelled');
      expect(queued).toBeDefined();
      const inspected = (await queued!.done) as { inputs: unknown[] };
      expect(inspected.inputs).toHaveLength(1);
    } finally {
      engine.close();
    }
  });
});

describe('Workbench jobs', () => {
  it('stops a job past its time limit and fails it with timed_out, and the engine serves the next one', async () => {
    const wb = createWorkbench({ host: 'test' });
    const t0 = Date.now();
    const { job } = await wb.startJob({ kind: 'compile', model: join(models, 'mlp.pt'), inputs: mlpSpec, out_dir: join(models, 'build-timeout'), timeout_s: 1 });
    expect((await wb.listJobs()).find((j) => j.job === job)?.timeoutS).toBe(1);
    const outcome = await wb.waitJob({ job });
    expect(outcome.state).toBe('failed');
    expect(outcome.state === 'failed' && outcome.error).toMatchObject({ code: 'timed_out' });
    expect(outcome.state === 'failed' && outcome.error.message).toMatch(/ran past its time limit \(1 s\) and was stopped.*--timeout SECONDS/);
    expect(Date.now() - t0).toBeLessThan(30_000);
    const next = await wb.startJob({ kind: 'inspect', model: join(models, 'mlp.pt') });
    expect((await wb.waitJob(next)).state).toBe('succeeded');
    await wb.close();
  });

  it('runs a job through the manager with state events and an outcome', async () => {
    const wb = createWorkbench({ host: 'test' });
    const states: string[] = [];
    wb.onEvent((e) => e.event === 'job.state' && states.push(e.data.state));
    const { job } = await wb.startJob({ kind: 'inspect', model: join(models, 'mlp.pt') });
    const outcome = await wb.waitJob({ job });
    await wb.close();
    expect(outcome.state).toBe('succeeded');
    expect(states).toEqual(['running', 'succeeded']);
    expect(await wb.recentModels()).toContain(join(models, 'mlp.pt'));
  });

  it('refuses an invalid request with a sentence', async () => {
    const wb = createWorkbench({ host: 'test' });
    // (an empty input list is valid: a .pt2 brings its own specs)
    await expect(wb.startJob({ kind: 'compile', model: 'x.pt', inputs: [{ name: 'x', dims: [0], dtype: 'float32' }] } as never)).rejects.toThrow(/compile request is invalid: inputs/);
    await wb.close();
  });
});
