import { parseArgs } from 'node:util';
import { formatDim, parseSpec, type InputSpec } from '../../contract/specs.js';
import { CANDIDATE_LABELS, type CompileResult, type OpComparison, type PlacedOp, type Placement, type TuningSummary } from '../../contract/results.js';
import { parseJobResult, type JobEvent } from '../../contract/jobs.js';
import { intFlag, type CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { fmtDuration, fmtSizes, latencyRows } from '../../contract/format.js';
import { emptyTuneRecord, etaSeconds, foldTuneEvents, RUNS_AS_LABELS, runOfSummary, taskShares, tasksOfSummary, tuneLine, type TuneRecord } from '../../contract/tune-record.js';
import { describeBuild } from '../../contract/builds.js';
import { EXIT, runJob } from '../run-job.js';

export const usage =
  'torchtvm compile MODEL.pt|MODEL.pt2 --input NAME:DIMS:DTYPE[:LO..HI] … [--target llvm] [--threads N] [-o OUT.pt [--force]] [--out-dir DIR] [--mkdir] [--no-measure] [--strict] [--placement auto|library|tvm] [--export-unverified] [--accept-edge-mismatch] [--compare-ops] [--timeout SECONDS] [--trials N [--trials-per-task M] [--tune-size SYM=N …] [--work-dir DIR]] [--tracker HOST:PORT --key KEY] [--json]  (a .pt2 needs no --input: its own shapes and dynamic dims are used; nor does a model that takes no inputs)';

export const compileOptions = {
  input: { type: 'string', multiple: true },
  target: { type: 'string' },
  threads: { type: 'string' },
  output: { type: 'string', short: 'o' },
  'out-dir': { type: 'string' },
  'no-measure': { type: 'boolean' },
  fallback: { type: 'boolean' },
  strict: { type: 'boolean' },
  placement: { type: 'string' },
  'export-unverified': { type: 'boolean' },
  timeout: { type: 'string' },
  'accept-edge-mismatch': { type: 'boolean' },
  'compare-ops': { type: 'boolean' },
  'tune-size': { type: 'string', multiple: true },
  trials: { type: 'string' },
  'trials-per-task': { type: 'string' },
  'work-dir': { type: 'string' },
  tracker: { type: 'string' },
  key: { type: 'string' },
  force: { type: 'boolean' },
  mkdir: { type: 'boolean' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
} as const;

export function parseCommon(values: { input?: string[]; threads?: string }): { inputs: InputSpec[]; threads?: number } {
  // Without --input, a .pt2 uses its own specs, and a model that takes no inputs needs none; the
  // engine names the inputs a model takes when they are missing.
  const inputs = (values.input ?? []).map(parseSpec);
  return { inputs, threads: intFlag('threads', values.threads) };
}

export function printCompileResult(r: CompileResult, out: CommandContext['out']): void {
  out.line(`\n${r.model} → ${r.target.kind} (${r.target.mcpu ?? 'default'}; ${r.target.features.join(' ') || 'no extra features'}), ${r.threads} thread(s)`);
  out.line(table([
    ['import', `${r.timings_s.import.toFixed(1)} s`],
    ['build', `${r.timings_s.build.toFixed(1)} s`],
  ], ['stage', 'time']));
  if (r.fallback && r.coverage) printCoverage(r, out);
  const num = (v: number | string | null | undefined) => (typeof v === 'number' ? v.toExponential(2) : v ?? '-');
  const v = r.verification;
  const on = v.verified_on ? ` (run on ${v.verified_on.name}, ${v.verified_on.cpu_model ?? 'unknown CPU'}, key ${v.verified_on.key} at ${v.verified_on.tracker})` : '';
  out.line(`\nVerification against PyTorch${on}: ${v.skipped ? `NOT RUN: ${v.reason}` : v.ok ? 'OK' : 'MISMATCH'}`);
  if (v.outputs.length) out.line(table(v.outputs.map((o) => [`#${o.index}`, `[${o.shape.join(', ')}]`, o.dtype, num(o.max_abs), num(o.max_rel), o.atol !== undefined ? `${o.atol}/${o.rtol}` : 'exact', o.ok ? 'ok' : `FAIL${o.reason ? `: ${o.reason}` : ''}`]), ['output', 'shape', 'dtype', 'max abs', 'max rel', 'atol/rtol', '']));
  if (v.edge_values) {
    const ev = v.edge_values;
    out.line(`Edge values (NaN, ±inf, -0.0, huge, tiny, zeros): ${ev.ok ? 'same as PyTorch' : `differ from PyTorch for ${ev.failed.join(', ')}`}`);
    for (const c of ev.cases.filter((c) => !c.ok)) out.line(`  ${c.case}: ${c.reason ?? (c.outputs ?? []).filter((o) => !o.ok).map((o) => `output #${o.index}: ${o.reason ?? 'differs'}`).join('; ')}`);
  }
  if (r.latency_ms) {
    // The rows, their names and the verdict on each ratio are the app's (app/contract/format.ts).
    const l = r.latency_ms;
    const at = fmtSizes(l.sizes);
    const where = l.measured_on ? `on ${l.measured_on.name} (${l.measured_on.cpu_model ?? 'unknown CPU'}), one after the other` : 'same process, same threads, interleaved rounds';
    out.line(`\nLatency, p50 of timed calls after warm-up${at ? ` ${at}` : ''} (${where}; baseline ${l.baseline ?? 'TorchScript'}):`);
    const rows = latencyRows(l);
    out.line(table(rows.map((x) => [x.label, fmtMs(x.stats.p50), fmtMs(x.stats.p90), String(x.stats.runs ?? '-'), x.baseline ? 'baseline' : x.vs!.warning ? `${x.vs!.text} (?)` : x.vs!.text]), ['', 'p50', 'p90', 'runs', 'vs baseline']));
    for (const x of rows) if (x.vs?.warning) out.line(`Warning: ${x.vs.warning}`);
    if (l.baseline_note) out.line(`Baseline: ${l.baseline_note}.`);
  }
  if (r.slower) out.line(`\nSLOWER: ${r.slower.message}`);
  if (r.placement) printPlacement(r.placement, out);
  if (r.op_comparison) printOpComparison(r.op_comparison, out);
  out.line(`\nWrote: ${Object.entries(r.files).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.build) out.line(`Build ${describeBuild(r.build)}: export it again with \`torchtvm export ${r.build.dir} -o OUT.pt\` (a copy of this build, nothing rebuilt).`);
}

export function printPlacement(p: Placement, out: CommandContext['out']): void {
  const lib = p.ops.filter((o) => o.where === 'library');
  const head = `\nPlacement (${p.mode}): ${lib.length} op(s) in the library kernels (oneDNN/MKL)` +
    (p.library_ms != null ? `, ${fmtMs(p.library_ms)}` : '') +
    (p.tvm_ms != null ? `; TVM's kernels and the VM (everything else) ${fmtMs(p.tvm_ms)}` : '') +
    (p.ops.length > lib.length ? `; ${p.ops.length - lib.length} heavy op(s) in TVM` : '');
  out.line(head);
  // The parts come from a profiled run (slower than the p50: profiling costs time): its shares,
  // scaled so that they add up to the total shown.
  if (p.parts_of === 'p50' && p.profiled_ms != null && p.total_ms != null) out.line(`(Shares of a profiled run of ${fmtMs(p.profiled_ms)}, scaled to the measured p50 of ${fmtMs(p.total_ms)}.)`);
  else if (p.parts_of === 'profiled run' && p.profiled_ms != null) out.line(`(Times of a profiled run of ${fmtMs(p.profiled_ms)}; the model was not measured.)`);
  if (p.note) out.line(p.note);
  if (p.ops.length) {
    // With per-op placement, each op's candidates timed alone: why it runs where it does.
    const alone = p.ops.some((o) => o.alone_ms);
    const columns = Object.keys(CANDIDATE_LABELS).filter((k) => p.ops.some((o) => o.alone_ms?.[k] != null));
    const aloneCell = (a: NonNullable<PlacedOp['alone_ms']>) =>
      columns.map((k) => (a[k] != null ? fmtMs(a[k] as number) : '-')).join(' / ');
    // Each op by its kind and where it is in the model (module path), not by its Relax binding name.
    // Where a call was also timed inside the model (it ran much slower there than alone): both algorithms' times there.
    const inModel = p.ops.some((o) => o.context_ms);
    const inModelCell = (c: NonNullable<PlacedOp['context_ms']>) =>
      Object.entries(c).filter(([, v]) => v != null).map(([k, v]) => `${CANDIDATE_LABELS[k] ?? k} ${fmtMs(v as number)}`).join(' / ');
    out.line(table(p.ops.map((o) => [o.kind, o.scope ?? (o.node ? '(top level)' : '-'), `[${o.shape.join(', ')}]`, o.epilogue.join('+') || '-', o.algorithm ? `${o.where} (${o.algorithm})` : o.where,
      o.ms != null ? fmtMs(o.ms) : '-', o.share != null ? `${(100 * o.share).toFixed(1)}%` : '-',
      ...(alone ? [o.alone_ms ? aloneCell(o.alone_ms) : '-'] : []),
      ...(inModel ? [o.context_ms ? inModelCell(o.context_ms) : '-'] : [])]),
      ['op', 'module', 'output', 'fused', 'runs in', 'time', 'share', ...(alone ? [`alone: ${columns.map((k) => CANDIDATE_LABELS[k]).join(' / ')}`] : []), ...(inModel ? ['in the model'] : [])]));
  }
}

/** --compare-ops: each op against PyTorch's value for the same node, in run order, the first one past the tolerance named above the table. */
function printOpComparison(c: OpComparison, out: CommandContext['out']): void {
  const num = (v: number | string | null | undefined) => (typeof v === 'number' ? v.toExponential(2) : v ?? '-');
  const name = (o: OpComparison['ops'][number]) => `${o.kind} ${o.scope ?? (o.node ? '(top level)' : o.op)}`;
  const tol = Object.entries(c.tolerance?.by_dtype ?? {}).map(([dt, t]) => `${dt} atol ${t.atol} + rtol ${t.rtol} × the tensor's largest magnitude`).join('; ');
  out.line(`\nPer-op comparison with PyTorch (${c.ops.length} op(s), in run order${tol ? `; tolerance ${tol}` : ''}):`);
  const first = c.ops.find((o) => o.op === c.first_failing);
  if (first) out.line(`FIRST OP PAST THE TOLERANCE: ${name(first)} (${first.op}, ${first.where}: ${first.kernel})${first.reason ? `: ${first.reason}` : ''}`);
  else if (c.ops.length) out.line('Every op is within tolerance.');
  if (c.ops.length) {
    out.line(table(c.ops.map((o) => [name(o), o.where, `[${o.shape.join(', ')}]${o.layout === 'channels-last' ? ' (NHWC)' : ''}`, o.ms !== undefined ? fmtMs(o.ms) : '-', num(o.max_abs), num(o.max_rel), String(o.nan_inf_mismatches), o.ok ? 'ok' : 'FAIL']),
      ['op', 'where', 'shape', 'time', 'max abs', 'max rel', 'NaN/inf', '']));
  }
  out.line(c.note);
}

function printCoverage(r: CompileResult, out: CommandContext['out']): void {
  const c = r.coverage!;
  out.line(`\nThe whole model did not import (${r.fallback!.reason}); fallback (--strict turns it off):`);
  out.line(`compiled ${c.ops_compiled} of ${c.ops_total} ops, ${(100 * c.time_share_compiled).toFixed(0)}% of TorchScript's run time now runs in TVM`);
  out.line(table(c.modules.map((m) => [m.name, m.compiled ? 'TVM' : 'TorchScript', m.reason ?? '']), [c.level === 'module' ? 'submodule' : 'segment (where: ops)', 'runs in', 'why']));
}

/** --tune-size batch=4 (repeatable): the size each symbolic dim is tuned at. */
function parseTuneSizes(items: string[] | undefined): Record<string, number> | undefined {
  if (!items?.length) return undefined;
  const out: Record<string, number> = {};
  for (const item of items) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(\d+)$/.exec(item);
    if (!m || Number(m[2]) < 1) throw new Error(`--tune-size takes SYMBOL=SIZE, e.g. --tune-size batch=4, not "${item}"`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}


/**
 * Live tuning view: one status line (bar, trials, estimate, ETA) rewritten in place on a terminal,
 * from the run's record (app/contract/tune-record.ts), folded from its events as the app folds them.
 */
export function tuneView(budget: number, out: CommandContext['out']): (e: JobEvent) => void {
  let rec: TuneRecord = emptyTuneRecord(budget);
  return (e) => {
    if (e.event !== 'tune.tasks' && e.event !== 'tune.trial') return;
    rec = foldTuneEvents(rec, [e]);
    if (e.event !== 'tune.trial') return;
    const d = e.data;
    const frac = Math.min(1, rec.total / (rec.budget ?? budget));
    const bar = '#'.repeat(Math.round(frac * 20)).padEnd(20, '.');
    const last = d.error ? `error (${d.error.slice(0, 40)})` : fmtMs(d.latency_ms);
    const eta = etaSeconds(rec);
    out.progress(`[tune] [${bar}] ${rec.total}/${rec.budget ?? budget}  est ${fmtMs(rec.estimate_ms)}${eta !== null ? `  about ${fmtDuration(eta * 1000)} left` : ''}  task ${d.task_id} ${d.task_name.slice(0, 28)} #${d.trial} ${last}${d.server ? ` on ${d.server}` : ''} best ${fmtMs(d.best_ms)}`);
  };
}

export function printTuning(t: TuningSummary, out: CommandContext['out'], latency?: CompileResult['latency_ms']): void {
  const run = runOfSummary(t);
  out.line(`\nTuning in ${t.work_dir}: ${tuneLine(run, t.measured_ms, '-')}`);
  // Per task: the time the build runs it at (best record, default schedule, or the library kernel
  // where faster) and its share of the same estimate as the line above (the Tune page's table).
  const { rows, library } = taskShares(tasksOfSummary(t));
  out.line(
    table(
      rows.map((r) => [r.task.id, r.task.name.slice(0, 40), r.task.weight, r.task.trials, r.task.errors, fmtMs(r.task.best_ms), fmtMs(r.task.default_ms), fmtMs(r.task.library_ms), r.as ? RUNS_AS_LABELS[r.as] : '-', r.share !== null ? `${(100 * r.share).toFixed(1)}%` : '-']),
      ['#', 'task', 'weight', 'trials', 'errors', 'best trial', 'default', 'library', 'runs as', 'share'],
    ),
  );
  if (library.tasks) out.line(`Library kernels (not tuned): ${library.tasks} task(s), ${fmtMs(library.ms)}${library.share !== null ? `, ${(100 * library.share).toFixed(1)}% of the estimate` : ''}.`);
  // A tune over an RPC tracker (issue 25): where the trials were measured.
  const fleet = (t as { fleet?: { tracker: string; key: string; servers: { name: string; cpu_model: string }[]; trials_by_server: Record<string, number> } }).fleet;
  if (fleet) out.line(`Measured on key ${fleet.key} at ${fleet.tracker} (${fleet.servers[0]?.cpu_model ?? '?'}): ${Object.entries(fleet.trials_by_server).map(([k, n]) => `${k} ${n} trial(s)`).join(', ') || 'no trial'}.`);
  out.line(`Estimated end-to-end (sum of kernels, not a measurement): ${fmtMs(t.estimated_ms)}; measured (the tuned build, p50${fmtSizes(latency?.sizes) ? ` ${fmtSizes(latency?.sizes)}` : ''}): ${fmtMs(t.measured_ms)}`);
  for (const n of t.notes) out.line(`Note: ${n}`);
}

export async function run(argv: string[], { wb, out, fail }: CommandContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: compileOptions });
  if (positionals.length !== 1) return fail(`give one model file: ${usage}`);
  let common;
  let trials: number | undefined;
  let timeout: number | undefined;
  let trialsPerTask: number | undefined;
  let tuneSizes: Record<string, number> | undefined;
  try {
    common = parseCommon(values);
    tuneSizes = parseTuneSizes(values['tune-size']);
    trials = intFlag('trials', values.trials);
    timeout = intFlag('timeout', values.timeout);
    trialsPerTask = intFlag('trials-per-task', values['trials-per-task']);
    if (trials === undefined && (trialsPerTask !== undefined || values['work-dir'] !== undefined || tuneSizes)) throw new Error('--trials-per-task, --tune-size and --work-dir need --trials N');
    if ((values.tracker !== undefined || values.key !== undefined) && (!values.tracker || !values.key)) throw new Error('--tracker HOST:PORT and --key KEY go together: a build this machine cannot run is verified and timed on a server of the key (and with --trials N, the trials are measured there)');
    if (values.strict && values.fallback) throw new Error('--strict and --fallback contradict each other (fallback is the default)');
    if (values.placement !== undefined && !['auto', 'library', 'tvm'].includes(values.placement)) throw new Error(`--placement must be auto, library or tvm, not "${values.placement}"`);
  } catch (e) {
    return fail((e as Error).message, EXIT.usage);
  }
  const base = {
    model: positionals[0],
    inputs: common.inputs,
    threads: common.threads,
    target: values.target ?? 'llvm',
    export_path: values.output,
    out_dir: values['out-dir'],
    measure: !values['no-measure'],
    ...(values.strict ? { strict: true } : {}),
    ...(values.placement ? { placement: values.placement as 'auto' | 'library' | 'tvm' } : {}),
    ...(values['export-unverified'] ? { export_unverified: true } : {}),
    ...(timeout !== undefined ? { timeout_s: timeout } : {}),
    ...(values['accept-edge-mismatch'] ? { accept_edge_mismatch: true } : {}),
    ...(values['compare-ops'] ? { compare_ops: true } : {}),
    ...(values.force ? { overwrite: true } : {}),
    ...(values.mkdir ? { create_parent: true } : {}),
  };
  // The shapes as the parser read them, before anything runs (a .pt2 without --input uses its own).
  if (common.inputs.length) out.line(`Inputs: ${common.inputs.map((s) => `${s.name} [${s.dims.map(formatDim).join(', ')}] ${s.dtype}`).join('; ')}`);
  const outcome = trials !== undefined
    ? await runJob(wb, { ...base, kind: 'tune', trials, trials_per_task: trialsPerTask, work_dir: values['work-dir'], ...(tuneSizes ? { tune_sizes: tuneSizes } : {}), ...(values.tracker ? { tracker: values.tracker, key: values.key } : {}) }, out, tuneView(trials, out))
    : await runJob(wb, { ...base, kind: 'compile', ...(values.tracker ? { tracker: values.tracker, key: values.key } : {}) }, out);
  if (outcome.state === 'cancelled') return fail({ code: 'cancelled', message: trials !== undefined ? 'Cancelled; every finished trial is kept in the work dir: run the same command again to resume.' : 'Cancelled.' }, EXIT.cancelled);
  if (outcome.state === 'failed') return fail(outcome.error);
  const r: CompileResult = parseJobResult(trials !== undefined ? 'tune' : 'compile', outcome.result);
  out.result(r);
  printCompileResult(r, out);
  if (r.tuning) printTuning(r.tuning, out, r.latency_ms);
  if (r.verification.skipped) {
    out.line('\nThe build was not verified on this machine: verify it on the CPU it was compiled for before deploying it.');
    return EXIT.failed;
  }
  if (!r.verification.ok) {
    out.line('\nTVM does not match PyTorch within tolerance: do not deploy this build.');
    return EXIT.failed;
  }
  return EXIT.ok;
}
