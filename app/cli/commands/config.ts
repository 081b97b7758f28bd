import { parseArgs } from 'node:util';
import { checkPython } from '../../core/engine-client/engine-client.js';
import { enginePython, readSettings, writeSettings } from '../../core/settings.js';
import type { CommandContext } from '../command.js';
import { EXIT } from '../run-job.js';

export const usage = 'torchtvm config [python [PATH | --clear]] [--json]  (the engine\'s Python; TORCHTVM_PYTHON overrides the setting)';

/** Shows or sets the workbench settings; a Python is checked (torch / apache-tvm versions) before it is saved. */
export async function run(argv: string[], { out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { clear: { type: 'boolean' }, json: { type: 'boolean' }, verbose: { type: 'boolean' } } });
  const [key, value] = positionals;
  if (key !== undefined && key !== 'python') return fail(`unknown setting "${key}"; usage: ${usage}`, EXIT.usage);
  if (key === 'python' && (value !== undefined || values.clear)) {
    if (value !== undefined && values.clear) return fail('give a PATH or --clear, not both', EXIT.usage);
    if (value !== undefined) checkPython(value, 'the python setting');
    writeSettings({ python: values.clear ? undefined : value });
  }
  const chosen = enginePython();
  const settings = readSettings();
  out.result({ settings, engine_python: chosen });
  out.line(`Engine Python: ${chosen.python} (from ${chosen.source === 'bundled' ? 'the bundled .venv' : chosen.source === 'setting' ? 'the python setting' : 'TORCHTVM_PYTHON'})`);
  if (settings.python && chosen.source === 'TORCHTVM_PYTHON') out.line(`The python setting (${settings.python}) is overridden by TORCHTVM_PYTHON.`);
  return EXIT.ok;
}
