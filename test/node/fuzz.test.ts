// Property-based fuzzing (fast-check) of everything that parses outside input on the Node side: the
// input-spec parser, the tuning-log reader, the run-record reader, the IPC/WebSocket call validator (validateCall) and the
// browser-mode server's message handling over a real socket. The properties: no crash (only the
// documented error type escapes), no hang (every input answers within HANG_MS), every failure a
// sentence, and what is accepted is well formed.
//
// CI runs FUZZ_RUNS inputs per target (default 300). `npm run fuzz:node` runs 10,000 per target
// and records the counts in test-artifacts/fuzz-node.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { API_METHODS, validateCall, type WorkbenchApi } from '../../app/contract/api.js';
import { WorkbenchError } from '../../app/contract/errors.js';
import { JobRequestSchema } from '../../app/contract/jobs.js';
import { formatSpec, InputSpecSchema, parseSpec, parseSpecFields } from '../../app/contract/specs.js';
import { EngineClient } from '../../app/core/engine-client/engine-client.js';
import { readTuningLog } from '../../app/core/tuning/tuning-log.js';
import { projectDir } from '../../app/core/paths.js';
import { RunStore } from '../../app/core/runs/run-store.js';
import { RunRecordSchema, RunSummarySchema } from '../../app/contract/runs.js';
import { startServer } from '../../app/server/server.js';
import { tmpHome } from './helpers.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;
const HANG_MS = 2000;
const REPORT = process.env.FUZZ_REPORT;

interface Tally {
  inputs: number;
  accepted: number;
  refused: number;
  crashes: number;
  hangs: number;
  max_ms: number;
  examples: string[];
}
const tallies: Record<string, Tally> = {};
const tally = (name: string): Tally => (tallies[name] ??= { inputs: 0, accepted: 0, refused: 0, crashes: 0, hangs: 0, max_ms: 0, examples: [] });

/** A message a user can read: one or more sentences, no stack, no "[object Object]", ending in punctuation. */
export function isSentence(m: unknown): boolean {
  if (typeof m !== 'string') return false;
  const t = m.trim();
  return t.length >= 8 && t.length <= 20_000 && /[.!?)…]$/.test(t) && !/\n\s+at |\[object Object\]|undefined is not|Cannot read propert/.test(t);
}

const show = (v: unknown) => {
  try {
    return JSON.stringify(v)?.slice(0, 300) ?? String(v);
  } catch {
    return typeof v;
  }
};

/** Runs `check` on one input, timing it and counting the outcome; `check` returns 'accepted' | 'refused' or a complaint. */
async function judge(t: Tally, input: unknown, check: () => Promise<'accepted' | 'refused' | string> | 'accepted' | 'refused' | string): Promise<void> {
  t.inputs += 1;
  const t0 = performance.now();
  let verdict: string;
  try {
    verdict = await check();
  } catch (e) {
    verdict = `threw ${(e as Error)?.name}: ${(e as Error)?.message?.slice(0, 200)}`;
  }
  const ms = performance.now() - t0;
  t.max_ms = Math.max(t.max_ms, ms);
  if (ms > HANG_MS) {
    t.hangs += 1;
    if (t.examples.length < 10) t.examples.push(`hang ${ms.toFixed(0)} ms on ${show(input)}`);
  }
  if (verdict === 'accepted') t.accepted += 1;
  else if (verdict === 'refused') t.refused += 1;
  else {
    t.crashes += 1;
    if (t.examples.length < 10) t.examples.push(`${verdict} on ${show(input)}`);
  }
}

const params = { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) };

// ---- generators ----

