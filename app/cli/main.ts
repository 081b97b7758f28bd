// `torchtvm` command line: app/core without a window.
import { WorkbenchError } from '../contract/errors.js';
import { createWorkbench } from '../core/workbench.js';
import type { Command } from './command.js';
import { benchRunner } from '../core/bench/bench-host.js';
import * as bench from './commands/bench.js';
import * as compare from './commands/compare.js';
import * as compile from './commands/compile.js';
import * as config from './commands/config.js';
import * as exportBuild from './commands/export.js';
import * as inspect from './commands/inspect.js';
import * as log from './commands/log.js';
import * as serve from './commands/serve.js';
import * as rpcServer from './commands/rpc-server.js';
import * as targets from './commands/targets.js';
import { Output } from './output.js';
import { EXIT } from './run-job.js';

const COMMANDS: Record<string, Command> = { inspect, compile, compare, export: exportBuild, serve, bench, log, config, 'rpc-server': rpcServer, targets };

function help(): string {
  return ['TorchTVM Workbench: compile, tune and export TorchScript models with Apache TVM.', '', 'Usage:', ...Object.values(COMMANDS).map((c) => `  ${c.usage}`), '', 'Loading a .pt runs code from it: only open files you trust.'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? EXIT.ok : EXIT.usage;
  }
  const cmd = COMMANDS[name];
  const json = rest.includes('--json');
  const verbose = rest.includes('--verbose');
  const out = new Output(json);
  const fail = (err: string | { code: string; message: string; detail?: string }, code: number = EXIT.failed) => {
    out.error(typeof err === 'string' ? { code: code === EXIT.usage ? 'usage' : 'error', message: err } : err, verbose);
    return code;
  };
  if (!cmd) return fail(`unknown command "${name}"; run torchtvm --help`, EXIT.usage);
  const wb = createWorkbench({ host: name === 'serve' ? 'browser' : 'cli', runners: { bench: benchRunner() } });
  try {
    return await cmd.run(rest, { wb, out, fail });
  } catch (e) {
    const err = WorkbenchError.from(e);
    // parseArgs reports unknown or malformed options as TypeErrors with a code.
    const usageError = (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    return fail(usageError ? { code: 'usage', message: `${err.message}; usage: ${cmd.usage}` } : err.toJSON(), usageError ? EXIT.usage : EXIT.failed);
  } finally {
    await wb.close();
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
