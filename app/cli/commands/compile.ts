import { parseArgs } from 'node:util';
import { formatDim, parseSpec, type InputSpec } from '../../contract/specs.js';
import { CANDIDATE_LABELS, type CompileResult, type PlacedOp, type Placement, type TunedTask, type TuningSummary } from '../../contract/results.js';
import { parseJobResult, type JobEvent } from '../../contract/jobs.js';
import { intFlag, type CommandContext } from '../command.js';
import { fmtMs, table } from '../output.js';
import { fmtSpeedup } from '../../contract/format.js';
import { describeBuild } from '../../contract/builds.js';
import { EXIT, runJob } from '../run-job.js';

export const usage =
  'torchtvm compile MODEL.pt|MODEL.pt2 --input NAME:DIMS:DTYPE[:LO..HI] … [--target llvm] [--threads N] [-o OUT.pt [--force]] [--out-dir DIR] [--mkdir] [--no-measure] [--strict] [--placement auto|library|tvm] [--export-unverified] [--accept-edge-mismatch] [--timeout SECONDS] [--trials N [--trials-per-task M] [--tune-size SYM=N …] [--work-dir DIR]] [--json]  (a .pt2 needs no --input: its own shapes and dynamic dims are used; nor does a model that takes no inputs)';

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
  'tune-size': { type: 'string', multiple: true },
  trials: { type: 'string' },
  'trials-per-task': { type: 'string' },
  'work-dir': { type: 'string' },
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
  out.line(`\nVerification against PyTorch: ${v.skipped ? `NOT RUN: ${v.reason}` : v.ok ? 'OK' : 'MISMATCH'}`);
  if (v.outputs.length) out.line(table(v.outputs.map((o) => [`#${o.index}`, `[${o.shape.join(', ')}]`, o.dtype, num(o.max_abs), num(o.max_rel), o.atol !== undefined ? `${o.atol}/${o.rtol}` : 'exact', o.ok ? 'ok' : `FAIL${o.reason ? `: ${o.reason}` : ''}`]), ['output', 'shape', 'dtype', 'max abs', 'max rel', 'atol/rtol', '']));
  if (v.edge_values) {
    const ev = v.edge_values;
    out.line(`Edge values (NaN, ±inf, -0.0, huge, tiny, zeros): ${ev.ok ? 'same as PyTorch' : `differ from PyTorch for ${ev.failed.join(', ')}`}`);
    for (const c of ev.cases.filter((c) => !c.ok)) out.line(`  ${c.case}: ${c.reason ?? (c.outputs ?? []).filter((o) => !o.ok).map((o) => `output #${o.index}: ${o.reason ?? 'differs'}`).join('; ')}`);
  }
  if (r.latency_ms) {
    const l = r.latency_ms;
    const base = l.torch_frozen ?? l.torch;
    out.line(`\nLatency (same process, same threads, interleaved rounds; baseline ${l.baseline ?? 'TorchScript'}):`);
    out.line(table([
      ['TorchScript', fmtMs(l.torch.p50), fmtMs(l.torch.p90), String(l.torch.runs), l.torch_frozen ? fmtSpeedup(base.p50, l.torch.p50) : 'baseline'],
      ...(l.torch_frozen ? [['TorchScript frozen', fmtMs(l.torch_frozen.p50), fmtMs(l.torch_frozen.p90), String(l.torch_frozen.runs), 'baseline']] : []),
      ['TVM', fmtMs(l.tvm.p50), fmtMs(l.tvm.p90), String(l.tvm.runs), fmtSpeedup(base.p50, l.tvm.p50)],
    ], ['', 'p50', 'p90', 'runs', 'vs baseline']));
  }
  if (r.slower) out.line(`\nSLOWER: ${r.slower.message}`);
  if (r.placement) printPlacement(r.placement, out);
  out.line(`\nWrote: ${Object.entries(r.files).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.build) out.line(`Build ${describeBuild(r.build)}: export it again with \`torchtvm export ${r.build.dir} -o OUT.pt\` (a copy of this build, nothing rebuilt).`);
}

