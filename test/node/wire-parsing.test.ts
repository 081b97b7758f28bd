// What the engine and the bench child send is parsed with the contract's schemas where it enters
// app/core: a reply or an event that does not match becomes a WorkbenchError (bad_engine_reply,
// bad_bench_reply) naming the message and its first issues; newer optional keys pass through.
// Stand-ins for the two processes (small Node scripts) make the bad messages: no Python, no addon.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../app/contract/errors.js';
import { JobEventSchema, JobOutcomeSchema, parseJobResult, upgradeStoredRequest, type EngineJobEvent } from '../../app/contract/jobs.js';
import { BenchHost } from '../../app/core/bench/bench-host.js';
import { EngineClient } from '../../app/core/engine-client/engine-client.js';

const dir = mkdtempSync(join(tmpdir(), 'ttvm-wire-'));

// A stand-in engine: answers `python -m torchtvm...compat` like a fit Python, then speaks the
// JSON-lines protocol, replying to `versions` as params.mode says.
const fakeEngine = join(dir, 'python');
writeFileSync(
  fakeEngine,
  `#!${process.execPath}
const { appendFileSync } = require('node:fs');
if (process.argv.some((a) => a.endsWith('compat'))) { console.log(JSON.stringify({ ok: true, message: null })); process.exit(0); }
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
out({ event: 'engine.ready', job: null, data: { pid: process.pid } });
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const req = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    if (req.method === 'shutdown') process.exit(0);
    if (req.method === 'cancel') { appendFileSync(process.env.FAKE_LOG, req.params.job + '\\n'); out({ id: req.id, result: { cancelled: true } }); continue; }
    const id = req.id;
    switch (req.params.mode) {
      case 'good':
        out({ event: 'engine.future', job: id, data: { anything: 1 } });
        out({ event: 'job.progress', job: id, data: { stage: 'load', message: 'loading', newer_key: true } });
        out({ id, result: { torch: '2.9', tvm: '0.22' } });
        break;
      case 'bad_result': out({ id, result: { torch: 2 } }); break;
      case 'bad_error': out({ id, error: 'boom' }); break;
      case 'neither': out({ id, ok: true }); break;
      case 'bad_event': out({ event: 'tune.trial', job: id, data: { task_id: 'zero', trial: 1 } }); break;
      case 'bad_envelope': out({ event: 'job.progress', job: id, data: 'loading' }); break;
    }
  }
});
`,
);
chmodSync(fakeEngine, 0o755);
const fakeLog = join(dir, 'cancels.txt');
writeFileSync(fakeLog, '');