const junk = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom('', ' ', ':', '::', ':::', '\u0000', '__proto__', 'constructor', '💥', '\n'));
const num = fc.oneof(fc.integer({ min: -5, max: 100000 }).map(String), fc.constantFrom('0', '1', '007', '9007199254740993', '1e3', '1.5', '-1', '99999999999999999999999', '9'.repeat(400), 'Infinity', 'NaN', '0x10'));
const symbol = fc.tuple(fc.constantFrom('batch', 'seq', '_b', '1x', 'b-c', ''), fc.option(num), fc.option(num)).map(([n, lo, hi]) => (lo === null && hi === null ? n : `${n}=${lo ?? ''}..${hi ?? ''}`));
const dimTok = fc.oneof(num, symbol, junk);
const dims = fc.array(dimTok, { maxLength: 8 }).chain((ds) => fc.constantFrom(ds.join(','), `[${ds.join(', ')}]`, `(${ds.join(', ')})`, `torch.Size([${ds.join(', ')}])`, ds.join(' ')));
const dtype = fc.oneof(fc.constantFrom('float32', 'float16', 'bfloat16', 'int64', 'int32', 'bool', 'float64', 'FLOAT32', ' float32 '), junk);
const range = fc.oneof(fc.tuple(num, num).map(([a, b]) => `${a}..${b}`), fc.tuple(fc.double(), fc.double()).map(([a, b]) => `${a}..${b}`), junk);
const name = fc.oneof(fc.constantFrom('x', 'input_ids', '_', '1x', 'a b', '__proto__'), junk);
/** Well-formed specs (as objects), so that a good share of inputs gets past the first check. */
const goodName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/);
const goodDim = fc.oneof(
  fc.integer({ min: 1, max: 1 << 20 }),
  fc.tuple(goodName, fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 64 })).map(([n, lo, span]) => ({ name: n, min: lo, max: lo + span })),
);
const goodRange = fc.tuple(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 1, max: 1000 }), fc.constantFrom(1, 10, 1000)).map(([lo, span, div]) => [lo / div, (lo + span) / div] as [number, number]);
const goodSpec = fc.record({ name: goodName, dims: fc.array(goodDim, { minLength: 1, maxLength: 6 }), dtype: fc.constantFrom('float32', 'float16', 'bfloat16', 'int64', 'int32', 'bool'), range: fc.option(goodRange, { nil: undefined }) }).map((sp) => (sp.range ? sp : { name: sp.name, dims: sp.dims, dtype: sp.dtype }));
/** One random edit (insert, delete or replace a character) of a string. */
const mutate = (base: fc.Arbitrary<string>) =>
  fc.tuple(base, fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.oneof(fc.constantFrom(',', ':', '.', '=', '-', ' ', '[', ']', '0', '9', 'x', '\u0000', 'é'), fc.string({ minLength: 1, maxLength: 2 }))).map(([t, i, op, c]) => {
    const k = t.length ? i % t.length : 0;
    return op === 'insert' ? t.slice(0, k) + c + t.slice(k) : op === 'delete' ? t.slice(0, k) + t.slice(k + 1) : t.slice(0, k) + c + t.slice(k + 1);
  });
const goodSpecText = goodSpec.map((sp) => formatSpec(sp as never));
const specText = fc.oneof(
  { weight: 3, arbitrary: goodSpecText },
  { weight: 3, arbitrary: mutate(goodSpecText) },
  junk,
  fc.tuple(name, dims, dtype).map((p) => p.join(':')),
  fc.tuple(name, dims, dtype, range).map((p) => p.join(':')),
  fc.array(fc.oneof(name, dims, dtype, range), { maxLength: 6 }).map((p) => p.join(':')),
);

// ---- 1. the input-spec parser ----

