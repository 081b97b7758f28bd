// `torchtvm bench MODEL.pt --tracker HOST:PORT --key KEY` (issue 25): the model is uploaded to a
// server of the key and timed there (torchtvm.remote.bench), never run here.
import type { InputSpec } from '../contract/specs.js';
import type { CommandContext } from './command.js';
import { fmtMs, table } from './output.js';
import { EXIT } from './run-job.js';
import { NO_AUTH, runEngineJson, trackerProblem } from './remote.js';

export interface RemoteBenchResult {
  p50: number; p90: number; p99: number; mean: number; runs: number; warmup: number; threads: number;
  model: string; tracker: string; key: string;
  measured_on: { name: string; cpu_model: string; llvm_cpu: string; hostname: string; cores: number };
}

export async function benchRemote(
  opts: { model: string; tracker?: string; key?: string; vs?: string; sweep?: unknown; inputs?: InputSpec[]; iterations?: number; warmup?: number; threads?: number },
  { out, fail }: CommandContext,
): Promise<number> {
  if (!opts.tracker || !opts.key) return fail('--tracker HOST:PORT and --key KEY go together: the model is timed on a server of that key.', EXIT.usage);
  const bad = trackerProblem(opts.tracker);
  if (bad) return fail(bad, EXIT.usage);
  if (opts.vs !== undefined || opts.sweep !== undefined) return fail('--tracker benches one model on a server: leave out --vs and --sweep.', EXIT.usage);
  const args = ['-m', 'torchtvm.remote.bench', opts.model, '--tracker', opts.tracker, '--key', opts.key, '--json'];
  if (opts.inputs?.length) args.push('--input', JSON.stringify(opts.inputs));
  if (opts.iterations !== undefined) args.push('--iterations', String(opts.iterations));
  if (opts.warmup !== undefined) args.push('--warmup', String(opts.warmup));
  if (opts.threads !== undefined) args.push('--threads', String(opts.threads));
  out.progress(`[bench] uploading ${opts.model} to a server of key ${opts.key} at ${opts.tracker}`);
  const r = await runEngineJson(args);
  const v = r.value as ({ error?: { code: string; message: string } } & Partial<RemoteBenchResult>) | null;
  if (!v) return fail({ code: 'engine_failed', message: `torchtvm.remote.bench failed: ${r.stderr.trim().split('\n').pop() ?? ''}` });
  if (v.error) return fail(v.error);
  const res = v as RemoteBenchResult;
  out.result(res);
  const m = res.measured_on;
  out.line(`\n${res.model}, measured on ${m.name} (${m.cpu_model}, ${m.llvm_cpu}; ${res.threads} thread(s)), key ${res.key} at ${res.tracker}: ${res.runs} runs after ${res.warmup} warm-up`);
  out.line(table([[fmtMs(res.p50), fmtMs(res.p90), fmtMs(res.p99), fmtMs(res.mean), String(res.runs)]], ['p50', 'p90', 'p99', 'mean', 'runs']));
  out.line(`\n${NO_AUTH}`);
  return EXIT.ok;
}
