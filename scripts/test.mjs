#!/usr/bin/env node
// `npm test`: the engine's pytest suite, then the Node suite (core, CLI, addon), then the e2e suite
// (browser mode in Chromium). Every suite runs even if an earlier one fails; the exit code is the
// first failure's.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const python = join(root, '.venv', 'bin', 'python');
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
if (!existsSync(python)) {
  console.error('The engine is not set up: run "npm install" first.');
  process.exit(2);
}
const suites = [
  ['python', python, ['-m', 'pytest', '-q', 'test/python']],
  ['node', process.execPath, [vitest, 'run', '--project', 'node']],
  ['e2e', process.execPath, [vitest, 'run', '--project', 'e2e']],
];
const only = process.argv.slice(2);
let exit = 0;
const summary = [];
for (const [name, cmd, args] of suites) {
  if (only.length && !only.includes(name)) continue;
  console.log(`\n=== ${name} tests ===`);
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, FORCE_COLOR: '0' } });
  const code = r.status ?? 1;
  summary.push(`${name}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (code !== 0 && exit === 0) exit = code;
}
console.log(`\n${summary.join('\n')}`);
process.exit(exit);