describe('fuzz: the input-spec parser', () => {
  it(`parseSpec and parseSpecFields: ${RUNS} inputs each, no crash, every refusal a sentence, every spec well formed and stable`, async () => {
    const t = tally('spec parser');
    await fc.assert(
      fc.asyncProperty(specText, fc.oneof(fc.record({ name, dims, dtype, range: fc.option(range, { nil: undefined }) }), goodSpec.map((sp) => ({ name: sp.name, dims: formatSpec(sp as never).split(':')[1], dtype: sp.dtype, range: 'range' in sp && sp.range ? `${sp.range[0]}..${sp.range[1]}` : undefined }))), async (text, fields) => {
        await judge(t, text, () => {
          let spec;
          try {
            spec = parseSpec(text);
          } catch (e) {
            if (!(e instanceof Error) || e.constructor.name === 'ZodError') return `not a sentence error: ${(e as Error)?.constructor?.name}`;
            return isSentence(e.message) ? 'refused' : `not a sentence: ${e.message.slice(0, 200)}`;
          }
          if (!InputSpecSchema.safeParse(spec).success) return 'accepted a spec the schema refuses';
          // What it accepts it can write back, and reading that back means the same (`b=..8` is written `b=1..8`).
          const text1 = formatSpec(spec);
          const text2 = formatSpec(parseSpec(text1));
          return text1 === text2 ? 'accepted' : `round trip changed ${text1} into ${text2}`;
        });
        await judge(t, fields, () => {
          const r = parseSpecFields(fields);
          if (r.spec) return InputSpecSchema.safeParse(r.spec).success ? 'accepted' : 'accepted a spec the schema refuses';
          const msgs = Object.values(r.errors);
          return msgs.length && msgs.every(isSentence) ? 'refused' : `bad errors ${show(r.errors)}`;
        });
      }),
      params,
    );
    expect(t.examples).toEqual([]);
  });
});

