// The bench child process: the only place the native addon (libtorch) is loaded, so that a crash in
// libtorch, in a model's code or in the TVM runtime library ends this process and not the app.
// Started by bench-host.ts with child_process.fork (Node) or utilityProcess.fork (Electron); both
// give it an IPC channel. Needs only Node built-ins at run time.
//
// Environment: TORCHTVM_ADDON (path of torchtvm_addon.node), TORCHTVM_RUNTIME_LIB (path of
// libtorchtvm_runtime.so, loaded with RTLD_GLOBAL when present so that exported models load).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
// Only types come from the contract: this process validates the host's requests with small guards
// (the host builds them from parsed, typed values), and the host checks every reply with the
// contract's schemas (processes.ts, results.ts).
import type { BenchChildMessage, BenchChildRequest, BenchmarkParams, SampleTuple } from '../../contract/processes.js';
import type { AddonBenchResult } from '../../contract/results.js';
import type { InputSpec } from '../../contract/specs.js';

interface AddonError extends Error {
  code?: string;
  detail?: string;
}

interface Addon {
  loadLibrary(path: string): void;
  runtimeLoaded(): boolean;
  inspect(path: string): Promise<InspectInfo>;
  benchmark(
    paths: string[],
    specs: InputSpec[],
    opts: { warmup: number; iterations: number; threads?: number; bare?: boolean },
    onSample: (model: number, iteration: number, ms: number) => void,
  ): { done: Promise<AddonBenchResult>; cancel(): void };
}

interface InspectInfo {
  path: string;
  inputs: Array<{ name: string; type: string; shape?: number[]; dtype?: string }>;
  exported: Record<string, unknown> | null;
  [k: string]: unknown;
}

// Electron's utilityProcess gives process.parentPort (Electron's typings are not loaded in this
// process); child_process.fork gives process.send.
interface ParentPort {
  on(ev: 'message', cb: (e: { data: unknown }) => void): void;
  postMessage(m: unknown): void;
}

function isParentPort(v: unknown): v is ParentPort {
  return typeof v === 'object' && v !== null && 'postMessage' in v && typeof v.postMessage === 'function' && 'on' in v && typeof v.on === 'function';
}

const parentPort: ParentPort | undefined = 'parentPort' in process && isParentPort(process.parentPort) ? process.parentPort : undefined;

