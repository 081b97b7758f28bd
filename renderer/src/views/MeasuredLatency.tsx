// A build's measured latency, as the CLI states it too (app/contract/format.ts): the p50 of timed
// calls after the same warm-up for every runner, with its spread and the sizes it was measured at;
// the baseline named as the engine names it (TorchScript, TorchScript frozen, PyTorch eager for a
// .pt2); and a ratio shown in bold only when the measurement supports it. A ratio the noise can
// explain, or one past 20×, comes with a warning and a button to measure again instead.
import type { CompileResult } from '../../../app/contract/results.js';
import { fmtSizes, latencyRows } from '../../../app/contract/format.js';
import { bench, go } from '../actions.js';
import { Table, fmtMs } from '../components.js';
import { set } from '../store.js';
import { spreadWarning } from './BenchView.js';

/** Benchmarks the model against this build's own packaged .pt (libtorch, interleaved): the second measurement. */
function measureAgain(pkg: string): void {
  set({ benchVs: pkg });
  go('bench');
  void bench();
}

export function MeasuredLatency({ r }: { r: CompileResult }) {
  const l = r.latency_ms;
  if (!l) return null;
  const rows = latencyRows(l);
  const at = fmtSizes(l.sizes);
  const tvm = rows[rows.length - 1].vs;
  const pkg = r.files.package ?? r.files.exported;
  return (
    <>
      <h3>Measured latency ({r.threads} thread{r.threads > 1 ? 's' : ''}, same process{at ? `, ${at}` : ''})</h3>
      <p className="hint">
        p50 of the timed calls of the whole model after the same warm-up for every runner, in interleaved rounds with PyTorch{at ? ` (${at}: a symbolic dim is timed at one size)` : ''}. Not the tuner&apos;s estimate, which sums per-kernel timings. The baseline is the fastest way PyTorch runs the model{l.baseline_note ? ` (${l.baseline_note})` : ''}.
      </p>
      <Table
        testId="latency-table"
        head={['', 'p50', 'p90', 'min', 'runs', `vs ${l.baseline ?? 'TorchScript'}`]}
        rows={rows.map((x) => [
          x.label,
          fmtMs(x.stats.p50),
          fmtMs(x.stats.p90),
          fmtMs(x.stats.min),
          x.stats.runs ?? '–',
          x.baseline ? 'baseline' : x.label === 'TVM' ? (
            x.vs?.strong ? <b key="x" data-testid="speedup">{x.vs.text}</b> : <span key="x" className="warn" data-testid="speedup" data-verdict={x.vs?.kind} title={x.vs?.warning ?? undefined}>{x.vs?.text}</span>
          ) : x.vs?.text ?? '–',
        ])}
      />
      {tvm?.warning && (
        <div className="banner warn" data-testid="ratio-warning" data-verdict={tvm.kind}>
          {tvm.warning}{' '}
          {pkg && <button onClick={() => measureAgain(pkg)} data-testid="measure-again" title="Benchmark the model against this build's packaged .pt under libtorch, interleaved run by run (Benchmark page)">Measure again</button>}
        </div>
      )}
      {r.slower && <p className="banner warn" data-testid="slower-banner">{r.slower.message}</p>}
      {rows.map((x) => {
        const w = spreadWarning({ p50: x.stats.p50, p90: x.stats.p90 ?? x.stats.p50, min: x.stats.min ?? x.stats.p50, n: x.stats.runs ?? 0 });
        return w ? <p key={x.label} className="banner warn" data-testid="spread-warning">{x.label}: {w}</p> : null;
      })}
    </>
  );
}