describe('fuzz findings, kept as regressions', () => {
  it('a range bound too large for a number is a sentence, not a ZodError', () => {
    expect(() => parseSpec(`x:2:float32:0..${'9'.repeat(400)}`)).toThrow(/range: the value range 0\.\.9+… has a bound too large for a number; use bounds below 1e308\./);
  });
  it('a symbol bound beyond 2^53 is a sentence, not a ZodError', () => {
    expect(() => parseSpec('x:b=1..9007199254740993:int64')).toThrow(/dims: symbol b's bound 9007199254740992 is too large\./);
  });
  it('a range bound that prints in exponent form parses back', () => {
    const big = parseSpec('x:2:float32:0..99999999999999999999999');
    expect(formatSpec(big)).toBe('x:2:float32:0..1e+23');
    expect(parseSpec(formatSpec(big))).toEqual(big);
    expect(parseSpec('x:2:float32:-1e-3..2.5E2').range).toEqual([-0.001, 250]);
  });
  it('a scalar spec is written so that it parses back', () => {
    const scalar = parseSpec('x:[]:float32');
    expect(scalar.dims).toEqual([]);
    expect(parseSpec(formatSpec(scalar))).toEqual(scalar);
  });
  it('a method that is an object without a prototype is refused with a sentence (String() would throw)', () => {
    expect(() => validateCall(Object.create(null), [])).toThrow(/^Unknown method of type object; the workbench offers .*\.$/);
  });
});

// ---- 2. the tuning-log reader ----

const b64 = fc.oneof(fc.constantFrom('e30=', Buffer.from('{"global_symbol": {"data": "fused_dense"}}').toString('base64')), fc.base64String(), junk);
const hash = fc.oneof(fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', '0', '-1'), fc.bigInt({ min: 0n, max: 2n ** 64n }).map(String), junk);
const workloadLine = fc.oneof(
  fc.tuple(hash, b64).map((v) => JSON.stringify(v)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  junk,
  fc.tuple(hash, b64).map((v) => JSON.stringify(v).slice(0, 7)), // torn line
);
const secs = fc.array(fc.oneof(fc.double({ noNaN: false }), fc.constantFrom(1e10, 0, -1, 1e308), fc.string() as fc.Arbitrary<unknown>), { maxLength: 4 });
const target = fc.oneof(fc.constant({ kind: 'llvm', mcpu: 'znver3' }), fc.string(), fc.constant(null), fc.jsonValue());
const recordLine = fc.oneof(
  fc.tuple(fc.integer({ min: -2, max: 6 }), secs, target).map(([w, s, tg]) => JSON.stringify([w, [[[], []], s, tg, []]])),
  fc.tuple(fc.oneof(fc.double(), fc.string(), fc.constant(null)), fc.jsonValue()).map((v) => JSON.stringify(v)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  junk,
);
const sidecarText = fc.oneof(
  fc.constant(null),
  fc.dictionary(hash, fc.oneof(fc.record({ name: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), weight: fc.oneof(fc.integer(), fc.double(), fc.string()) }, { requiredKeys: [] }), fc.jsonValue())).map((w) => JSON.stringify({ format: 1, model: '/m.pt', workloads: w })),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  junk,
);

/**
 * The engine's line rule (torchtvm/tune/database.py read_lines, MetaSchedule's too): only "\n" ends
 * a line, and a line is blank when Python's str.strip() empties it (Python's whitespace: JavaScript's
 * trim() also strips U+FEFF but not U+001C..U+001F or U+0085).
 */
// eslint-disable-next-line no-control-regex -- Python's whitespace includes these control characters
const PY_BLANK = /^[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

describe('fuzz: the tuning-log reader (the engine, through app/core)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ttvm-fuzz-log-'));
  let engine: EngineClient;
  beforeAll(async () => {
    process.env.TORCHTVM_HOME ??= tmpHome();
    engine = new EngineClient();
    await readTuningLog(engine, dir).catch(() => {}); // started here, so that no input is timed with the engine's start
  });
  afterAll(async () => {
    await engine?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`readTuningLog: ${RUNS} generated work dirs, no crash, damage counted, every refusal a sentence`, async () => {
    const t = tally('tuning-log reader');
    await fc.assert(
      fc.asyncProperty(fc.array(workloadLine, { maxLength: 6 }), fc.array(recordLine, { maxLength: 12 }), sidecarText, fc.constantFrom('\n', '\r\n'), fc.constantFrom('files', 'files', 'files', 'files', 'no-records', 'records-is-a-folder'), async (ws, rs, side, eol, layout) => {
        const records = join(dir, 'database_tuning_record.json');
        rmSync(records, { recursive: true, force: true });
        writeFileSync(join(dir, 'database_workload.json'), ws.join(eol) + eol);
        if (layout === 'files') writeFileSync(records, rs.join(eol) + eol);
        if (layout === 'records-is-a-folder') mkdirSync(records);
        const sidecar = join(dir, 'workbench_tasks.json');
        if (side === null) rmSync(sidecar, { force: true });
        else writeFileSync(sidecar, side);
        await judge(t, { ws, rs, side }, async () => {
          let log;
          try {
            log = await readTuningLog(engine, dir);
          } catch (e) {
            const expected = layout !== 'files';
            return e instanceof WorkbenchError && isSentence(e.message) && expected ? 'refused' : `threw ${(e as Error)?.name}: ${(e as Error)?.message}`;
          }
          if (layout !== 'files') return `read a work dir whose records file is ${layout}`;
          const nonEmpty = (xs: string[]) => xs.join('\n').split('\n').filter((l) => !PY_BLANK.test(l)).length;
          if (log.tasks.length !== nonEmpty(ws)) return `tasks ${log.tasks.length} for ${nonEmpty(ws)} workload lines`;
          if (log.records + log.skipped.record_lines !== nonEmpty(rs)) return 'records + skipped does not add up to the record lines';
          for (const task of log.tasks) {
            if (typeof task.name !== 'string' || typeof task.hash !== 'string') return `task name/hash not strings: ${show(task)}`;
            if (task.weight !== null && !Number.isFinite(task.weight)) return `weight ${task.weight}`;
            if (task.best_ms !== null && !Number.isFinite(task.best_ms)) return `best ${task.best_ms}`;
            if (task.curve.length !== task.records) return 'curve length differs from the records';
          }
          if (log.estimated_ms !== null && !Number.isFinite(log.estimated_ms)) return `estimate ${log.estimated_ms}`;
          if (!log.skipped.reasons.every((r) => typeof r === 'string')) return 'reasons not strings';
          JSON.stringify(log); // what the UI and --json get must serialise
          return 'accepted';
        });
      }),
      params,
    );
    expect(t.examples).toEqual([]);
  });
});

// ---- 3. the call validator (IPC and WebSocket) ----

const specObj = fc.record(
  {
    name: fc.oneof(fc.constant('x'), fc.string()),
    dims: fc.array(fc.oneof(fc.integer({ min: -3, max: 1 << 20 }), fc.record({ name: fc.oneof(fc.constant('batch'), fc.string()), min: fc.integer(), max: fc.integer() }, { requiredKeys: ['name'] }), fc.anything()), { maxLength: 5 }),
    dtype: fc.oneof(fc.constantFrom('float32', 'int64', 'bool'), fc.string()),
    range: fc.oneof(fc.tuple(fc.double(), fc.double()), fc.anything()),
  },
  { requiredKeys: [] },
);
const pathLike = fc.oneof(fc.constantFrom('/tmp/m.pt', 'm.pt', '', '/', '../../etc/passwd', '\u0000', 'C:\\x'), fc.string(), fc.anything());
const jobRequest = fc.record(
  {
    kind: fc.oneof(fc.constantFrom('inspect', 'compile', 'tune', 'bench', 'shell', '__proto__'), fc.anything()),
    model: pathLike,
    inputs: fc.oneof(fc.array(specObj, { maxLength: 3 }), fc.anything()),
    target: fc.oneof(fc.constant('llvm'), fc.string()),
    export_path: pathLike,
    out_dir: pathLike,
    work_dir: pathLike,
    trials: fc.oneof(fc.integer(), fc.double(), fc.anything()),
    overwrite: fc.oneof(fc.boolean(), fc.anything()),
    create_parent: fc.oneof(fc.boolean(), fc.anything()),
    iterations: fc.oneof(fc.integer(), fc.anything()),
    measure: fc.anything(),
    __proto__: fc.anything(),
    constructor: fc.anything(),
  },
  { requiredKeys: [] },
);
/** Requests that pass the schema (or nearly: one field replaced by anything). */
const goodRequest = fc.oneof(
  fc.record({ kind: fc.constant('inspect'), model: fc.constant('/tmp/m.pt') }),
  fc.record({ kind: fc.constant('compile'), model: fc.constant('/tmp/m.pt'), inputs: fc.array(goodSpec, { minLength: 1, maxLength: 3 }), export_path: fc.option(fc.constantFrom('/tmp/out.pt', '/etc/x.pt'), { nil: undefined }), overwrite: fc.option(fc.boolean(), { nil: undefined }), create_parent: fc.option(fc.boolean(), { nil: undefined }) }, { requiredKeys: ['kind', 'model', 'inputs'] }),
  fc.record({ kind: fc.constant('tune'), model: fc.constant('/tmp/m.pt'), inputs: fc.array(goodSpec, { minLength: 1, maxLength: 2 }), trials: fc.integer({ min: 1, max: 100 }), work_dir: fc.option(fc.constantFrom('/tmp/w', '/'), { nil: undefined }) }, { requiredKeys: ['kind', 'model', 'inputs', 'trials'] }),
  fc.record({ kind: fc.constant('bench'), model: fc.constant('/tmp/m.pt'), iterations: fc.integer({ min: 1, max: 100 }) }),
);
const nearlyGoodRequest = fc.tuple(goodRequest, fc.constantFrom('kind', 'model', 'inputs', 'trials', 'export_path', 'overwrite', 'extra', '__proto__'), fc.anything()).map(([r, k, v]) => ({ ...r, [k]: v }));
const method = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...API_METHODS) }, fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'onEvent', 'close', 'engine'), fc.string(), fc.anything());
const args = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(goodRequest) },
  { weight: 2, arbitrary: fc.tuple(nearlyGoodRequest) },
  fc.constant([]),
  fc.tuple(fc.record({ job: fc.string({ minLength: 1, maxLength: 20 }) })),
  fc.tuple(fc.record({ dir: fc.constantFrom('/tmp', '/', 'x') })),
  fc.tuple(jobRequest),
  fc.tuple(fc.record({ job: fc.oneof(fc.string(), fc.anything()), dir: fc.oneof(fc.string(), fc.anything()) }, { requiredKeys: [] })),
  fc.array(fc.anything(), { maxLength: 4 }),
  fc.anything(),
  fc.constant(Object.create(null)),
);

