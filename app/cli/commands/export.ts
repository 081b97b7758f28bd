import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { parseJobResult } from '../../contract/jobs.js';
import { describeBuild } from '../../contract/builds.js';
import type { CompileResult } from '../../contract/results.js';
import { buildModel } from '../../core/builds.js';
import { intFlag, type CommandContext } from '../command.js';
import { EXIT, runJob } from '../run-job.js';

export const usage = 'torchtvm export BUILD_DIR -o OUT.pt [--force] [--mkdir] [--export-unverified] [--accept-edge-mismatch] [--timeout SECONDS] [--json]  (BUILD_DIR: the build folder a compile or tune printed; its verified package is copied, nothing is rebuilt)';

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      output: { type: 'string', short: 'o' },
      force: { type: 'boolean' },
      mkdir: { type: 'boolean' },
      'export-unverified': { type: 'boolean' },
      'accept-edge-mismatch': { type: 'boolean' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
    },
  });
  if (positionals.length !== 1 || !values.output) return fail(`give one build folder and -o OUT.pt: ${usage}`, EXIT.usage);
  let timeout: number | undefined;
  try {
    timeout = intFlag('timeout', values.timeout);
  } catch (e) {
    return fail((e as Error).message, EXIT.usage);
  }
  const build = positionals[0];
  const outcome = await runJob(wb, {
    kind: 'export',
    model: buildModel(build),
    build,
    export_path: values.output,
    ...(timeout !== undefined ? { timeout_s: timeout } : {}),
    ...(values['export-unverified'] ? { export_unverified: true } : {}),
    ...(values['accept-edge-mismatch'] ? { accept_edge_mismatch: true } : {}),
    ...(values.force ? { overwrite: true } : {}),
    ...(values.mkdir ? { create_parent: true } : {}),
  }, out);
  if (outcome.state === 'cancelled') return fail({ code: 'cancelled', message: 'Cancelled; nothing was written.' }, EXIT.cancelled);
  if (outcome.state === 'failed') return fail(outcome.error);
  const r: CompileResult = parseJobResult('export', outcome.result);
  out.result(r);
  if (!r.files.exported) {
    out.line(r.export_skipped ?? 'Nothing was written.');
    return EXIT.failed;
  }
  out.line(`Wrote ${r.files.exported}: build ${r.build ? describeBuild(r.build) : join(build)} (a byte-for-byte copy of the verified package).`);
  return EXIT.ok;
}
