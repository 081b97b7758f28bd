import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { paths } from '../../core/paths.js';
import { startServer } from '../../server/server.js';
import type { CommandContext } from '../command.js';
import { EXIT } from '../run-job.js';

export const usage = 'torchtvm serve [--port P] [--allow-root DIR …]   (browser mode: the workbench UI on http://127.0.0.1:P with an access token; calls may write only inside your home folder, or the --allow-root folders, and the workbench home)';

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { port: { type: 'string' }, 'allow-root': { type: 'string', multiple: true }, json: { type: 'boolean' }, verbose: { type: 'boolean' } } });
  if (positionals.length) return fail(`serve takes no file arguments: ${usage}`, EXIT.usage);
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return fail(`--port must be 0..65535, not "${values.port}"`, EXIT.usage);
  const roots = values['allow-root'] ?? [];
  const missing = roots.filter((r) => !existsSync(r) || !statSync(r).isDirectory());
  if (missing.length) return fail(`--allow-root needs existing folders; ${missing.join(', ')} ${missing.length > 1 ? 'are not folders' : 'is not a folder'}.`, EXIT.usage);
  const server = await startServer({ api: wb, port, rendererDir: paths.rendererDist, allowedRoots: roots.map((r) => resolve(r)) });
  // Printed on stdout in both modes: tools (and the e2e tests) parse the URL from it.
  if (out.json) process.stdout.write(JSON.stringify({ url: server.url, port: server.port }) + '\n');
  else {
    process.stdout.write(`TorchTVM Workbench is serving on ${server.url}\n`);
    process.stderr.write('Open that URL in a browser on this machine (it only listens on 127.0.0.1). The token in it is the password: do not share it.\nLoading a .pt runs code from it: only open files you trust. Ctrl-C stops the server.\n');
    process.stderr.write(`Exports, builds and tuning work dirs may be written only inside ${server.roots.join(', ')} (add folders with --allow-root DIR).\n`);
  }
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  return EXIT.ok;
}
