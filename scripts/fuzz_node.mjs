#!/usr/bin/env node
// The full Node-side fuzz run: test/node/fuzz.test.ts with 10,000 generated inputs per target
// (the CI suite runs a few hundred). Counts (inputs, accepted, refused, crashes, hangs, slowest
// input) go to test-artifacts/fuzz-node.json.
//
//   npm run fuzz:node                     10,000 per target, a random seed
//   FUZZ_RUNS=50000 FUZZ_SEED=42 npm run fuzz:node
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const report = join(root, 'test-artifacts', 'fuzz-node.json');
const runs = process.env.FUZZ_RUNS ?? '10000';
const r = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--project', 'node', 'test/node/fuzz.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, FUZZ_RUNS: runs, FUZZ_REPORT: report },
});
try {
  const data = JSON.parse(readFileSync(report, 'utf8'));
  console.log(`\nFuzz counts, ${data.runs_per_target} runs per target (${report}):`);
  for (const [name, t] of Object.entries(data.targets)) {
    console.log(`  ${name.padEnd(20)} inputs ${String(t.inputs).padStart(6)}  accepted ${String(t.accepted).padStart(6)}  refused ${String(t.refused).padStart(6)}  crashes ${t.crashes}  hangs ${t.hangs}  slowest ${t.max_ms} ms`);
  }
} catch {
  console.error(`No fuzz report at ${report}.`);
}
process.exit(r.status ?? 1);
