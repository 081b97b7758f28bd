import { parseArgs } from 'node:util';
import type { CommandContext } from '../command.js';
import { table } from '../output.js';
import { EXIT } from '../run-job.js';
import { NO_AUTH, runEngineJson, trackerProblem } from '../remote.js';

export const usage =
  'torchtvm targets --tracker HOST:PORT [--key KEY] [--json]  (the tracker\'s queues: servers, free and pending per key; with --key, that key\'s servers, their CPU and the target a build for them gets, or why the key is refused)';

interface Queue { key: string; servers: number; free: number; pending: number; addresses: string[] }
interface Probe { servers: { name: string; cpu_model: string; llvm_cpu: string; features: string[]; cores: number }[]; target: Record<string, unknown> }

export async function run(argv: string[], { out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { tracker: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } } });
  if (positionals.length || !values.tracker) return fail(`give the tracker: ${usage}`, EXIT.usage);
  const bad = trackerProblem(values.tracker);
  if (bad) return fail(bad, EXIT.usage);
  const r = await runEngineJson(['-m', 'torchtvm.remote.fleet', values.tracker, ...(values.key ? ['--key', values.key] : [])]);
  const v = r.value as { error?: { code: string; message: string }; keys?: Queue[]; probe?: Probe } | null;
  if (!v) return fail({ code: 'engine_failed', message: `torchtvm.remote.fleet failed: ${r.stderr.trim().split('\n').pop() ?? ''}` });
  if (v.error) return fail(v.error);
  out.result(v);
  const keys = v.keys ?? [];
  out.line(keys.length ? table(keys.map((q) => [q.key, String(q.servers), String(q.free), String(q.pending), q.addresses.join(' ')]), ['key', 'servers', 'free', 'pending', 'addresses']) : `No server is registered with the tracker at ${values.tracker}.`);
  if (v.probe) {
    out.line(`\nKey ${values.key}: ${v.probe.servers.length} server(s) answered; a build for it targets ${JSON.stringify(v.probe.target)}`);
    out.line(table(v.probe.servers.map((s) => [s.name, s.cpu_model, s.llvm_cpu, String(s.cores), `${s.features.length} feature(s)`]), ['server', 'CPU', 'LLVM CPU', 'cores', 'features']));
  }
  out.line(`\n${NO_AUTH}`);
  return EXIT.ok;
}
