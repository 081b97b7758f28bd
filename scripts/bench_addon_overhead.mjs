#!/usr/bin/env node
// How much the benchmark harness adds to what it measures, on a model small enough for the
// harness to matter. Three ways of timing the same TorchScript model with libtorch C++:
//   bare:    the addon's "bare" mode: one clock per block of forward() calls, no per-run clocks, no samples
//            (mean = total / runs; "p50" = the median of the block means)
//   harness: the addon's benchmark(): a clock per run, samples streamed to JS (ThreadSafeFunction)
//   job:     the whole path the app uses: bench job -> child process -> addon, samples as IPC events
// Rounds alternate the three so that machine load affects them alike; reports the median per mode.
//
// usage: node scripts/bench_addon_overhead.mjs [MODEL.pt --input NAME:DIMS:DTYPE] [--iterations N] [--rounds R] [--threads T]
// Default model: a tiny Linear(8, 4) + ReLU made on the fly with .venv/bin/python. Needs `npm run setup` (addon + dist).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { values } = parseArgs({ options: { input: { type: 'string', multiple: true }, iterations: { type: 'string' }, rounds: { type: 'string' }, threads: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true, args: process.argv.slice(2) });
const positionals = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !(i > 0 && ['--input', '--iterations', '--rounds', '--threads'].includes(all[i - 1])));
const iterations = Number(values.iterations ?? 20000);
const rounds = Number(values.rounds ?? 5);
const threads = Number(values.threads ?? 1);

const { parseSpec } = await import(join(root, 'dist/app/contract/specs.js'));
const { benchRunner } = await import(join(root, 'dist/app/core/bench/bench-host.js'));
const { JobManager } = await import(join(root, 'dist/app/core/jobs.js'));
const { paths } = await import(join(root, 'dist/app/core/paths.js'));

let model = positionals[0];
let specs = (values.input ?? []).map(parseSpec);
if (!model) {
  const dir = mkdtempSync(join(tmpdir(), 'torchtvm-overhead-'));
  model = join(dir, 'tiny.pt');
  const py = `import torch\nm = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()\ntorch.jit.save(torch.jit.trace(m, torch.randn(1, 8)), ${JSON.stringify(model)})\n`;
  writeFileSync(join(dir, 'make.py'), py);
  execFileSync(paths.python, [join(dir, 'make.py')], { stdio: 'ignore', env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
  specs = [{ name: 'x', dims: [1, 8], dtype: 'float32' }];
}

const addon = createRequire(import.meta.url)(paths.addon);
const jobs = new JobManager({ bench: benchRunner() });
const opts = { warmup: 200, iterations, threads };

async function bare() {
  const r = await addon.benchmark(model, specs, { ...opts, bare: true }).done;
  return { mean: r.models[0].bare_mean_ms, p50: r.models[0].stats.p50 };
}
async function harness() {
  let n = 0;
  const r = await addon.benchmark(model, specs, opts, () => n++).done;
  if (n !== iterations) throw new Error(`expected ${iterations} samples, got ${n}`);
  return r.models[0].stats;
}
async function job() {
  let n = 0;
  const off = jobs.onEvent((e) => e.event === 'bench.sample' && n++);
  const id = jobs.start({ kind: 'bench', model, inputs: specs, ...opts });
  const o = await jobs.wait(id);
  off();
  if (o.state !== 'succeeded') throw new Error(JSON.stringify(o));
  if (n !== iterations) throw new Error(`expected ${iterations} events, got ${n}`);
  return o.result.stats;
}

const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = { bareMean: [], bareP50: [], harnessMean: [], harnessP50: [], jobMean: [], jobP50: [] };
for (let i = 0; i < rounds; i++) {
  const bb = await bare();
  rows.bareMean.push(bb.mean);
  rows.bareP50.push(bb.p50);
  const h = await harness();
  rows.harnessMean.push(h.mean);
  rows.harnessP50.push(h.p50);
  const j = await job();
  rows.jobMean.push(j.mean);
  rows.jobP50.push(j.p50);
}
const us = (ms) => `${(ms * 1000).toFixed(2)} us`;
const b = med(rows.bareMean);
const bp = med(rows.bareP50);
const result = {
  model, iterations, rounds, threads,
  bare_mean_ms: b, bare_p50_ms: bp,
  harness_mean_ms: med(rows.harnessMean), harness_p50_ms: med(rows.harnessP50),
  job_mean_ms: med(rows.jobMean), job_p50_ms: med(rows.jobP50),
  overhead_per_run_ms: { harness: med(rows.harnessMean) - b, job: med(rows.jobMean) - b },
  overhead_p50_ms: { harness: med(rows.harnessP50) - bp, job: med(rows.jobP50) - bp },
  rounds_raw: rows,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`${model}: ${iterations} runs x ${rounds} rounds, ${threads} thread(s); medians over rounds`);
  console.log(`  bare C++ loop  mean ${us(b)}  p50 ${us(bp)} (median of block means)`);
  console.log(`  addon harness  mean ${us(result.harness_mean_ms)}  p50 ${us(result.harness_p50_ms)}  (p50 ${us(result.overhead_p50_ms.harness)} vs bare)`);
  console.log(`  bench job      mean ${us(result.job_mean_ms)}  p50 ${us(result.job_p50_ms)}  (p50 ${us(result.overhead_p50_ms.job)} vs bare)`);
}
