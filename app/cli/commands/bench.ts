import { parseArgs } from 'node:util';
import { parseSpec, type InputSpec } from '../../contract/specs.js';
import { parseJobResult } from '../../contract/jobs.js';
import type { BenchResult } from '../../contract/results.js';
import { intFlag, type CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { compareLatency } from '../../contract/format.js';
import { EXIT, runJob } from '../run-job.js';

export const usage =
  'torchtvm bench MODEL.pt [--vs OTHER.pt] [--input NAME:DIMS:DTYPE[:LO..HI] …] [--iterations N] [--warmup N] [--threads T] [--timeout SECONDS] [--json]';


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
  const model = positionals[0];
  let shownAt = 0;
  const total = iterations ?? 100;
  const outcome = await runJob(wb, { kind: 'bench', model, vs: values.vs, inputs, iterations, warmup, threads, ...(timeout !== undefined ? { timeout_s: timeout } : {}) }, out, (e) => {
    if (e.event !== 'bench.sample') return;
    const now = Date.now();
    if (now - shownAt < 500) return; // a status line twice a second is plenty
    shownAt = now;
    out.progress(`[bench] ${Math.min(e.data.iteration + 1, total)}/${total} runs, last ${fmtMs(e.data.latency_ms)}`);
  });
  if (outcome.state === 'failed') return fail(outcome.error);
  if (!outcome.result) return fail({ code: 'cancelled', message: 'Cancelled.' }, EXIT.cancelled);
  const r = parseJobResult('bench', outcome.result);
  out.result(r);
  const shapes = r.inputs.map((i) => `${i.name} [${i.shape.join(', ')}] ${i.dtype}`).join(', ');
  out.line(`Inputs: ${shapes || '(none)'}${r.inputs_from && r.inputs_from !== 'request' ? ` (from the ${r.inputs_from === 'metadata' ? "model's export metadata" : "model's recorded shapes"})` : ''}`);
  out.line(`${r.iterations} timed runs after ${r.warmup} warm-up runs, ${r.threads} thread(s)${r.vs ? ', interleaved run by run' : ''}${r.cancelled ? ' (cancelled early)' : ''}.\n`);
  const row = (name: string, s: BenchResult['stats'], ratio?: string) => [
    name, fmtMs(s.min), fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.mean), fmtMs(s.stddev), s.runs, ...(ratio !== undefined ? [ratio] : []),
  ];
  const header = ['model', 'min', 'p50', 'p90', 'p99', 'mean', 'stddev', 'runs'];
  if (r.vs && r.vs_stats) {
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
