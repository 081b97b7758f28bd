// The bench child process: the only place the native addon (libtorch) is loaded, so that a crash in
// libtorch, in a model's code or in the TVM runtime library ends this process and not the app.
// Started by bench-host.ts with child_process.fork (Node) or utilityProcess.fork (Electron); both
// give it an IPC channel. Needs only Node built-ins at run time.
//
// Environment: TORCHTVM_ADDON (path of torchtvm_addon.node), TORCHTVM_RUNTIME_LIB (path of
// libtorchtvm_runtime.so, loaded with RTLD_GLOBAL when present so that exported models load).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { InputSpec } from '../../contract/specs.js';
import type { AddonBenchResult, BenchChildMessage, BenchChildRequest, BenchmarkParams, SampleTuple } from './protocol.js';

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

// Electron's utilityProcess gives process.parentPort; child_process.fork gives process.send.
type ParentPort = { on(ev: 'message', cb: (e: { data: unknown }) => void): void; postMessage(m: unknown): void };
const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort;

function send(msg: BenchChildMessage): void {
  if (parentPort) parentPort.postMessage(msg);
  else process.send?.(msg);
}

function onRequest(handler: (req: BenchChildRequest) => void): void {
  if (parentPort) parentPort.on('message', (e) => handler(e.data as BenchChildRequest));
  else process.on('message', (m) => handler(m as BenchChildRequest));
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
  const o = s as InputSpec;
  return !!o && typeof o.name === 'string' && Array.isArray(o.dims) && typeof o.dtype === 'string';
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
  if (!req || typeof req.id !== 'number') return;
  if (req.method === 'cancel') {
    const target = Number(req.params.id);
    const h = running.get(target);
    if (h) h.cancel();
    else cancelledEarly.add(target);
    return;
  }
  void (async () => {
    try {
      if (!addon) throw Object.assign(new Error(addonError!.message), addonError);
      let result: unknown;
      if (req.method === 'inspect') result = await addon.inspect(String(req.params.path));
      else if (req.method === 'benchmark') result = await benchmark(req.id, addon, req.params as unknown as BenchmarkParams);
      else throw Object.assign(new Error(`Unknown bench method ${String(req.method)}.`), { code: 'bad_request' });
      send({ id: req.id, result: result as Record<string, unknown> });
    } catch (e) {
      send({ id: req.id, error: toError(e) });
    }
  })();
});

// Without a parent there is nobody to report to: stop (a fork's channel closes when the host dies).
process.on('disconnect', () => process.exit(0));
send({ ready: true, pid: process.pid, runtime: { path: runtimeLib, loaded: !!addon?.runtimeLoaded(), ...(runtimeError ? { error: runtimeError } : {}) } });