function printPlacement(p: Placement, out: CommandContext['out']): void {
  const lib = p.ops.filter((o) => o.where === 'library');
  const head = `\nPlacement (${p.mode}): ${lib.length} op(s) in the library kernels (oneDNN/MKL)` +
    (p.library_ms != null ? `, ${fmtMs(p.library_ms)}` : '') +
    (p.tvm_ms != null ? `; TVM's kernels and the VM (everything else) ${fmtMs(p.tvm_ms)}` : '') +
    (p.ops.length > lib.length ? `; ${p.ops.length - lib.length} heavy op(s) in TVM` : '');
  out.line(head);
  if (p.note) out.line(p.note);
  if (p.ops.length) {
    // With per-op placement, each op's candidates timed alone: why it runs where it does.
    const alone = p.ops.some((o) => o.alone_ms);
    const columns = Object.keys(CANDIDATE_LABELS).filter((k) => p.ops.some((o) => o.alone_ms?.[k] != null));
    const aloneCell = (a: NonNullable<PlacedOp['alone_ms']>) =>
      columns.map((k) => (a[k] != null ? fmtMs(a[k] as number) : '-')).join(' / ');
    out.line(table(p.ops.map((o) => [o.scope ? `${o.scope} (${o.name})` : o.name, o.kind, `[${o.shape.join(', ')}]`, o.epilogue.join('+') || '-', o.algorithm ? `${o.where} (${o.algorithm})` : o.where,
      o.ms != null ? fmtMs(o.ms) : '-', o.share != null ? `${(100 * o.share).toFixed(1)}%` : '-',
      ...(alone ? [o.alone_ms ? aloneCell(o.alone_ms) : '-'] : [])]),
      ['op', 'kind', 'output', 'fused', 'runs in', 'time', 'share', ...(alone ? [`alone: ${columns.map((k) => CANDIDATE_LABELS[k]).join(' / ')}`] : [])]));
  }
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


type TaskRow = Pick<TunedTask, 'id' | 'name' | 'weight' | 'trials' | 'errors' | 'best_ms' | 'default_ms' | 'library_ms' | 'applied'>;

/** Live tuning view: one status line (bar, trials, estimate) rewritten in place on a terminal. */
export function tuneView(budget: number, out: CommandContext['out']): (e: JobEvent) => void {
  const tasks = new Map<number, TaskRow>();
  return (e) => {
    if (e.event === 'tune.tasks') {
      for (const t of e.data.tasks) tasks.set(t.id, { ...t, trials: 0, errors: 0, best_ms: null });
    } else if (e.event === 'tune.trial') {
      const d = e.data;
      const row = tasks.get(d.task_id) ?? { id: d.task_id, name: d.task_name, weight: 1, trials: 0, errors: 0, best_ms: null };
      row.trials = d.trial;
      if (d.error) row.errors += 1;
      row.best_ms = d.best_ms;
      tasks.set(d.task_id, row);
      const frac = Math.min(1, d.total_trials / budget);
      const bar = '#'.repeat(Math.round(frac * 20)).padEnd(20, '.');
      const est = d.estimated_total_ms !== null ? fmtMs(d.estimated_total_ms) : '-';
      const last = d.error ? `error (${d.error.slice(0, 40)})` : d.latency_ms !== null ? fmtMs(d.latency_ms) : '-';
      out.progress(`[tune] [${bar}] ${d.total_trials}/${budget}  est ${est}  task ${d.task_id} ${d.task_name.slice(0, 28)} #${d.trial} ${last} best ${d.best_ms !== null ? fmtMs(d.best_ms) : '-'}`);
    }
  };
}

export function printTuning(t: TuningSummary, out: CommandContext['out']): void {
  const tasks: TaskRow[] = t.tasks;
  const est = t.estimated_ms;
  out.line(`\nTuning: ${t.trials} trial(s) (${t.new_trials} new, ${t.resumed_records} from the database) in ${t.work_dir}`);
  // Per task the build runs the best record when it beats the default schedule, else the default;
  // and a library candidate's op runs its library kernel where that is faster (per-op placement).
  const kernel = (r: TaskRow) => (r.applied === 'default' ? (r.default_ms ?? null) : r.best_ms);
  const ran = (r: TaskRow) => (r.library_ms != null && (kernel(r) == null || r.library_ms < kernel(r)!) ? r.library_ms : kernel(r));
  const total = tasks.reduce((s, r) => s + (ran(r) ?? 0) * r.weight, 0) || 1;
  const ms = (v: number | null | undefined) => (v !== null && v !== undefined ? fmtMs(v) : '-');
  out.line(
    table(
      tasks.map((r) => [r.id, r.name.slice(0, 40), r.weight, r.trials, r.errors, ms(r.best_ms), ms(r.default_ms), r.applied ?? '-', ms(r.library_ms), ran(r) !== null ? `${(((ran(r) ?? 0) * r.weight * 100) / total).toFixed(0)}%` : '-']),
      ['#', 'task', 'weight', 'trials', 'errors', 'best trial', 'default', 'built with', 'library', 'share'],
    ),
  );
  out.line(`Estimated end-to-end: ${est !== null && est !== undefined ? fmtMs(est) : '-'}; measured: ${typeof t.measured_ms === 'number' ? fmtMs(t.measured_ms) : '-'}`);
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
    ...(values.force ? { overwrite: true } : {}),
    ...(values.mkdir ? { create_parent: true } : {}),
  };
  // The shapes as the parser read them, before anything runs (a .pt2 without --input uses its own).
  if (common.inputs.length) out.line(`Inputs: ${common.inputs.map((s) => `${s.name} [${s.dims.map(formatDim).join(', ')}] ${s.dtype}`).join('; ')}`);
  const outcome = trials !== undefined
    ? await runJob(wb, { ...base, kind: 'tune', trials, trials_per_task: trialsPerTask, work_dir: values['work-dir'], ...(tuneSizes ? { tune_sizes: tuneSizes } : {}) }, out, tuneView(trials, out))
    : await runJob(wb, { ...base, kind: 'compile' }, out);
  if (outcome.state === 'cancelled') return fail({ code: 'cancelled', message: trials !== undefined ? 'Cancelled; every finished trial is kept in the work dir: run the same command again to resume.' : 'Cancelled.' }, EXIT.cancelled);
  if (outcome.state === 'failed') return fail(outcome.error);
  const r: CompileResult = parseJobResult(trials !== undefined ? 'tune' : 'compile', outcome.result);
  out.result(r);
  printCompileResult(r, out);
  if (r.tuning) printTuning(r.tuning, out);
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
