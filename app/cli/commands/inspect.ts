import { parseArgs } from 'node:util';
import { parseJobResult } from '../../contract/jobs.js';
import type { InspectResult } from '../../contract/results.js';
import { formatDim } from '../../contract/specs.js';
import type { CommandContext } from '../command.js';
import { table } from '../output.js';
import { EXIT, runJob } from '../run-job.js';

export const usage = 'torchtvm inspect MODEL.pt|MODEL.pt2 [--json]';

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, verbose: { type: 'boolean' } } });
  if (positionals.length !== 1) return fail(`give one model file: ${usage}`);
  const outcome = await runJob(wb, { kind: 'inspect', model: positionals[0] }, out);
  if (outcome.state !== 'succeeded') return outcome.state === 'failed' ? fail(outcome.error) : EXIT.cancelled;
  const r = parseJobResult('inspect', outcome.result);
  out.result(r);
  out.line(`Model: ${r.path}${r.format === 'pt2' ? ' (torch.export program)' : ''}`);
  out.line(`Parameters: ${r.parameters.count.toLocaleString('en-US')} (${(r.parameters.bytes / 2 ** 20).toFixed(2)} MiB in ${r.parameters.tensors} tensors)`);
  out.line('\nInputs:');
  // A .pt2's dynamic dims show their range (its specs are compile's default input specs).
  const dims = (i: InspectResult['inputs'][number]) =>
    i.spec ? `[${i.spec.dims.map(formatDim).join(', ')}]` : i.shape ? `[${i.shape.join(', ')}]` : '?';
  out.line(table(r.inputs.map((i) => [i.name, i.type, dims(i), i.dtype ?? '?']), ['name', 'type', 'shape', 'dtype']));
  const ops = Object.entries(r.ops);
  out.line(`\nOps (${ops.reduce((a, [, n]) => a + n, 0)} in ${ops.length} kinds):`);
  out.line(table(ops.map(([k, n]) => [k, n]), ['op', 'count']));
  if (r.exported) {
    out.line('\nExported by TorchTVM Workbench:');
    out.line(table(Object.entries(r.exported).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])));
  }
  return EXIT.ok;
}
