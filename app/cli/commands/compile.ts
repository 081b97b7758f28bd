import { parseArgs } from 'node:util';
import { parseSpec, type InputSpec } from '../../contract/specs.js';
import type { CompileResult } from '../../contract/results.js';
import type { CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { EXIT, runJob } from '../run-job.js';

export const usage =
  'torchtvm compile MODEL.pt --input NAME:DIMS:DTYPE[:LO..HI] … [--target llvm] [--threads N] [-o OUT.pt] [--out-dir DIR] [--no-measure] [--fallback] [--json]';

export const compileOptions = {
  input: { type: 'string', multiple: true },
  target: { type: 'string' },
  threads: { type: 'string' },
  output: { type: 'string', short: 'o' },
  'out-dir': { type: 'string' },
  'no-measure': { type: 'boolean' },
  fallback: { type: 'boolean' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
} as const;

export function parseCommon(values: { input?: string[]; threads?: string }): { inputs: InputSpec[]; threads?: number } {
  if (!values.input?.length) throw new Error('give at least one --input NAME:DIMS:DTYPE, e.g. --input x:1,3,224,224:float32');
  const inputs = values.input.map(parseSpec);
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer, not "${values.threads}"`);
  }
  return { inputs, threads };
}

export function printCompileResult(r: CompileResult, out: CommandContext['out']): void {
  out.line(`\n${r.model} → ${r.target.kind} (${r.target.mcpu ?? 'default'}; ${r.target.features.join(' ') || 'no extra features'}), ${r.threads} thread(s)`);
  out.line(table([
    ['import', `${r.timings_s.import.toFixed(1)} s`],
    ['build', `${r.timings_s.build.toFixed(1)} s`],
  ], ['stage', 'time']));
  if (r.fallback && r.coverage) printCoverage(r, out);
  out.line(`\nVerification against PyTorch: ${r.verification.ok ? 'OK' : 'MISMATCH'}`);
  out.line(table(r.verification.outputs.map((o) => [`#${o.index}`, `[${o.shape.join(', ')}]`, o.dtype, o.max_abs?.toExponential(2) ?? '-', o.max_rel?.toExponential(2) ?? '-', o.atol !== undefined ? `${o.atol}/${o.rtol}` : 'exact', o.ok ? 'ok' : 'FAIL']), ['output', 'shape', 'dtype', 'max abs', 'max rel', 'atol/rtol', '']));
  if (r.latency_ms) {
    const { torch, tvm, ratio } = r.latency_ms;
    out.line('\nLatency (same process, same threads):');
    out.line(table([
      ['TorchScript', fmtMs(torch.p50), fmtMs(torch.p90), torch.runs, '1.00x'],
      ['TVM', fmtMs(tvm.p50), fmtMs(tvm.p90), tvm.runs, `${ratio.toFixed(2)}x`],
    ], ['', 'p50', 'p90', 'runs', 'vs torch']));
  }
  out.line(`\nWrote: ${Object.entries(r.files).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}

function printCoverage(r: CompileResult, out: CommandContext['out']): void {
  const c = r.coverage!;
  out.line(`\nThe whole model did not import (${r.fallback!.reason}); module-level fallback:`);
  out.line(`compiled ${c.ops_compiled} of ${c.ops_total} ops, ${(100 * c.time_share_compiled).toFixed(0)}% of TorchScript's run time now runs in TVM`);
  out.line(table(c.modules.map((m) => [m.name, m.compiled ? 'TVM' : 'TorchScript', m.reason ?? '']), ['submodule', 'runs in', 'why']));
}

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: compileOptions });
  if (positionals.length !== 1) return fail(`give one model file: ${usage}`);
  let common;
  try {
    common = parseCommon(values);
  } catch (e) {
    return fail((e as Error).message, EXIT.usage);
  }
  const outcome = await runJob(wb, {
    kind: 'compile',
    model: positionals[0],
    inputs: common.inputs,
    threads: common.threads,
    target: values.target ?? 'llvm',
    exportPath: values.output,
    outDir: values['out-dir'],
    measure: !values['no-measure'],
    ...(values.fallback ? { fallback: true } : {}),
  }, out);
  if (outcome.state === 'cancelled') return fail({ code: 'cancelled', message: 'Cancelled.' }, EXIT.cancelled);
  if (outcome.state === 'failed') return fail(outcome.error);
  const r = outcome.result as unknown as CompileResult;
  out.result(r);
  printCompileResult(r, out);
  if (!r.verification.ok) {
    out.line('\nTVM does not match PyTorch within tolerance: do not deploy this build.');
    return EXIT.failed;
  }
  return EXIT.ok;
}
