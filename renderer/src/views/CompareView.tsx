// Two builds of the open model side by side (issue 24: untuned vs tuned, placement auto vs tvm, two
// thread counts, two ISAs): what differs between the builds, each op's placement, time and error in
// both with the differing cells highlighted, a chart of each op's time in A and in B coloured by
// where it runs, and "Measure both": the two packages benchmarked interleaved, their latency
// distributions overlaid. The same comparison as `torchtvm compare` (app/contract/build-compare.ts).
import { useEffect, useMemo, useState } from 'react';
import { Bar, BarChart, CartesianGrid, Cell, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { compareBuilds, fmtSideError, rowDiffText, type CompareRow } from '../../../app/contract/build-compare.js';
import { describeBuild } from '../../../app/contract/builds.js';
import { compareLatency } from '../../../app/contract/format.js';
import { parseJobResult } from '../../../app/contract/jobs.js';
import type { BuildInfo, CompileResult } from '../../../app/contract/results.js';
import type { RunSummary } from '../../../app/contract/runs.js';
import { cancel, getApi, go, measureBuilds } from '../actions.js';
import { fmtAxisMs, histogram, LegendItems, logTicks } from '../charts.js';
import { Empty, ErrorBox, JobStatus, NeedsModel, fmtMs } from '../components.js';
import { set, useStore } from '../store.js';
import { WHERE_COLOR, WHERE_SHORT } from './graph-data.js';

const A_COLOR = '#4e79a7';
const B_COLOR = '#f28e2b';

type Built = { build: BuildInfo; result: CompileResult };

/** Runs that leave a build: succeeded compiles, tunes and exports. */
export const hasBuild = (r: RunSummary) => r.state === 'succeeded' && (r.kind === 'compile' || r.kind === 'tune' || r.kind === 'export');

/** The "A" / "B" toggles of a run in the runs list: picks it as one side of the Compare page. */
export function ComparePick({ run }: { run: RunSummary }) {
  const a = useStore((s) => s.compareA);
  const b = useStore((s) => s.compareB);
  if (!hasBuild(run)) return null;
  const pick = (side: 'compareA' | 'compareB') => set({ [side]: (side === 'compareA' ? a : b) === run.job ? undefined : run.job });
  return (
    <span className="compare-pick">
      <button className={a === run.job ? 'pick on' : 'pick'} aria-pressed={a === run.job} onClick={() => pick('compareA')} title="Compare this run's build as A" data-testid="pick-a">A</button>
      <button className={b === run.job ? 'pick on' : 'pick'} aria-pressed={b === run.job} onClick={() => pick('compareB')} title="Compare this run's build as B" data-testid="pick-b">B</button>
    </span>
  );
}

/** Under the runs list: which runs are picked, and the button that opens the comparison. */
export function CompareBar() {
  const { compareA, compareB } = useStore();
  return (
    <div className="row compare-bar">
      <span className="hint">Compare two builds: pick A and B in the list ({compareA ? `A ${compareA}` : 'no A'}, {compareB ? `B ${compareB}` : 'no B'}).</span>
      <button className="primary" disabled={!compareA || !compareB || compareA === compareB} onClick={() => go('compare')} data-testid="open-compare">Compare A and B</button>
    </div>
  );
}

/** A run's build: its record's result (compile, tune or export), or why there is none. */
function useBuilt(job: string | undefined): { built: Built | null; error: string | null } {
  const model = useStore((s) => s.modelPath);
  const [state, setState] = useState<{ job?: string; built: Built | null; error: string | null }>({ built: null, error: null });
  useEffect(() => {
    if (!job || !model) return;
    let live = true;
    getApi().getRun({ model, job }).then(
      (rec) => {
        if (!live) return;
        try {
          const r = parseJobResult('compile', rec.outcome && 'result' in rec.outcome ? rec.outcome.result : undefined);
          if (!r.build) throw new Error(`run ${job} made no build (a result of an older version)`);
          setState({ job, built: { build: r.build, result: r }, error: null });
        } catch (e) {
          setState({ job, built: null, error: `Run ${job} has no build to compare: ${(e as Error).message}` });
        }
      },
      (e: Error) => live && setState({ job, built: null, error: `Run ${job} could not be read: ${e.message}` }),
    );
    return () => {
      live = false;
    };
  }, [job, model]);
  return state.job === job ? state : { built: null, error: null };
}

const whereText = (w: string | null | undefined) => (w === undefined ? '–' : w === null ? '?' : WHERE_SHORT[w as keyof typeof WHERE_SHORT] ?? w);

function RunSelect({ side, runs }: { side: 'compareA' | 'compareB'; runs: RunSummary[] }) {
  const value = useStore((s) => s[side]) ?? '';
  return (
    <label>
      {side === 'compareA' ? 'A' : 'B'}
      <select value={value} onChange={(e) => set({ [side]: e.target.value || undefined })} data-testid={`compare-select-${side === 'compareA' ? 'a' : 'b'}`}>
        <option value="">(choose a run)</option>
        {runs.map((r) => <option key={r.job} value={r.job}>{r.kind} · {new Date(r.startedAt).toLocaleString('en-GB', { hour12: false })} · {r.job}</option>)}
      </select>
    </label>
  );
}

/** Each op's time in A and in B (log scale when they span more than 20×), bars coloured by where the op runs; differing ops marked. */
function OpTimeChart({ rows }: { rows: CompareRow[] }) {
  const data = rows.map((r) => ({ label: `${r.differs ? '● ' : ''}${r.label}`, a: r.a?.ms ?? null, b: r.b?.ms ?? null, whereA: r.a?.where ?? null, whereB: r.b?.where ?? null, differs: r.differs }));
  const times = data.flatMap((d) => [d.a, d.b]).filter((x): x is number => x !== null && x > 0);
  if (!times.length) return <p className="hint">Neither build timed its ops (compile with "Compare each op", or the library calls only).</p>;
  const lo = Math.min(...times);
  const hi = Math.max(...times);
  const log = hi / lo > 20;
  const ticks = log ? logTicks(lo, hi) : null;
  const height = Math.max(140, 44 + data.length * 34);
  const untimed = (['a', 'b'] as const).filter((k) => data.every((d) => d[k] === null)).map((k) => k.toUpperCase());
  return (
    <div className="chart" data-testid="compare-chart">
      <h4 className="chart-title">Time of each op in A and B (bar colour: where it runs; ● the op differs)</h4>
      <ResponsiveContainer width="100%" height={height}>
        <BarChart data={data} layout="vertical" barGap={1} margin={{ top: 4, right: 16, bottom: 22, left: 8 }}>
          <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
          <XAxis type="number" scale={log ? 'log' : 'auto'} domain={ticks ? ticks.domain : [0, 'dataMax']} ticks={ticks?.ticks} allowDataOverflow={log} stroke="var(--muted)" height={34} tickFormatter={fmtAxisMs} label={{ value: `time in a model run${log ? ' (log)' : ''}`, position: 'insideBottom', offset: -12, fill: 'var(--muted)', fontSize: 12 }} />
          <YAxis type="category" dataKey="label" stroke="var(--muted)" width={150} tick={{ fontSize: 12, fill: 'var(--text)' }} />
          <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} formatter={(v, name) => [typeof v === 'number' ? fmtMs(v) : '–', String(name)]} />
          <Bar name="A" dataKey="a" isAnimationActive={false} stroke={A_COLOR} strokeWidth={2}>
            {data.map((d, i) => <Cell key={i} fill={d.whereA ? WHERE_COLOR[d.whereA] : 'var(--muted)'} />)}
          </Bar>
          <Bar name="B" dataKey="b" isAnimationActive={false} stroke={B_COLOR} strokeWidth={2}>
            {data.map((d, i) => <Cell key={i} fill={d.whereB ? WHERE_COLOR[d.whereB] : 'var(--muted)'} fillOpacity={0.55} />)}
          </Bar>
        </BarChart>
      </ResponsiveContainer>
      <LegendItems items={[
        { label: 'A (first bar, solid, blue edge)', color: A_COLOR, kind: 'bar' },
        { label: 'B (second bar, pale, orange edge)', color: B_COLOR, kind: 'bar' },
        ...(['library', 'tvm', 'torchscript'] as const).map((w) => ({ label: WHERE_SHORT[w], color: WHERE_COLOR[w], kind: 'dot' as const })),
      ]} />
      {untimed.length > 0 && <p className="hint" data-testid="compare-untimed">{untimed.join(' and ')} timed none of these ops one by one: a build times its library calls, and TVM's kernels only when compiled with "Compare each op" (Graph page, or <code>torchtvm compile --compare-ops</code>). Its whole-model latency is measured below.</p>}
    </div>
  );
}

function LatencyOverlay({ a, b }: { a: Built; b: Built }) {
  const { benchJob, benchSamples, benchResult } = useStore();
  const job = useStore((s) => (s.benchJob ? s.jobs[s.benchJob] : undefined));
  const ours = benchResult ? benchResult.model === a.build.package && benchResult.vs === b.build.package : !!benchSamples[a.build.package] || !!benchSamples[b.build.package];
  const sa = (ours && benchSamples[a.build.package]?.map((x) => x.ms)) || [];
  const sb = (ours && benchSamples[b.build.package]?.map((x) => x.ms)) || [];
  const hist = useMemo(() => histogram([sa, sb]), [sa, sb]);
  const running = job?.state === 'running' || job?.state === 'queued';
  const threads = a.result.threads === b.result.threads ? a.result.threads : undefined;
  const cmp = ours && benchResult ? compareLatency(benchResult.stats, benchResult.vs_stats, { baselineLabel: 'A', candidateLabel: 'B' }) : null;
  return (
    <div className="card" data-testid="compare-measure">
      <h3>Whole-model latency, measured now</h3>
      <div className="row">
        <button className="primary" disabled={running} onClick={() => void measureBuilds(a.build, b.build, a.result.inputs, threads)} data-testid="measure-both">{running ? 'Measuring…' : 'Measure both'}</button>
        {running && <button onClick={() => void cancel(benchJob)}>Cancel</button>}
        <span className="hint">Both packages in one process, interleaved run by run{threads ? `, ${threads} thread(s)` : ' (the builds were made for different thread counts: the default is used)'}.</span>
      </div>
      {ours && <JobStatus jobId={benchJob} what="Measuring both" quietSuccess />}
      {ours && benchResult && benchResult.vs_stats && (
        <table data-testid="compare-latency">
          <thead><tr><th>build</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>runs</th></tr></thead>
          <tbody>
            {([['A', benchResult.stats], ['B', benchResult.vs_stats]] as const).map(([n, s]) => (
              <tr key={n}><td><span className="swatch side" style={{ background: n === 'A' ? A_COLOR : B_COLOR }} /> {n}</td><td>{fmtMs(s.min)}</td><td>{fmtMs(s.p50)}</td><td>{fmtMs(s.p90)}</td><td>{fmtMs(s.p99)}</td><td>{s.runs}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {cmp && cmp.ratio !== null && <p data-testid="compare-ratio">B against A at p50: {cmp.strong ? <b>{cmp.text}</b> : cmp.text}{cmp.warning ? <span className="warn"> · {cmp.warning}</span> : null}</p>}
      {hist.bins.length > 0 && (
        <div className="chart" data-testid="compare-histogram">
          <h4 className="chart-title">Latency distributions of A and B</h4>
          <ResponsiveContainer width="100%" height={240}>
            <BarChart data={hist.bins} barGap={0} barCategoryGap={0} margin={{ top: 4, right: 12, bottom: 22, left: 12 }}>
              <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
              <XAxis dataKey="mid" type="number" scale={hist.log ? 'log' : 'auto'} domain={hist.log ? logTicks(hist.lo, hist.hi).domain : ['dataMin', 'dataMax']} ticks={hist.log ? logTicks(hist.lo, hist.hi).ticks : undefined} allowDataOverflow={hist.log} stroke="var(--muted)" height={34} tickFormatter={fmtAxisMs} label={{ value: `latency${hist.log ? ' (log)' : ''}`, position: 'insideBottom', offset: -12, fill: 'var(--muted)', fontSize: 12 }} />
              <YAxis allowDecimals={false} stroke="var(--muted)" width={50} label={{ value: 'runs', angle: -90, position: 'insideLeft', fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } }} />
              <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} labelFormatter={(_l, p) => { const x = p?.[0]?.payload as { x0: number; x1: number } | undefined; return x ? `${fmtMs(x.x0)} – ${fmtMs(x.x1)}` : ''; }} formatter={(v, name) => [`${v} runs`, String(name)]} />
              <Bar name="A" dataKey="s0" fill={A_COLOR} fillOpacity={0.7} isAnimationActive={false} />
              <Bar name="B" dataKey="s1" fill={B_COLOR} fillOpacity={0.7} isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
          <LegendItems items={[{ label: `A (${sa.length} runs)`, color: A_COLOR, kind: 'bar' }, { label: `B (${sb.length} runs)`, color: B_COLOR, kind: 'bar' }]} />
          {hist.clipped > 0 && <p className="hint">{hist.clipped} run(s) slower than p99.5 are counted in the last bar.</p>}
        </div>
      )}
    </div>
  );
}

export function CompareView() {
  const project = useStore((s) => s.project);
  const { compareA, compareB } = useStore();
  const [all, setAll] = useState(false);
  const A = useBuilt(compareA);
  const B = useBuilt(compareB);
  const runs = (project?.runs ?? []).filter(hasBuild);
  const c = useMemo(() => (A.built && B.built ? compareBuilds(A.built, B.built) : null), [A.built, B.built]);
  const shown = c ? (all ? c.rows : c.rows.filter((r) => r.differs)) : [];
  const cell = (flag: boolean, content: React.ReactNode, testid?: string) => <td className={flag ? 'diff' : undefined} data-testid={testid}>{content}</td>;
  return (
    <NeedsModel>
      <section data-testid="compare-view">
        <h2>Compare builds</h2>
        {!runs.length ? (
          <Empty title="No builds yet">
            <p>Compile or tune the model (twice, with different settings: untuned and tuned, placement auto and tvm, other threads); then pick A and B here or in the runs list of the Model page.</p>
          </Empty>
        ) : (
          <div className="row">
            <RunSelect side="compareA" runs={runs} />
            <RunSelect side="compareB" runs={runs} />
          </div>
        )}
        {A.error && <ErrorBox message={A.error} />}
        {B.error && <ErrorBox message={B.error} />}
        {c && A.built && B.built && (
          <>
            {c.warnings.map((w) => <div key={w} className="banner warn" role="status" data-testid="compare-warning">{w}</div>)}
            <div className="card" data-testid="compare-facts">
              <h3>The builds</h3>
              <table>
                <thead><tr><th /><th><span className="swatch side" style={{ background: A_COLOR }} /> A: {describeBuild(A.built.build)}</th><th><span className="swatch side" style={{ background: B_COLOR }} /> B: {describeBuild(B.built.build)}</th></tr></thead>
                <tbody>
                  {c.facts.map((f) => (
                    <tr key={f.what} className={f.differs ? 'differs' : undefined} data-differs={f.differs ? '1' : undefined}>
                      <th scope="row">{f.what}</th>{cell(f.differs, f.a)}{cell(f.differs, f.b)}
                    </tr>
                  ))}
                </tbody>
              </table>
              <p className="hint">A: <code data-testid="compare-dir-a">{A.built.build.dir}</code><br />B: <code data-testid="compare-dir-b">{B.built.build.dir}</code><br />The same comparison in a terminal: <code>torchtvm compare A B</code> with these two folders.</p>
            </div>
            <div className="card" data-testid="compare-ops">
              <h3>Per op: {c.counts.differing} of {c.counts.rows} differ</h3>
              <p className="row">
                <button onClick={() => { set({ graphCompare: c }); go('graph'); }} data-testid="compare-in-graph">Show in the graph</button>
                <span className="hint">The model's graph, each op coloured by what B does against A.</span>
              </p>
              <label className="hint"><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} data-testid="compare-all" /> show every op (else only those that differ)</label>
              <div className="table-scroll">
                <table className="compare-table" data-testid="compare-table">
                  <thead><tr><th>op (module, kind)</th><th>where A</th><th>where B</th><th>time A</th><th>time B</th><th>error A</th><th>error B</th><th className="differs-col">differs</th></tr></thead>
                  <tbody>
                    {shown.map((r) => (
                      <tr key={r.key} data-key={r.key} data-differs={r.differs ? '1' : undefined}>
                        <td>{r.scope ? <><code>{r.scope}</code> {r.kind}</> : r.kind}</td>
                        {cell(r.diff.placement || r.diff.missing, r.a ? whereText(r.a.where) : '–', 'where-a')}
                        {cell(r.diff.placement || r.diff.missing, r.b ? whereText(r.b.where) : '–', 'where-b')}
                        {cell(r.diff.time, fmtMs(r.a?.ms), 'time-a')}
                        {cell(r.diff.time, fmtMs(r.b?.ms), 'time-b')}
                        {cell(r.diff.error, fmtSideError(r.a), 'error-a')}
                        {cell(r.diff.error, fmtSideError(r.b), 'error-b')}
                        <td className="wrap differs-col">{rowDiffText(r) || '–'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {!shown.length && <p className="hint">Every op is the same in both builds: placement, time (within {Math.round(c.thresholds.time_rel * 100)}%) and error.</p>}
              <p className="hint">Highlighted: what differs. Times are each op's median inside a model run, recorded when the build was made; they differ past {Math.round(c.thresholds.time_rel * 100)}% and {fmtMs(c.thresholds.time_abs_ms)}. Errors are max abs against PyTorch; they differ when one passes and the other fails, or by more than {c.thresholds.error_factor}×.</p>
              <OpTimeChart rows={c.rows} />
            </div>
            <LatencyOverlay a={A.built} b={B.built} />
          </>
        )}
        {(!compareA || !compareB) && runs.length > 0 && <p className="hint">Choose two runs: A and B.</p>}
      </section>
    </NeedsModel>
  );
}
