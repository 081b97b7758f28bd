import { parseArgs } from 'node:util';
import type { CommandContext } from '../command.js';
import { EXIT } from '../run-job.js';
import { runServerForeground, trackerProblem } from '../remote.js';

export const usage =
  'torchtvm rpc-server --tracker HOST:PORT --key KEY [--host ADDRESS] [--port N] [--name NAME]  (a measuring server for tunes and benches on this machine: TVM\'s own RPC server, registered with the tracker under KEY, the runtime library loaded; it listens on 127.0.0.1 unless --host asks otherwise. TVM\'s RPC protocol has no authentication: whoever reaches the port can run code here)';

export async function run(argv: string[], { fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { tracker: { type: 'string' }, key: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } },
  });
  if (positionals.length) return fail(`rpc-server takes no file: ${usage}`, EXIT.usage);
  if (!values.tracker || !values.key) return fail(`rpc-server needs --tracker HOST:PORT and --key KEY: ${usage}`, EXIT.usage);
  const bad = trackerProblem(values.tracker);
  if (bad) return fail(bad, EXIT.usage);
  if (!/^[A-Za-z0-9_.-]+$/.test(values.key)) return fail(`--key must be letters, digits, dots, dashes or underscores, not "${values.key}"`, EXIT.usage);
  if (values.port !== undefined && !/^\d{1,5}$/.test(values.port)) return fail(`--port must be a port number, not "${values.port}"`, EXIT.usage);
  const args = ['--tracker', values.tracker, '--key', values.key];
  if (values.host) args.push('--host', values.host);
  if (values.port) args.push('--port', values.port);
  if (values.name) args.push('--name', values.name);
  // Its first stdout line is a JSON object (listening: its name, CPU model, LLVM CPU and features).
  return runServerForeground(args);
}
