// The batch sweep (issue 24): one model with a symbolic dimension (a build exported with
// `--input x:batch=1..32,…`), benchmarked at each size of that dimension, one benchmark per size on
// the same module, giving latency and throughput per size and the size with the best throughput
// under a latency limit. The bench host runs each size in a fresh child, as it runs any benchmark.
import { z } from 'zod';
import { WorkbenchError } from '../../contract/errors.js';
import type { BenchRequest, BenchSweepRequest } from '../../contract/jobs.js';
import type { AddonBenchResult, BenchResult, BenchStats, BenchSweepPoint, BenchSweepResult } from '../../contract/results.js';
import { formatSpec, InputSpecSchema, type Dim, type InputSpec, type SymDim } from '../../contract/specs.js';
import type { RunContext } from '../jobs.js';
import type { BenchHost } from './bench-host.js';

/** A range with at most this many sizes is swept at every size; a wider one at powers of two. */
export const EVERY_SIZE_UP_TO = 8;

const isSym = (d: Dim): d is SymDim => typeof d !== 'number';

/** What is missing, and the two ways to a model the sweep can measure. */
const noSymbol = (what: string) => new WorkbenchError('sweep_no_symbol', `${what} Export the model with a symbolic batch, e.g. --input x:batch=1..32,3,224,224:float32, and sweep the exported file; or describe the inputs with a symbolic batch (--input).`);

/** The symbol to sweep: the one asked for, else the one named batch, else the first symbolic dimension; throws a sentence when there is none. */
export function sweepSymbol(specs: InputSpec[], asked: string | undefined, model: string): string {
  const symbols = [...new Set(specs.flatMap((s) => s.dims.filter(isSym).map((d) => d.name)))];
  if (asked) {
    if (symbols.includes(asked)) return asked;
    if (symbols.length) throw new WorkbenchError('sweep_no_symbol', `The inputs of ${model} have no symbolic dimension named ${asked} (they have ${symbols.join(', ')}): sweep one of those.`);
    throw noSymbol(`The inputs of ${model} have no symbolic dimension to sweep (${specs.map(formatSpec).join(' ') || 'no inputs'}).`);
  }
  if (symbols.includes('batch')) return 'batch';
  if (symbols.length) return symbols[0];
  throw noSymbol(`The inputs of ${model} have no symbolic dimension to sweep (${specs.map(formatSpec).join(' ') || 'no inputs'}).`);
}

/** The symbol's range over every input that uses it: the largest lower bound (1 by default) and the smallest upper bound (none when no input gives one). */
export function symbolRange(specs: InputSpec[], symbol: string): { min: number; max?: number } {
  let min = 1;
  let max: number | undefined;
  for (const s of specs) {
    for (const d of s.dims) {
      if (!isSym(d) || d.name !== symbol) continue;
      if (d.min !== undefined) min = Math.max(min, d.min);
      if (d.max !== undefined) max = max === undefined ? d.max : Math.min(max, d.max);
    }
  }
  return { min, max };
}

/**
 * The sizes to measure, ascending and each once: the ones asked for (each inside the range), else
 * every size of a range of at most EVERY_SIZE_UP_TO sizes, else the lower bound, the powers of two
 * inside the range and the upper bound. A symbol without an upper bound and no sizes is refused.
 */
export function sweepSizes(range: { min: number; max?: number }, symbol: string, asked?: number[]): number[] {
  const { min, max } = range;
  if (asked?.length) {
    const outside = asked.filter((n) => n < min || (max !== undefined && n > max));
    if (outside.length) throw new WorkbenchError('sweep_bad_sizes', `${symbol} ranges over ${min}..${max ?? ''} in this model, so ${outside.join(', ')} cannot be measured: give sizes inside the range.`);
    return [...new Set(asked)].sort((a, b) => a - b);
  }
  if (max === undefined) {
    throw new WorkbenchError('sweep_unbounded', `${symbol} has no upper bound (${symbol}=${min}..), so the sweep does not know where to stop: give the sizes (--sizes 1,2,4,8), or export with a bounded range, e.g. ${symbol}=${min}..32.`);
  }
  if (max - min + 1 <= EVERY_SIZE_UP_TO) return Array.from({ length: max - min + 1 }, (_, i) => min + i);
  const sizes = new Set([min, max]);
  for (let p = 1; p <= max; p *= 2) if (p >= min) sizes.add(p);
  return [...sizes].sort((a, b) => a - b);
}

/** The specs with every dimension named `symbol` set to `size` (other symbolic dimensions are left to the benchmark's own choice). */
export function atSize(specs: InputSpec[], symbol: string, size: number): InputSpec[] {
  return specs.map((s) => ({ ...s, dims: s.dims.map((d) => (isSym(d) && d.name === symbol ? size : d)) }));
}

