// `torchtvm compare BUILD_A BUILD_B`: two builds of one model side by side (untuned vs tuned,
// placement auto vs tvm, two thread counts, two ISAs): what differs between the builds, each op's
// placement, time and error in both with the differing rows marked, then both packages benchmarked
// interleaved run by run, with their latency distributions overlaid.
import { parseArgs } from 'node:util';
import { compareBuilds, fmtPlacement, fmtSideError, overlayHistogram, rowDiffText, type BuildComparison, type HistogramOverlay } from '../../contract/build-compare.js';
import { compareLatency } from '../../contract/format.js';
import { parseJobResult } from '../../contract/jobs.js';
import type { BenchResult } from '../../contract/results.js';
import { readBuildRecord } from '../../core/builds.js';
import { intFlag, type CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { EXIT, runJob } from '../run-job.js';

export const usage = 'torchtvm compare BUILD_A BUILD_B [--all] [--iterations N] [--threads T] [--no-bench] [--force] [--json]  (two build folders of one model, as compile or tune printed them: each op\'s placement, time and error side by side, then both measured interleaved)';

const BAR = 28;

/** A text overlay of two latency histograms: one line per bin, A's bar (█) and B's (░) on the same scale. */
export function histogramText(h: HistogramOverlay): string[] {
  const max = Math.max(1, ...h.a, ...h.b);
  const bar = (n: number, ch: string) => (n ? ch.repeat(Math.max(1, Math.round((n / max) * BAR))) : '');
  const labels = h.edges.map((e) => `≥ ${fmtMs(e)}`);
  const lw = Math.max(...labels.map((l) => l.length));
  return h.a.map((n, i) => `${labels[i].padStart(lw)} │${bar(n, '█').padEnd(BAR)} ${String(n).padStart(4)} │${bar(h.b[i], '░').padEnd(BAR)} ${String(h.b[i]).padStart(4)}`);
}

function printComparison(c: BuildComparison, all: boolean, out: CommandContext['out']): void {
  out.line(`A: ${c.a.dir}  (${c.a.label})`);
  out.line(`B: ${c.b.dir}  (${c.b.label})`);
  out.line(`Model: ${c.a.model}${c.same_model ? '' : `  (B: ${c.b.model})`}\n`);
  out.line(table(c.facts.map((f) => [f.differs ? '*' : '', f.what, f.a, f.b]), ['', 'build', 'A', 'B']));
  const shown = all ? c.rows : c.rows.filter((r) => r.differs);
  const n = c.counts;
  const by = [n.placement && `${n.placement} placement`, n.time && `${n.time} time`, n.error && `${n.error} error`, n.missing && `${n.missing} in one build only`].filter(Boolean).join(', ');
  out.line(`\nPer op: ${n.differing} of ${n.rows} op(s) differ${by ? ` (${by})` : ''}${!all && n.differing < n.rows ? `; ${n.rows - n.differing} identical op(s) not shown (--all shows them)` : ''}.`);
  if (shown.length) {
    out.line(table(
      shown.map((r) => [
        r.differs ? '*' : '',
        r.kind,
        r.scope || '-',
        fmtPlacement(r.a ? r.a.where : undefined, r.b ? r.b.where : undefined),
        fmtMs(r.a?.ms),
        fmtMs(r.b?.ms),
        fmtSideError(r.a),
        fmtSideError(r.b),
        rowDiffText(r),
      ]),
      ['', 'op', 'module', 'placement A → B', 'time A', 'time B', 'error A', 'error B', 'differs'],
    ));
  }
  out.line(`(* differs. Times: each op's median inside a model run, where measured; they differ past ${Math.round(c.thresholds.time_rel * 100)}% and ${fmtMs(c.thresholds.time_abs_ms)}. Errors: max abs against PyTorch; they differ when one passes and the other fails, or by more than ${c.thresholds.error_factor}×.)`);
  for (const w of c.warnings) out.warn(w);
}

/** A build whose p50 recorded when it was made is far from its p50 measured now was measured while the machine was busy: its recorded op times are suspect too. */
export function recordedVsNow(c: BuildComparison, r: BenchResult): string[] {
  const out: string[] = [];
  for (const [name, rec, now] of [['A', c.recorded_p50.a, r.stats.p50], ['B', c.recorded_p50.b, r.vs_stats?.p50]] as const) {
    if (!rec || !now) continue;
    const x = Math.max(rec / now, now / rec);
    if (x > 3) out.push(`${name}'s p50 recorded when it was built (${fmtMs(rec)}) is ${x.toFixed(0)}× its p50 measured now (${fmtMs(now)}): it was measured while the machine was busy, so its recorded op times (the table above) are suspect too; trust the times measured now.`);
  }
  return out;
}

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      all: { type: 'boolean' },
      iterations: { type: 'string', short: 'n' },
      threads: { type: 'string' },
      'no-bench': { type: 'boolean' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
    },
  });
  if (positionals.length !== 2) return fail(`give two build folders: ${usage}`, EXIT.usage);
  let iterations: number | undefined, threads: number | undefined;
  try {
    iterations = intFlag('iterations', values.iterations);
    threads = intFlag('threads', values.threads);
  } catch (e) {
    return fail((e as Error).message, EXIT.usage);
  }
  const a = readBuildRecord(positionals[0]);
  const b = readBuildRecord(positionals[1]);
  const c = compareBuilds(a, b);
  if (!c.same_model && !values.force) {
    return fail({ code: 'different_models', message: `${c.warnings[0]} Compare two builds of one model, or pass --force to compare them anyway.` });
  }
  if (!values.json) printComparison(c, !!values.all, out);
  if (values['no-bench']) {
    out.result({ comparison: c });
    return EXIT.ok;
  }

  // Both packages in one process, interleaved run by run: what the machine does at any moment
  // weighs on both alike. One thread count for both: the builds' own where they agree.
  const benchThreads = threads ?? (a.result.threads === b.result.threads ? a.result.threads : undefined);
  if (threads === undefined && a.result.threads !== b.result.threads) out.warn(`The builds were made for ${a.result.threads} and ${b.result.threads} threads; both are measured at the bench's default thread count (pass --threads to choose one).`);
  const samples: { a: number[]; b: number[] } = { a: [], b: [] };
  const total = iterations ?? 200;
  let shownAt = 0;
  out.line('');
  const outcome = await runJob(wb, { kind: 'bench', model: a.build.package, vs: b.build.package, inputs: a.result.inputs, iterations: total, warmup: 10, ...(benchThreads ? { threads: benchThreads } : {}) }, out, (e) => {
    if (e.event !== 'bench.sample') return;
    (e.data.model === b.build.package && e.data.model !== a.build.package ? samples.b : samples.a).push(e.data.latency_ms);
    const now = Date.now();
    if (now - shownAt < 500) return;
    shownAt = now;
    out.progress(`[bench] ${Math.min(e.data.iteration + 1, total)}/${total} runs of each build, last ${fmtMs(e.data.latency_ms)}`);
  });
  if (outcome.state === 'failed') return fail(outcome.error);
  if (!outcome.result) return fail({ code: 'cancelled', message: 'Cancelled.' }, EXIT.cancelled);
  const r: BenchResult = parseJobResult('bench', outcome.result);
  const hist = overlayHistogram(samples.a, samples.b);
  const cmp = compareLatency(r.stats, r.vs_stats, { baselineLabel: 'A', candidateLabel: 'B' });
  out.result({ comparison: c, bench: r, latency: { ratio: cmp.ratio, kind: cmp.kind, text: cmp.text, warning: cmp.warning, recorded_vs_now: recordedVsNow(c, r) }, histogram: hist, samples });
  if (values.json) return r.cancelled ? EXIT.cancelled : EXIT.ok;
  out.line(`Whole model, measured now: ${r.iterations} runs of each after ${r.warmup} warm-up, ${r.threads} thread(s), A and B interleaved run by run${r.cancelled ? ' (cancelled early)' : ''}.`);
  const row = (name: string, s: BenchResult['stats'] | undefined) => [name, fmtMs(s?.min), fmtMs(s?.p50), fmtMs(s?.p90), fmtMs(s?.p99), fmtMs(s?.mean), s?.runs ?? 0];
  out.line(table([row('A', r.stats), row('B', r.vs_stats)], ['build', 'min', 'p50', 'p90', 'p99', 'mean', 'runs']));
  if (cmp.ratio !== null) out.line(`B against A at p50: ${cmp.kind === 'same' ? 'the same speed' : cmp.text}${cmp.kind === 'noise' ? ' (within the noise: see the warning)' : cmp.kind === 'implausible' ? ' (implausible for one build: see the warning)' : ''}.`);
  if (cmp.warning) out.warn(cmp.warning);
  for (const w of recordedVsNow(c, r)) out.warn(w);
  if (hist) {
    out.line(`\nLatency distributions (A █, B ░; ${hist.a.length} ${hist.log ? 'log-spaced ' : ''}bins from ${fmtMs(hist.lo)} to ${fmtMs(hist.hi)}, the slowest 1% counted in the last bin):`);
    for (const l of histogramText(hist)) out.line(l);
  }
  return r.cancelled || outcome.state === 'cancelled' ? EXIT.cancelled : EXIT.ok;
}