describe('fuzz: the run-record reader', () => {
  const home = mkdtempSync(join(tmpdir(), 'torchtvm-fuzz-runs-'));
  const model = join(home, 'm.pt');
  const job = 'compile-1-abcdef12';
  let dir = ''; // in the project folder of `home`, once TORCHTVM_HOME points there
  const request = { kind: 'compile', model, inputs: [{ name: 'x', dims: [2], dtype: 'float32' }], target: 'llvm', measure: true };
  const summary = { job, kind: 'compile', state: 'succeeded', model, startedAt: 1, request, events: 1 };
  const event = { event: 'log', job, data: { level: 'info', message: 'hello' } };
  const outcome = { state: 'failed', job, error: { code: 'x', message: 'It failed.' } };
  /** A record file: a valid one, a valid one edited by one character, JSON of another shape, junk, a folder, or nothing. */
  const recordFile = (valid: unknown) =>
    fc.oneof(
      fc.constant(JSON.stringify(valid)),
      mutate(fc.constant(JSON.stringify(valid))),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ ...Object.fromEntries(Object.keys(valid as object).map((k) => [k, fc.jsonValue()])) }).map((v) => JSON.stringify({ ...(valid as object), ...v })),
      junk,
      fc.constantFrom('<folder>', '<missing>'),
    );
  const eventsFile = fc.array(fc.oneof(fc.constant(JSON.stringify(event)), mutate(fc.constant(JSON.stringify(event))), fc.jsonValue().map((v) => JSON.stringify(v)), junk), { maxLength: 8 }).map((ls) => ls.join('\n'));
  const put = (name: string, text: string) => {
    const f = join(dir, name);
    rmSync(f, { recursive: true, force: true });
    if (text === '<folder>') mkdirSync(f);
    else if (text !== '<missing>') writeFileSync(f, text);
  };

  it(`RunStore list and get: ${RUNS} generated run folders, no crash, a damaged record shown as damaged or left out, every run well formed`, async () => {
    const t = tally('run-record reader');
    const saved = process.env.TORCHTVM_HOME;
    process.env.TORCHTVM_HOME = home;
    try {
      dir = join(projectDir(model), 'runs', job);
      mkdirSync(dir, { recursive: true });
      await fc.assert(
        fc.asyncProperty(recordFile(summary), recordFile(request), recordFile(outcome), eventsFile, async (run, req, out, events) => {
          put('run.json', run);
          put('request.json', req);
          put('outcome.json', out);
          put('events.jsonl', events);
          await judge(t, { run, req, out, events }, async () => {
            const listed = new RunStore().list(model).runs;
            for (const r of listed) if (!RunSummarySchema.safeParse(r).success) return `listed a run the contract refuses: ${show(r)}`;
            if (!listed.length) {
              try {
                await new RunStore().get(model, job);
              } catch (e) {
                return e instanceof WorkbenchError && isSentence(e.message) ? 'refused' : `get threw ${(e as Error)?.message}`;
              }
              return 'get returned a run that list left out';
            }
            const rec = await new RunStore().get(model, job);
            return RunRecordSchema.safeParse(rec).success ? 'accepted' : `a record the contract refuses: ${show(rec)}`;
          });
        }),
        params,
      );
    } finally {
      if (saved === undefined) delete process.env.TORCHTVM_HOME;
      else process.env.TORCHTVM_HOME = saved;
    }
    expect(t.crashes, t.examples.join('\n')).toBe(0);
    expect(t.hangs).toBe(0);
  });
});