/** The best point: the highest throughput with p50 within the limit (any p50 without one), and a sentence when none is within it. */
export function bestPoint(points: BenchSweepPoint[], limit: number | undefined, symbol: string): Pick<BenchSweepResult, 'best' | 'note'> {
  const within = points.filter((p) => limit === undefined || p.stats.p50 <= limit);
  if (!within.length) {
    if (!points.length) return { note: 'No size was measured.' };
    const fastest = points.reduce((a, b) => (b.stats.p50 < a.stats.p50 ? b : a));
    return { note: `No ${symbol} size meets the limit of ${limit} ms at p50: the fastest, ${symbol}=${fastest.size}, takes ${fastest.stats.p50.toPrecision(3)} ms.` };
  }
  const best = within.reduce((a, b) => (b.throughput_per_s > a.throughput_per_s ? b : a));
  return { best: { size: best.size, p50: best.stats.p50, throughput_per_s: best.throughput_per_s } };
}

/** A size's label on its bench.sample events: the model's path and the size, as "model.pt @ batch=4". */
export const sweepLabel = (model: string, symbol: string, size: number) => `${model} @ ${symbol}=${size}`;

type Side = (r: AddonBenchResult) => BenchStats;

/** Runs a bench request that has `sweep`: a benchmark per size, progress between sizes, samples labelled per size; a cancel keeps the sizes measured. */
export async function runSweep(host: BenchHost, req: BenchRequest & { sweep: BenchSweepRequest }, ctx: RunContext, side: Side): Promise<BenchResult> {
  const { sweep } = req;
  let specs = req.inputs;
  let inputsFrom: BenchResult['inputs_from'] = 'request';
  if (!specs?.length) {
    ctx.emit({ event: 'job.progress', data: { stage: 'bench', message: `Reading the inputs of ${req.model}`, fraction: 0 } });
    const info = await host.inspect(req.model, ctx.signal);
    const parsed = z.array(InputSpecSchema).min(1).safeParse(info.exported?.inputs);
    if (!parsed.success) {
      throw noSymbol(`${req.model} carries no input specs with a symbolic dimension (it is not a model the workbench exported${info.exported ? ' with described inputs' : ''}).`);
    }
    specs = parsed.data;
    inputsFrom = 'metadata';
  }
  const symbol = sweepSymbol(specs, sweep.symbol, req.model);
  const sizes = sweepSizes(symbolRange(specs, symbol), symbol, sweep.sizes);
  const points: BenchSweepPoint[] = [];
  let last: AddonBenchResult | undefined;
  let cancelled = false;
  for (const [k, size] of sizes.entries()) {
    if (ctx.signal.aborted) {
      cancelled = true;
      break;
    }
    ctx.emit({ event: 'job.progress', data: { stage: 'bench', message: `${symbol}=${size} (${k + 1} of ${sizes.length})`, fraction: k / sizes.length, sweep_size: size } });
    const label = sweepLabel(req.model, symbol, size);
    let r: AddonBenchResult;
    try {
      r = await host.benchmark(
        { models: [req.model], inputs: atSize(specs, symbol, size), warmup: req.warmup, iterations: req.iterations, threads: req.threads },
        { signal: ctx.signal, onSamples: (samples) => samples.forEach(([, iteration, ms]) => ctx.emit({ event: 'bench.sample', data: { model: label, iteration, latency_ms: ms } })) },
      );
    } catch (e) {
      // A cancel that killed the child mid-size keeps the sizes measured before it.
      if (ctx.signal.aborted && points.length) {
        cancelled = true;
        break;
      }
      throw e;
    }
    last = r;
    const stats = side(r);
    if (stats.runs > 0 && stats.p50 > 0) points.push({ size, stats, throughput_per_s: (size * 1000) / stats.p50, inputs: r.inputs });
    if (r.cancelled || ctx.signal.aborted) {
      cancelled = true;
      break;
    }
  }
  if (!points.length || !last) throw new WorkbenchError('cancelled', 'Cancelled before a size was measured.');
  ctx.emit({ event: 'job.progress', data: { stage: 'bench', message: `Measured ${points.length} of ${sizes.length} sizes`, fraction: 1 } });
  const first = points[0];
  return {
    model: req.model,
    threads: last.threads,
    warmup: req.warmup,
    iterations: req.iterations,
    cancelled,
    inputs: first.inputs,
    inputs_from: inputsFrom,
    stats: first.stats,
    sweep: { symbol, specs, points, ...(sweep.latency_limit_ms !== undefined ? { latency_limit_ms: sweep.latency_limit_ms } : {}), ...bestPoint(points, sweep.latency_limit_ms, symbol) },
  };
}
