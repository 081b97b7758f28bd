import { parseArgs } from 'node:util';
import { formatSpec, parseSpec, type InputSpec } from '../../contract/specs.js';
import { parseJobResult } from '../../contract/jobs.js';
import type { BenchResult, BenchSweepResult } from '../../contract/results.js';
import type { BenchSweepRequest } from '../../contract/jobs.js';
import { intFlag, type CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { compareLatency } from '../../contract/format.js';
import { EXIT, runJob } from '../run-job.js';
import { benchRemote } from '../remote-bench.js';

export const usage =
  'torchtvm bench MODEL.pt [--vs OTHER.pt | --sweep batch|SYMBOL [--sizes 1,2,4,8] [--latency-limit MS]] [--input NAME:DIMS:DTYPE[:LO..HI] …] [--iterations N] [--warmup N] [--threads T] [--timeout SECONDS] [--tracker HOST:PORT --key KEY] [--json]  (--tracker: uploaded to a server of KEY and timed there; --sweep: measure at each size of a symbolic dimension, on the one module; "batch" is the symbol named batch, else the first symbolic one; default sizes: every size of a range of at most 8, else its bounds and the powers of two between; the best size is the highest throughput whose p50 is within --latency-limit)';

/** "1,2,4" → [1, 2, 4]; throws a sentence for anything else. */
function parseSizes(text: string): number[] {
  const parts = text.split(',').map((p) => p.trim());
  const sizes = parts.map(Number);
  if (!parts.length || parts.some((p) => !/^\d+$/.test(p)) || sizes.some((n) => n < 1)) throw new Error(`--sizes must be sizes of at least 1 separated by commas, e.g. 1,2,4,8, not "${text}"`);
  return sizes;
}

/** A throughput as the table prints it: whole samples a second (3 significant digits below 100). */
const fmtRate = (perS: number) => (perS >= 100 ? String(Math.round(perS)) : perS.toPrecision(3));


export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      vs: { type: 'string' },
      input: { type: 'string', multiple: true },
      iterations: { type: 'string', short: 'n' },
      warmup: { type: 'string' },
      threads: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
      sweep: { type: 'string' },
      sizes: { type: 'string' },
      'latency-limit': { type: 'string' },
      tracker: { type: 'string' },
      key: { type: 'string' },
    },
  });
  if (positionals.length !== 1) return fail(`give one model file: ${usage}`, EXIT.usage);
  let inputs: InputSpec[] | undefined;
  let iterations: number | undefined, warmup: number | undefined, threads: number | undefined, timeout: number | undefined;
  try {
    inputs = values.input?.map(parseSpec);
    iterations = intFlag('iterations', values.iterations);
    warmup = intFlag('warmup', values.warmup, 0);
    threads = intFlag('threads', values.threads);
    timeout = intFlag('timeout', values.timeout);
  } catch (e) {
    return fail((e as Error).message, EXIT.usage);
  }
  if (values.tracker !== undefined || values.key !== undefined) return benchRemote({ model: positionals[0], ...values, inputs, iterations, warmup, threads, timeout }, { wb, out, fail });
  let sweep: BenchSweepRequest | undefined;
  if (values.sweep !== undefined || values.sizes !== undefined || values['latency-limit'] !== undefined) {
    if (values.sweep === undefined) return fail(`--sizes and --latency-limit go with --sweep batch: ${usage}`, EXIT.usage);
    if (values.vs !== undefined) return fail('--sweep measures one model: leave out --vs (compare two models without a sweep).', EXIT.usage);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(values.sweep)) return fail(`--sweep takes a symbol such as batch, not "${values.sweep}"`, EXIT.usage);
    const limitText = values['latency-limit'];
    const limit = limitText === undefined ? undefined : Number(limitText);
    if (limit !== undefined && !(Number.isFinite(limit) && limit > 0)) return fail(`--latency-limit must be a number of milliseconds above 0, not "${limitText}"`, EXIT.usage);
    try {
      sweep = { ...(values.sweep !== 'batch' ? { symbol: values.sweep } : {}), ...(values.sizes !== undefined ? { sizes: parseSizes(values.sizes) } : {}), ...(limit !== undefined ? { latency_limit_ms: limit } : {}) };
    } catch (e) {
      return fail((e as Error).message, EXIT.usage);
    }
  }
  const model = positionals[0];
  let shownAt = 0;
  const total = iterations ?? 100;
  const outcome = await runJob(wb, { kind: 'bench', model, vs: values.vs, inputs, iterations, warmup, threads, ...(sweep ? { sweep } : {}), ...(timeout !== undefined ? { timeout_s: timeout } : {}) }, out, (e) => {
    if (e.event !== 'bench.sample') return;
    const now = Date.now();
    if (now - shownAt < 500) return; // a status line twice a second is plenty
    shownAt = now;
    const at = sweep ? ` ${e.data.model.split(' @ ').pop()}` : ''; // a sweep labels each size's samples "model @ batch=4"
    out.progress(`[bench${at}] ${Math.min(e.data.iteration + 1, total)}/${total} runs, last ${fmtMs(e.data.latency_ms)}`);
  });
  if (outcome.state === 'failed') return fail(outcome.error);
  if (!outcome.result) return fail({ code: 'cancelled', message: 'Cancelled.' }, EXIT.cancelled);
  const r = parseJobResult('bench', outcome.result);
  out.result(r);
  const shapes = r.sweep ? r.sweep.specs.map(formatSpec).join(' ') : r.inputs.map((i) => `${i.name} [${i.shape.join(', ')}] ${i.dtype}`).join(', ');
  out.line(`Inputs: ${shapes || '(none)'}${r.inputs_from && r.inputs_from !== 'request' ? ` (from the ${r.inputs_from === 'metadata' ? "model's export metadata" : "model's recorded shapes"})` : ''}`);
  if (r.measured_on) out.line(`Measured on ${r.measured_on.name}${r.measured_on.cpu_model ? ` (${r.measured_on.cpu_model})` : ''}`);
  if (r.sweep) out.line(`Sweep of ${r.sweep.symbol} over ${r.sweep.points.map((p) => p.size).join(', ')}: ${r.iterations} timed runs a size after ${r.warmup} warm-up runs, ${r.threads} thread(s)${r.cancelled ? ' (cancelled early: the sizes measured before it)' : ''}.\n`);
  else out.line(`${r.iterations} timed runs after ${r.warmup} warm-up runs, ${r.threads} thread(s)${r.vs ? ', interleaved run by run' : ''}${r.cancelled ? ' (cancelled early)' : ''}.\n`);
  const row = (name: string, s: BenchResult['stats'], ratio?: string) => [
    name, fmtMs(s.min), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.mean), fmtMs(s.stddev), s.runs, ...(ratio !== undefined ? [ratio] : []),
  ];
  const header = ['model', 'min', 'p50', 'p90', 'p99', 'mean', 'stddev', 'runs'];
  if (r.sweep) {
    out.line(sweepTable(r.sweep));
  } else if (r.vs && r.vs_stats) {
    // The same comparison the Benchmark page shows: the second model against the first ("1.65×
    // faster"), or a warning where the spread can explain the difference.
    const vsName = r.vs === model ? `${r.vs} (again)` : r.vs;
    const cmp = compareLatency(r.stats, r.vs_stats, { baselineLabel: model, candidateLabel: vsName });
    out.line(table([row(model, r.stats, 'baseline'), row(vsName, r.vs_stats, cmp.text)], [...header, `vs ${model.split('/').pop()}`]));
    if (cmp.ratio !== null) out.line(`\n${vsName}: ${cmp.kind === 'same' ? 'the same speed as' : `${cmp.text} than`} ${model} at p50 (${fmtMs(r.vs_stats.p50)} against ${fmtMs(r.stats.p50)})${cmp.warning ? ', within what the noise explains: see the warning' : ''}.`);
    if (cmp.warning) out.warn(cmp.warning);
  } else {
    out.line(table([row(model, r.stats)], header));
  }
  return r.cancelled || outcome.state === 'cancelled' ? EXIT.cancelled : EXIT.ok;
}

/** The sweep's table: a row per size, the best one marked ("◀ best under 20 ms"), and a sentence when no size meets the limit. */
function sweepTable(sw: BenchSweepResult): string {
  const limit = sw.latency_limit_ms;
  const mark = limit !== undefined ? `◀ best under ${fmtMs(limit)}` : '◀ best throughput';
  const rows = sw.points.map((p) => [p.size, fmtMs(p.stats.p50), fmtMs(p.stats.p90), fmtMs(p.stats.p99), fmtRate(p.throughput_per_s), p.stats.runs, ...(p.size === sw.best?.size ? [mark] : limit !== undefined && p.stats.p50 > limit ? ['over the limit'] : [''])]);
  const lines = [table(rows, [sw.symbol, 'p50', 'p90', 'p99', 'samples/s', 'runs', ''])];
  if (sw.best) lines.push(`\nBest: ${sw.symbol}=${sw.best.size}, ${fmtRate(sw.best.throughput_per_s)} samples/s at ${fmtMs(sw.best.p50)} p50${limit !== undefined ? ` (the highest throughput with p50 within ${fmtMs(limit)})` : ''}.`);
  if (sw.note) lines.push(`\n${sw.note}`);
  return lines.join('\n');
}
