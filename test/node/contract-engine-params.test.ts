// Drift between the contract and the engine: every compile/tune request field that app/core forwards
// to the engine must be a parameter of the engine's table (PARAM_TYPES: name -> ((python types...),
// description)) with a matching type, and every engine parameter must be either in the contract or
// listed below as engine-only. The engine's table is read from Python, so that a rename on either
// side fails here rather than at run time (the engine ignores keys it does not know).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CompileRequestSchema, ExportRequestSchema, TuneRequestSchema, type TuneRequest } from '../../app/contract/jobs.js';
import { compileParams, CORE_ONLY_REQUEST_KEYS } from '../../app/core/engine-client/engine-runners.js';
import { paths } from '../../app/core/paths.js';

/** Request fields app/core handles itself and never sends to the engine (checked before the build, output-paths.ts). */
const CORE_ONLY = ['kind', 'overwrite', 'create_parent', 'timeout_s'];

/** Engine parameters that are not compile/tune request fields: options the app does not offer
 * (Python API and tests only), and the parameters of other methods (tuning_log's `dir`, the
 * WorkbenchApi readTuningLog argument of the same name). */
const ENGINE_ONLY = ['seed', 'edge_values', 'dir'];

/** Where the engine's parameter table lives: after the service restructure, then before it. */
const PARAM_MODULES = ['torchtvm.service.params', 'torchtvm.service.methods', 'torchtvm.methods'];

type EngineTable = Record<string, string[]>;

function engineTable(): { module: string; table: EngineTable } {
  const script = [
    'import importlib, json',
    `for name in ${JSON.stringify(PARAM_MODULES)}:`,
    '    try:',
    '        mod = importlib.import_module(name)',
    '        table = mod.PARAM_TYPES',
    '    except (ImportError, AttributeError):',
    '        continue',
    '    print(json.dumps({"module": name, "table": {k: [t.__name__ for t in v[0]] for k, v in table.items()}}))',
    '    break',
    'else:',
    '    raise SystemExit("no module of ' + PARAM_MODULES.join(', ') + ' has PARAM_TYPES")',
  ].join('\n');
  const python = join(paths.root, '.venv', 'bin', 'python');
  const r = spawnSync(python, ['-c', script], { cwd: paths.root, env: { ...process.env, PYTHONPATH: join(paths.root, 'native', 'engine') }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`reading the engine's parameter table failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
}

/** The Python type name a contract field's value has on the wire. */
function pythonType(schema: z.ZodType): string {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
  if (s instanceof z.ZodString || s instanceof z.ZodEnum || s instanceof z.ZodLiteral) return 'str';
  if (s instanceof z.ZodNumber) return s.isInt ? 'int' : 'float';
  if (s instanceof z.ZodBoolean) return 'bool';
  if (s instanceof z.ZodArray) return 'list';
  if (s instanceof z.ZodRecord || s instanceof z.ZodObject) return 'dict';
  throw new Error(`no Python type for a ${s.def.type} field`);
}

/** Forwarded compile/tune/export request fields -> Python type name. */
function contractFields(): Record<string, string> {
  const shape = { ...CompileRequestSchema.shape, ...TuneRequestSchema.shape, ...ExportRequestSchema.shape };
  return Object.fromEntries(Object.entries(shape).filter(([k]) => !CORE_ONLY.includes(k)).map(([k, v]) => [k, pythonType(v)]));
}

describe('contract vs engine parameters', () => {
  let engine: { module: string; table: EngineTable };
  beforeAll(() => {
    engine = engineTable();
  });

  it('lists the same core-only request fields as app/core', () => {
    expect([...CORE_ONLY_REQUEST_KEYS].sort()).toEqual([...CORE_ONLY].sort());
  });

  it('every forwarded compile/tune/export request field is an engine parameter of the same type', () => {
    const fields = contractFields();
    const missing = Object.keys(fields).filter((k) => !(k in engine.table));
    expect(missing, `contract fields the engine (${engine.module}.PARAM_TYPES) does not know`).toEqual([]);
    const mismatched = Object.entries(fields)
      .filter(([k, t]) => !engine.table[k].includes(t))
      .map(([k, t]) => `${k}: contract ${t}, engine ${engine.table[k].join('|')}`);
    expect(mismatched, 'fields whose types differ').toEqual([]);
  });

  it('every engine parameter is in the contract or listed as engine-only', () => {
    const fields = contractFields();
    const unlisted = Object.keys(engine.table).filter((k) => !(k in fields) && !ENGINE_ONLY.includes(k));
    expect(unlisted, `engine parameters (${engine.module}.PARAM_TYPES) the contract neither offers nor lists as engine-only`).toEqual([]);
    const stale = ENGINE_ONLY.filter((k) => k in fields);
    expect(stale, 'ENGINE_ONLY entries that are no longer engine-only').toEqual([]);
  });

  it('what app/core sends for a full tune request is all engine parameters', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ttvm-params-'));
    const request: TuneRequest = TuneRequestSchema.parse({
      kind: 'tune', model: join(dir, 'm.pt'), inputs: [{ name: 'x', dims: [1, { name: 'batch', min: 1, max: 8 }], dtype: 'float32' }], target: 'llvm', threads: 2,
      out_dir: join(dir, 'build'), export_path: join(dir, 'm.tvm.pt'), measure: false, fallback: true, strict: false, placement: 'auto', overwrite: true, create_parent: true,
      trials: 8, trials_per_task: 4, trials_per_iter: 2, work_dir: join(dir, 'tuning'), tune_sizes: { batch: 2 },
    });
    const sent = compileParams(request);
    expect(Object.keys(sent).filter((k) => !(k in engine.table))).toEqual([]);
    for (const k of CORE_ONLY) expect(sent).not.toHaveProperty(k);
  });
});
