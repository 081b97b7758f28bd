// `torchtvm bench MODEL.pt --tracker HOST:PORT --key KEY` (issue 25): the model is uploaded to a
// server of the key and timed there, never run here. It is a bench job like any other (the app's
// Benchmark page sends the same request): app/core hands it to an engine, which calls
// torchtvm.remote.bench; the result is a bench result whose measured_on names the server.
import { parseJobResult } from '../contract/jobs.js';
import type { InputSpec } from '../contract/specs.js';
import type { CommandContext } from './command.js';
import { fmtMs, table } from './output.js';
import { EXIT, runJob } from './run-job.js';
import { NO_AUTH, trackerProblem } from './remote.js';

export async function benchRemote(
  opts: { model: string; tracker?: string; key?: string; vs?: string; sweep?: unknown; inputs?: InputSpec[]; iterations?: number; warmup?: number; threads?: number; timeout?: number },
  { wb, out, fail }: CommandContext,
): Promise<number> {
  if (!opts.tracker || !opts.key) return fail('--tracker HOST:PORT and --key KEY go together: the model is timed on a server of that key.', EXIT.usage);
  const bad = trackerProblem(opts.tracker);
  if (bad) return fail(bad, EXIT.usage);
  if (opts.vs !== undefined || opts.sweep !== undefined) return fail('--tracker benches one model on a server: leave out --vs and --sweep.', EXIT.usage);
  out.progress(`[bench] uploading ${opts.model} to a server of key ${opts.key} at ${opts.tracker}`);
  const outcome = await runJob(wb, {
    kind: 'bench',
    model: opts.model,
    tracker: opts.tracker,
    key: opts.key,
    ...(opts.inputs?.length ? { inputs: opts.inputs } : {}),
    ...(opts.iterations !== undefined ? { iterations: opts.iterations } : {}),
    ...(opts.warmup !== undefined ? { warmup: opts.warmup } : {}),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    ...(opts.timeout !== undefined ? { timeout_s: opts.timeout } : {}),
  }, out);
  if (outcome.state === 'failed') return fail(outcome.error);
  if (!outcome.result) return fail({ code: 'cancelled', message: 'Cancelled.' }, EXIT.cancelled);
  const r = parseJobResult('bench', outcome.result);
  out.result(r);
  const m = r.measured_on;
  const where = m ? `${m.name} (${[m.cpu_model ?? 'CPU not reported', m.llvm_cpu].filter(Boolean).join(', ')}; ${r.threads} thread(s)), key ${m.key ?? opts.key} at ${m.tracker ?? opts.tracker}` : `a server of key ${opts.key} at ${opts.tracker}`;
  out.line(`\n${r.model}, measured on ${where}: ${r.stats.runs} runs after ${r.warmup} warm-up`);
  out.line(table([[fmtMs(r.stats.p50), fmtMs(r.stats.p90), fmtMs(r.stats.p99), fmtMs(r.stats.mean), String(r.stats.runs)]], ['p50', 'p90', 'p99', 'mean', 'runs']));
  out.line(`\n${NO_AUTH}`);
  return EXIT.ok;
}