describe('engine replies are parsed with the contract', () => {
  const engine = new EngineClient({ python: fakeEngine, env: { FAKE_LOG: fakeLog }, cancelGraceMs: 2000 });
  afterAll(() => engine.close());
  const versions = (mode: string, onEvent?: (e: EngineJobEvent) => void) => engine.request('versions', { mode }, onEvent).done;

  it('passes a good reply and its job events (unknown events ignored, newer keys kept)', async () => {
    const events: EngineJobEvent[] = [];
    expect(await versions('good', (e) => events.push(e))).toEqual({ torch: '2.9', tvm: '0.22' });
    expect(events).toEqual([{ event: 'job.progress', job: expect.any(String), data: { stage: 'load', message: 'loading', newer_key: true } }]);
  });

  it.each([
    ['a result of the wrong shape', 'bad_result', /^The engine's result of "versions" does not match the workbench's contract \(torch: .*expected string/],
    ['an error reply without code and message', 'bad_error', /^The engine's error reply to "versions" does not match the workbench's contract \(error: /],
    ['a reply with neither result nor error', 'neither', /^The engine's reply to "versions" has neither a result nor an error/],
    ['a job event whose data does not match', 'bad_event', /^The engine's tune\.trial event for "versions" does not match the workbench's contract \(data\.task_id: .*expected number.*; data\.task_name: /],
    ['an event envelope that does not match', 'bad_envelope', /^The engine's event "job\.progress" for "versions" does not match the workbench's contract \(data: /],
  ])('turns %s into bad_engine_reply', async (_what, mode, message) => {
    const err = await versions(mode).catch((e) => e);
    expect(err).toBeInstanceOf(WorkbenchError);
    expect(err.code).toBe('bad_engine_reply');
    expect(err.message).toMatch(message);
    // The engine serves on.
    expect(await versions('good')).toMatchObject({ torch: '2.9' });
  });

  it('asks the engine to stop a job whose event broke the contract', async () => {
    const { id, done } = engine.request('versions', { mode: 'bad_event' });
    await expect(done).rejects.toMatchObject({ code: 'bad_engine_reply' });
    await expect.poll(() => readFileSync(fakeLog, 'utf8').split('\n')).toContain(id);
  });
});

// A stand-in bench child: says it is ready, then answers as the requested model path says.
const fakeChild = join(dir, 'bench-child.mjs');
writeFileSync(
  fakeChild,
  `process.send({ ready: true, pid: process.pid, runtime: { path: '', loaded: false } });
process.on('message', (m) => {
  const mode = m.method === 'inspect' ? m.params.path : m.params.models[0];
  if (mode === 'bad_result') process.send({ id: m.id, result: { path: 3, inputs: [], ops: {}, parameters: { count: 0, bytes: 0, tensors: 0 }, exported: null } });
  else if (mode === 'bad_samples') process.send({ id: m.id, samples: [[0, 'one', 1.5]] });
  else if (mode === 'good') process.send({ id: m.id, result: { path: 'good', inputs: [{ name: 'x', type: 'Tensor', shape: [1, 8], dtype: 'float32' }], input_style: 'positional', ops: { 'aten::linear': 1 }, parameters: { count: 1, bytes: 4, tensors: 1 }, exported: null } });
});
process.on('disconnect', () => process.exit(0));
`,
);

describe('bench child messages are parsed with the contract', () => {
  const host = new BenchHost({ addon: fakeChild, childScript: fakeChild });

  it('passes a good inspect result, keeping keys the schema does not list', async () => {
    const r = await host.inspect('good');
    expect(r.ops['aten::linear']).toBe(1);
    expect(r.input_style).toBe('positional');
  });

  it('turns a result of the wrong shape into bad_bench_reply naming the issue', async () => {
    const err = await host.inspect('bad_result').catch((e) => e);
    expect(err).toMatchObject({ code: 'bad_bench_reply' });
    expect(err.message).toMatch(/^The benchmark process's result of inspect \(inspect bad_result\) does not match the workbench's contract \(path: /);
  });

  it('turns malformed samples into bad_bench_reply', async () => {
    const err = await host.benchmark({ models: ['bad_samples'], warmup: 0, iterations: 1 }).catch((e) => e);
    expect(err).toMatchObject({ code: 'bad_bench_reply' });
    expect(err.message).toMatch(/samples .*does not match the workbench's contract \(samples\.0\.1: /);
  });

  it('the stand-in child exists (forked by the host)', () => {
    expect(existsSync(fakeChild)).toBe(true);
  });
});

describe('contract schemas', () => {
  it('parse every job event and refuse one whose data is wrong', () => {
    expect(JobEventSchema.safeParse({ event: 'bench.sample', job: 'bench-1-a', data: { model: 'm.pt', iteration: 0, latency_ms: 1.5 } }).success).toBe(true);
    expect(JobEventSchema.safeParse({ event: 'tune.tasks', job: 'tune-1-a', data: { tasks: [{ id: 0, name: 'dense', weight: 1, default_ms: null }] } }).success).toBe(true);
    expect(JobEventSchema.safeParse({ event: 'log', job: 'j', data: { level: 'verbose', message: 'x' } }).success).toBe(false);
    expect(JobEventSchema.safeParse({ event: 'job.progress', job: 'j', data: { stage: 's', message: 'm', fraction: 2 } }).success).toBe(false);
  });

  it('type a result by its kind and refuse one that does not match with bad_result', () => {
    const inspect = { path: '/m.pt', inputs: [{ name: 'x', type: 'Tensor' }], ops: {}, parameters: { count: 0, bytes: 0, tensors: 0 }, exported: null, newer: 1 };
    expect(parseJobResult('inspect', inspect)).toEqual(inspect);
    expect(() => parseJobResult('compile', inspect)).toThrow(expect.objectContaining({ code: 'bad_result', message: expect.stringMatching(/^The compile result does not match the workbench's contract \(model: /) }));
    expect(JobOutcomeSchema.safeParse({ state: 'succeeded', job: 'j', result: inspect }).success).toBe(true);
    expect(JobOutcomeSchema.safeParse({ state: 'succeeded', job: 'j', result: { nothing: true } }).success).toBe(false);
  });

  it('rename the camelCase keys of requests stored by older versions', () => {
    expect(upgradeStoredRequest({ kind: 'tune', workDir: '/w', trialsPerIter: 4, exportPath: '/e.pt', work_dir: '/new' })).toEqual({ kind: 'tune', trials_per_iter: 4, export_path: '/e.pt', work_dir: '/new' });
    expect(upgradeStoredRequest(null)).toBeNull();
  });
});