describe('fuzz: the call validator', () => {
  it(`validateCall: ${RUNS} calls, only WorkbenchError(bad_request) with a sentence escapes, accepted calls match their schema, no prototype pollution`, async () => {
    const t = tally('validateCall');
    await fc.assert(
      fc.asyncProperty(method, args, async (m, a) => {
        await judge(t, [m, a], () => {
          let r;
          try {
            r = validateCall(m, a);
          } catch (e) {
            return e instanceof WorkbenchError && e.code === 'bad_request' && isSentence(e.message) ? 'refused' : `threw ${(e as Error)?.name}: ${(e as Error)?.message}`;
          }
          if (!API_METHODS.includes(r.method) || !Array.isArray(r.args)) return 'accepted an unknown method';
          if (r.method === 'startJob' && !JobRequestSchema.safeParse(r.args[0]).success) return 'accepted an invalid job request';
          if (({} as Record<string, unknown>).polluted !== undefined || Object.prototype.hasOwnProperty.call(Object.prototype, 'kind')) return 'prototype polluted';
          return 'accepted';
        });
      }),
      params,
    );
    expect(t.examples).toEqual([]);
  });
});

// ---- 4. the browser-mode server's message handling, over a real WebSocket ----

describe('fuzz: the browser-mode server', () => {
  it(`${RUNS} messages over a real socket: a call gets a result with its id (an error is a sentence), anything else closes with 1008 and a reason; the server keeps serving`, async () => {
    const t = tally('server messages');
    const site = mkdtempSync(join(tmpdir(), 'ttvm-fuzz-site-'));
    writeFileSync(join(site, 'index.html'), '<!doctype html>');
    const root = mkdtempSync(join(tmpdir(), 'ttvm-fuzz-root-'));
    mkdirSync(join(root, 'ok'), { recursive: true });
    // app/core stand-in: the fuzz is about the envelope, the validator and the path guard, not the engine.
    const api: WorkbenchApi = {
      info: async () => ({ version: '0', versions: {}, exampleModel: null, platform: 'fuzz', host: 'browser' }),
      startJob: async () => ({ job: 'j' }),
      cancelJob: async () => ({ cancelled: false }),
      trackerQueues: async ({ tracker }) => ({ tracker, keys: [] }),
      waitJob: async ({ job }) => ({ state: 'cancelled', job }),
      listJobs: async () => [],
      readTuningLog: async () => ({ dir: '/', tasks: [], records: 0, failures: 0, estimated_ms: null, skipped: { workload_lines: 0, record_lines: 0, reasons: [] }, targets: [], model: null, named_by: 'index' as const }),
      recentModels: async () => [],
      listRuns: async () => ({ project: root, defaults: { work_dir: join(root, 'tuning'), export_path: join(root, 'm.tvm.pt') }, runs: [] }),
      getRun: async () => {
        throw new WorkbenchError('unknown_run', 'There is no such run.');
      },
      onEvent: () => () => {},
    };
    const srv = await startServer({ api, port: 0, rendererDir: site, allowedRoots: [root] });
    let ws: WebSocket | undefined;
    const open = async () => {
      if (ws && ws.readyState === WebSocket.OPEN) return ws;
      ws = new WebSocket(`ws://127.0.0.1:${srv.port}/api`, ['torchtvm', `torchtvm.token.${srv.token}`]);
      await new Promise((ok, fail) => (ws!.once('open', ok), ws!.once('error', fail)));
      return ws;
    };
    /** Sends one frame; resolves with the reply for `id`, or the close code and reason. */
    const exchange = async (frame: string | Buffer, id: number | null): Promise<{ reply?: Record<string, any>; close?: [number, string] }> => {
      const s = await open();
      return new Promise((resolve) => {
        const onMsg = (d: WebSocket.RawData) => {
          const m = JSON.parse(String(d));
          if (m.type === 'result' && m.id === id) done({ reply: m });
        };
        const onClose = (code: number, reason: Buffer) => done({ close: [code, reason.toString()] });
        const done = (r: { reply?: Record<string, any>; close?: [number, string] }) => {
          s.off('message', onMsg);
          s.off('close', onClose);
          resolve(r);
        };
        s.on('message', onMsg);
        s.on('close', onClose);
        s.send(frame, { binary: Buffer.isBuffer(frame) });
      });
    };
    const callEnvelope = fc.record({ type: fc.constant('call'), id: fc.nat(), method, args: fc.oneof(args.filter(Array.isArray), fc.constant([])) }) as fc.Arbitrary<Record<string, unknown>>;
    const frames = fc.oneof(
      { weight: 5, arbitrary: callEnvelope.map((m) => ({ frame: safeJson(m), id: Array.isArray(m.args) && (m.args as unknown[]).length <= 8 && typeof m.method === 'string' && m.method.length <= 64 ? (m.id as number) : null })) },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => ({ frame: JSON.stringify(v), id: null })) },
      { weight: 1, arbitrary: junk.map((s) => ({ frame: s, id: null })) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ frame: Buffer.from(b), id: null })) },
      { weight: 1, arbitrary: fc.constantFrom('{"type":"subscribe"}', '{"type":"unsubscribe"}').map((s) => ({ frame: s, id: null })) },
    );
    try {
      await fc.assert(
        fc.asyncProperty(frames, async ({ frame, id }) => {
          if (frame === undefined) return;
          await judge(t, typeof frame === 'string' ? frame.slice(0, 300) : `<binary ${frame.length}>`, async () => {
            if (typeof frame === 'string' && /^\{"type":"(un)?subscribe"\}$/.test(frame)) {
              (await open()).send(frame);
              return 'accepted';
            }
            const parsedId = envelopeId(frame);
            const r = await exchange(frame, parsedId ?? id);
            if (r.reply) {
              if (r.reply.ok) return 'accepted';
              const e = r.reply.error as { code?: unknown; message?: unknown };
              return typeof e?.code === 'string' && isSentence(e.message) ? 'refused' : `error reply not a sentence: ${show(e)}`;
            }
            const [code, reason] = r.close!;
            if (code !== 1008 && code !== 1007 && code !== 1009) return `closed with ${code}`;
            return code === 1008 && !isSentence(reason) ? `close reason not a sentence: ${reason}` : 'refused';
          });
        }),
        params,
      );
      // Still serving, and still refusing a socket without the token.
      const alive = await exchange(JSON.stringify({ type: 'call', id: 999_999, method: 'info', args: [] }), 999_999);
      expect(alive.reply).toMatchObject({ ok: true });
    } finally {
      ws?.terminate();
      await srv.close();
    }
    expect(t.examples).toEqual([]);
  });
});

function safeJson(v: unknown): string | undefined {
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}

/** The id the server will answer to, when the frame is a well-formed call envelope. */
function envelopeId(frame: string | Buffer): number | null {
  if (typeof frame !== 'string') return null;
  try {
    const m = JSON.parse(frame);
    const ok = m && m.type === 'call' && Number.isInteger(m.id) && m.id >= 0 && typeof m.method === 'string' && m.method.length <= 64 && Array.isArray(m.args) && m.args.length <= 8 && Object.keys(m).every((k) => ['type', 'id', 'method', 'args'].includes(k));
    return ok ? m.id : null;
  } catch {
    return null;
  }
}

afterAll(() => {
  const summary = Object.fromEntries(Object.entries(tallies).map(([k, v]) => [k, { ...v, max_ms: Math.round(v.max_ms) }]));
  if (REPORT) {
    mkdirSync(join(REPORT, '..'), { recursive: true });
    writeFileSync(REPORT, JSON.stringify({ runs_per_target: RUNS, seed: SEED ?? null, hang_ms: HANG_MS, targets: summary }, null, 2) + '\n');
  }
  console.log(`fuzz counts (${RUNS} runs per target):\n${JSON.stringify(summary, null, 1)}`);
});
