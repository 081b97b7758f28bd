import { describeBuild } from '../../../app/contract/builds.js';
import type { CompileResult } from '../../../app/contract/results.js';
import { compile, go, validateRows } from '../actions.js';
import { Empty, JobStatus, NeedsModel, Table } from '../components.js';
import { MeasuredLatency } from './MeasuredLatency.js';
import { set, useStore } from '../store.js';

export function ResultTables({ r }: { r: CompileResult }) {
  return (
    <>
      {r.build && (
        <p className="build-id" data-testid="result-build" title={`SHA-256 ${r.build.sha256}; library ${r.build.library_sha256 ?? '–'}`}>
          Build <b>{describeBuild(r.build)}</b>: every figure below is this build's, and exporting it writes this build, byte for byte.
        </p>
      )}
      <div className={r.verification.ok ? 'banner ok' : 'banner bad'} data-testid="verification-banner">
        {r.verification.ok ? '✓ Verification OK: TVM matches PyTorch within tolerance.' : '✗ MISMATCH: TVM does not match PyTorch within tolerance. Do not deploy this build.'}
      </div>
      <h3>Verification</h3>
      <Table
        testId="verification-table"
        head={['output', 'shape', 'dtype', 'max abs', 'max rel', 'atol / rtol', '']}
        rows={r.verification.outputs.map((o) => [`#${o.index}`, `[${o.shape.join(', ')}]`, o.dtype, typeof o.max_abs === 'number' ? o.max_abs.toExponential(2) : o.max_abs ?? '–', typeof o.max_rel === 'number' ? o.max_rel.toExponential(2) : o.max_rel ?? '–', o.atol !== undefined ? `${o.atol} / ${o.rtol}` : 'exact', o.ok ? '✓ ok' : '✗ FAIL'])}
      />
      {r.verification.checks && r.verification.checks.length > 1 && (
        <p className="hint">Checked at {r.verification.checks.length} input sizes: {r.verification.checks.map((c) => c.input_shapes.map((s) => `[${s.join('×')}]`).join(' ')).join(', ')}.</p>
      )}
      <MeasuredLatency r={r} />
      <h3>Build</h3>
      <Table head={['', '']} rows={[
        ...(r.build ? [['build', <span key="b">{describeBuild(r.build)} <code>{r.build.dir}</code></span>]] : []),
        ['target', `${r.target.kind} (${r.target.mcpu ?? 'default cpu'})`],
        ['import / build', `${r.timings_s.import.toFixed(1)} s / ${r.timings_s.build.toFixed(1)} s`],
        ...Object.entries(r.files).map(([k, v]) => [k, <code key={k}>{String(v)}</code>]),
      ]} />
    </>
  );
}

export function CompileView() {
  const { compileJob, compile: result, compileFrom, jobs, target, compileLimitMin, inputs } = useStore();
  const stale = result && compileFrom && compileFrom !== compileJob;
  const running = compileJob ? ['running', 'queued'].includes(jobs[compileJob]?.state ?? '') : false;
  const { specs } = validateRows(inputs);
  return (
    <section>
      <h2>Compile & verify</h2>
      <NeedsModel>
        <div className="row">
          <label>
            Target <input value={target} onChange={(e) => set({ target: e.target.value })} aria-label="Target" />
          </label>
          <label title="Past this a compile or an export is stopped and fails with timed_out.">
            Time limit (min) <input type="number" min={1} max={1440} value={compileLimitMin} onChange={(e) => set({ compileLimitMin: Math.min(1440, Math.max(1, Number(e.target.value) || 60)) })} aria-label="Compile time limit in minutes" style={{ width: '5em' }} />
          </label>
          <button className="primary" data-testid="compile-button" disabled={running || !specs} onClick={() => void compile()}>
            {running ? 'Compiling…' : 'Compile & verify'}
          </button>
          {!specs && <span className="warn">Fix the <button className="link" onClick={() => go('inputs')}>input specs</button> first.</span>}
        </div>
        <JobStatus jobId={compileJob} what="Compilation" />
        {stale && <p className="banner warn" data-testid="previous-result">{running ? `Below: the last successful build (run ${compileFrom}), until this one finishes.` : `Below: the last successful build (run ${compileFrom}), kept because the latest compile did not succeed.`}</p>}
        {result ? <ResultTables r={result} /> : !running && (
          <Empty title="Not compiled yet">
            <p>Compile builds the model with TVM for <code>{target}</code>, runs it and PyTorch on the same random inputs and compares the outputs, then measures both.</p>
          </Empty>
        )}
      </NeedsModel>
    </section>
  );
}