function send(msg: BenchChildMessage): void {
  if (parentPort) parentPort.postMessage(msg);
  else process.send?.(msg);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;

/** The host's benchmark params (built from a parsed bench request); anything else is refused with a sentence. */
function benchmarkParams(p: Record<string, unknown>): BenchmarkParams {
  const { models, inputs, warmup, iterations, threads, bare } = p;
  const ok =
    Array.isArray(models) && models.length >= 1 && models.length <= 2 && models.every((m) => typeof m === 'string' && m.length > 0) &&
    (inputs === undefined || (Array.isArray(inputs) && inputs.every(isSpecLike))) &&
    isCount(warmup, 0) && isCount(iterations, 1) && (threads === undefined || isCount(threads, 1)) && (bare === undefined || typeof bare === 'boolean');
  if (!ok) throw badRequest('The benchmark request is malformed (models, inputs, warmup, iterations, threads, bare).');
  return { models, inputs, warmup, iterations, threads, bare };
}

const badRequest = (message: string) => Object.assign(new Error(message), { code: 'bad_request' });

/** A request from the host; null for a message without an id (nobody to answer); throws bad_request for a malformed one. */
function asRequest(m: unknown): BenchChildRequest | null {
  if (!isObject(m) || !isCount(m.id, 0)) return null;
  const { id } = m;
  const params = isObject(m.params) ? m.params : {};
  if (m.method === 'cancel' && isCount(params.id, 0)) return { id, method: 'cancel', params: { id: params.id } };
  if (m.method === 'inspect' && typeof params.path === 'string' && params.path) return { id, method: 'inspect', params: { path: params.path } };
  if (m.method === 'benchmark') return { id, method: 'benchmark', params: benchmarkParams(params) };
  throw badRequest(`Unknown or malformed bench request ${JSON.stringify(m.method)?.slice(0, 40)}.`);
}

function onRequest(handler: (req: BenchChildRequest) => void): void {
  const receive = (m: unknown) => {
    let req: BenchChildRequest | null;
    try {
      req = asRequest(m);
    } catch (e) {
      if (isObject(m) && isCount(m.id, 0)) send({ id: m.id, error: toError(e) });
      return;
    }
    if (req) handler(req);
  };
  if (parentPort) parentPort.on('message', (e) => receive(e.data));
  else process.on('message', receive);
}

const addonPath = process.env.TORCHTVM_ADDON ?? '';
const runtimeLib = process.env.TORCHTVM_RUNTIME_LIB ?? '';
let addon: Addon | undefined;
let addonError: { code: string; message: string; detail?: string } | undefined;
let runtimeError: string | undefined;

try {
  if (!addonPath || !existsSync(addonPath)) {
    addonError = { code: 'addon_missing', message: `The benchmark addon (${addonPath || 'torchtvm_addon.node'}) is not built; run "npm run setup" in the workbench folder.` };
  } else {
    addon = createRequire(import.meta.url)(addonPath) as Addon;
  }
} catch (e) {
  addonError = { code: 'addon_unloadable', message: `The benchmark addon could not be loaded: ${(e as Error).message.split('\n')[0]}`, detail: (e as Error).stack };
}
if (addon && runtimeLib && existsSync(runtimeLib)) {
  try {
    addon.loadLibrary(runtimeLib);
  } catch (e) {
    runtimeError = (e as Error).message;
  }
}

function toError(e: unknown): { code: string; message: string; detail?: string } {
  const err = e as AddonError;
  let message = err?.message ?? String(e);
  if (err?.code === 'runtime_missing' && runtimeError) message += ` (${runtimeError})`;
  return { code: typeof err?.code === 'string' ? err.code : 'bench_failed', message, ...(err?.detail ? { detail: err.detail } : {}) };
}

function isSpecLike(s: unknown): s is InputSpec {
  return isObject(s) && typeof s.name === 'string' && Array.isArray(s.dims) && typeof s.dtype === 'string';
}

/** Input specs when the request gives none: the exported metadata's, else the shapes the graph records. */
async function inferInputs(a: Addon, path: string): Promise<{ specs: InputSpec[]; from: 'model' | 'metadata' }> {
  const info = await a.inspect(path);
  const metaInputs = info.exported?.inputs;
  if (Array.isArray(metaInputs) && metaInputs.length && metaInputs.every(isSpecLike)) return { specs: metaInputs, from: 'metadata' };
  if (info.inputs.every((i) => i.type === 'Tensor' && i.shape)) {
    return { specs: info.inputs.map((i) => ({ name: i.name, dims: i.shape!, dtype: (i.dtype ?? 'float32') as InputSpec['dtype'] })), from: 'model' };
  }
  const first = info.inputs[0]?.name ?? 'x';
  const names = info.inputs.map((i) => i.name).join(', ');
  throw Object.assign(new Error(`${path} does not record the shapes of its inputs (${names}); describe each one with --input NAME:DIMS:DTYPE, e.g. --input ${first}:1,3,224,224:float32.`), { code: 'inputs_needed' });
}

const running = new Map<number, { cancel(): void }>();
const cancelledEarly = new Set<number>();

async function benchmark(id: number, a: Addon, p: BenchmarkParams): Promise<AddonBenchResult> {
  let specs = p.inputs;
  let from: AddonBenchResult['inputs_from'] = 'request';
  if (!specs || specs.length === 0) ({ specs, from } = await inferInputs(a, p.models[0]));
  let pending: SampleTuple[] = [];
  const flush = () => {
    if (pending.length) send({ id, samples: pending });
    pending = [];
  };
  const timer = setInterval(flush, 50);
  const handle = a.benchmark(p.models, specs, { warmup: p.warmup, iterations: p.iterations, threads: p.threads, bare: p.bare }, (m, it, ms) => {
    pending.push([m, it, ms]);
    if (pending.length >= 5000) flush();
  });
  running.set(id, handle);
  if (cancelledEarly.delete(id)) handle.cancel();
  try {
    const r = await handle.done;
    return { ...r, inputs_from: from };
  } finally {
    clearInterval(timer);
    flush(); // every sample goes out before the result
    running.delete(id);
  }
}

onRequest((req) => {
  if (req.method === 'cancel') {
    const target = req.params.id;
    const h = running.get(target);
    if (h) h.cancel();
    else cancelledEarly.add(target);
    return;
  }
  void (async () => {
    try {
      if (!addon) throw Object.assign(new Error(addonError!.message), addonError);
      const result: Record<string, unknown> = req.method === 'inspect' ? await addon.inspect(req.params.path) : await benchmark(req.id, addon, req.params);
      send({ id: req.id, result });
    } catch (e) {
      send({ id: req.id, error: toError(e) });
    }
  })();
});

// Without a parent there is nobody to report to: stop (a fork's channel closes when the host dies).
process.on('disconnect', () => process.exit(0));
send({ ready: true, pid: process.pid, runtime: { path: runtimeLib, loaded: !!addon?.runtimeLoaded(), ...(runtimeError ? { error: runtimeError } : {}) } });
