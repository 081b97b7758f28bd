import { useMemo } from 'react';
import { Bar, BarChart, CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { fmtAxisMs, histogram, LegendItems, logTicks, seriesColor } from '../charts.js';
import { bench, benchTarget, cancel, checkRows } from '../actions.js';
import { availableBuilds } from '../builds.js';
import { Empty, JobStatus, NeedsModel, Table, fmtMs } from '../components.js';
import { describeBuild } from '../../../app/contract/builds.js';
import { compareLatency } from '../../../app/contract/format.js';
import type { BenchResult, MeasuredOn } from '../../../app/contract/results.js';
import type { RemoteTarget } from '../../../app/contract/targets.js';
import { set, useStore, type BenchSample } from '../store.js';
import { BatchSweep, sweepOfLabel } from './BatchSweep.js';

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Spread beyond which a benchmark is flagged as too noisy to trust: p90 over p50, and p50 over the fastest run. */
const MAX_P90_OVER_P50 = 1.3;
const MAX_P50_OVER_MIN = 2;

/** A sentence when the spread is too wide to trust the medians, else null. */
export function spreadWarning(s: { p50: number; p90: number; min: number; n: number }): string | null {
  if (!(s.n > 0)) return null;
  if (s.n < 20) return `Only ${s.n} runs: too few for a stable p90; use at least 50 iterations.`;
  if (s.p90 / s.p50 > MAX_P90_OVER_P50) return `p90 is ${(s.p90 / s.p50).toFixed(1)}× p50: the runs were noisy (a busy machine?). Compare medians with care, or rerun on a quieter machine.`;
  if (s.p50 / s.min > MAX_P50_OVER_MIN) return `The fastest run is ${(s.p50 / s.min).toFixed(1)}× faster than the median: the machine was busy for most runs, so the median overstates the latency.`;
  return null;
}

/** Which build each benchmarked file is: an export is a copy of its build's package, so its SHA-256 is the build's. */
function BenchedBuilds({ r }: { r: BenchResult }) {
  const state = useStore();
  const builds = availableBuilds(state, checkRows(state.inputs).specs);
  const files = [[r.model, r.model_sha256], [r.vs, r.vs_sha256]] as const;
  const lines = files.flatMap(([file, sha]) => {
    if (!file || !sha) return [];
    const b = builds.find((x) => x.result.build.sha256 === sha);
    return [
      <li key={file}>
        <code>{file.split('/').pop()}</code>: {b ? <>build <b>{describeBuild(b.result.build)}</b></> : <>SHA-256 {sha.slice(0, 12)}{file === r.vs ? ' (not one of the builds this page shows)' : ''}</>}
      </li>,
    ];
  });
  return lines.length ? <ul className="hint" data-testid="bench-builds">{lines}</ul> : null;
}

/** "pair-a (Intel Xeon …, sapphirerapids), key pair at tracker 127.0.0.1:9190" or "this machine (AMD EPYC …)": where a result was measured. */
export function describeMeasuredOn(m: MeasuredOn): { server: string; via: string } {
  const cpu = [m.cpu_model, m.llvm_cpu].filter(Boolean).join(', ');
  return { server: `${m.name}${cpu ? ` (${cpu})` : ''}`, via: m.tracker ? `, key ${m.key ?? '?'} at tracker ${m.tracker}` : '' };
}

/** Where the figures on screen were (or are being) measured: the result's measured_on once there is one. */
function MeasuredOnLine({ result, running, remote }: { result: BenchResult | null; running: boolean; remote: RemoteTarget | null }) {
  const m = !running ? result?.measured_on : undefined;
  if (m) {
    const d = describeMeasuredOn(m);
    return <p className="measured-on" data-testid="bench-measured-on" data-remote={m.tracker ? 'true' : 'false'}>Measured on <b>{d.server}</b>{d.via}{m.tracker ? '. Per-run samples stay on the server: its p50, p90 and p99 are below.' : '.'}</p>;
  }
  if (!running) return null;
  return <p className="measured-on" data-testid="bench-measured-on" data-remote={remote ? 'true' : 'false'}>Measuring on {remote ? <>a server of key <b>{remote.key}</b> at tracker <code>{remote.tracker}</code>: the figures arrive when it has finished</> : <b>this machine</b>}.</p>;
}

/** Where the next benchmark runs: this machine, or the Targets page's tracker key (with a switch back to this machine). */
function BenchTargetCard({ remote, running }: { remote: RemoteTarget | null; running: boolean }) {
  const { remoteTarget } = useStore();
  if (!remoteTarget) {
    return <p className="hint" data-testid="bench-target">Measured on this machine. To measure on another machine, pick a tracker key on the <button className="link" onClick={() => set({ view: 'targets' })}>Targets</button> page.</p>;
  }
  return (
    <div className="card" data-testid="bench-target">
      <h3>Benchmark on</h3>
      <label className="row">
        <input type="radio" name="bench-target" checked={!remote} disabled={running} onChange={() => set({ benchHere: true })} data-testid="bench-target-local" /> This machine
      </label>
      <label className="row">
        <input type="radio" name="bench-target" checked={!!remote} disabled={running} onChange={() => set({ benchHere: false })} data-testid="bench-target-remote" /> a server of key <b>{remoteTarget.key}</b> at tracker <code>{remoteTarget.tracker}</code> <span className="hint">(picked on the <button className="link" onClick={() => set({ view: 'targets' })}>Targets</button> page)</span>
      </label>
      {remote && <p className="hint">The exported model (or, without one, the original) is uploaded to a server of the key and timed there alone: no comparison, no sweep, no per-run chart. Its inputs are random, following the export&apos;s specs.</p>}
      {remote && <p className="banner warn" role="note" data-testid="bench-no-auth">TVM&apos;s RPC protocol has no authentication: anyone who can reach the tracker or its servers can run code there. Use it on a network you trust.</p>}
    </div>
  );
}

/** A result measured on a tracker's server: its statistics (no per-run samples come back), with the spread warning a local bench gets. */
function ServerStats({ r }: { r: BenchResult }) {
  const st = r.stats;
  const w = spreadWarning({ p50: st.p50, p90: st.p90, min: st.min, n: st.runs });
  return (
    <>
      <div className="table-scroll nowrap"><Table testId="bench-table" head={['model', 'measured on', 'runs', 'p50', 'p90', 'p99', 'min', 'mean', 'p90 / p50']} rows={[[r.model.split('/').pop(), r.measured_on?.name ?? 'this machine', st.runs, fmtMs(st.p50), fmtMs(st.p90), fmtMs(st.p99 ?? NaN), fmtMs(st.min), fmtMs(st.mean), `${(st.p90 / st.p50).toFixed(2)}×`]]} /></div>
      <BenchedBuilds r={r} />
      {w && <p className="banner warn" data-testid="spread-warning">{r.model.split('/').pop()}: {w}</p>}
    </>
  );
}

export function BenchView() {
  const state = useStore();
  const { modelPath, benchVs, benchIterations, benchJob, benchSamples, benchResult, jobs, benchSweep, benchLatencyLimit, inputs } = state;
  const remote = benchTarget(state);
  const running = benchJob ? ['running', 'queued'].includes(jobs[benchJob]?.state ?? '') : false;
  const models = Object.keys(benchSamples);
  // The sweep needs a symbolic dimension: in the inputs on screen (the exported build is made from them).
  const specs = checkRows(inputs).specs;
  const symbolic = !!specs?.some((sp) => sp.dims.some((d) => typeof d !== 'number'));
  const sweepOn = benchSweep && symbolic && !remote;
  const limitNum = Number(benchLatencyLimit);
  const limitValid = !benchLatencyLimit.trim() || (Number.isFinite(limitNum) && limitNum > 0);
  // What is on screen is a sweep: its result, or samples labelled per size.
  const sweepShown = !!benchResult?.sweep || (models.length > 0 && models.every((m) => sweepOfLabel(m)));
  const data = useMemo(() => {
    const rows = new Map<number, Record<string, number>>();
    models.forEach((m, k) => {
      const list: BenchSample[] = benchSamples[m];
      const stride = Math.ceil(list.length / 1000);
      list.forEach((s, i) => {
        if (i % stride === 0) rows.set(s.i, { ...(rows.get(s.i) ?? { i: s.i }), [`m${k}`]: s.ms });
      });
    });
    return [...rows.values()].sort((a, b) => a.i - b.i);
  }, [benchSamples]);
  // Once the run is over, its result's statistics (the ones `torchtvm bench` prints); while it
  // runs, the samples so far.
  const final = !running && benchResult && benchResult.vs !== benchResult.model ? new Map([[benchResult.model, benchResult.stats], ...(benchResult.vs && benchResult.vs_stats ? [[benchResult.vs, benchResult.vs_stats] as const] : [])]) : null;
  const stats = models.map((m) => {
    const f = final?.get(m);
    if (f) return { m, n: f.runs, p50: f.p50, p90: f.p90, p99: f.p99 ?? NaN, min: f.min };
    const v = benchSamples[m].map((s) => s.ms).sort((a, b) => a - b);
    return { m, n: v.length, p50: pct(v, 50), p90: pct(v, 90), p99: pct(v, 99), min: v[0] };
  });
  // Each model against the first, as the CLI states it: "1.65× faster", or a warning where the
  // runs' spread can explain the difference (or the ratio is implausible), never a bold guess.
  const vs = stats.map((s, k) => (k === 0 ? null : compareLatency(stats[0], s, { baselineLabel: stats[0].m.split('/').pop(), candidateLabel: s.m.split('/').pop() })));
  const cancelling = running && !!jobs[benchJob!]?.cancelRequested;
  // Samples so far over iterations × models: the bar and the ETA (the warm-up is not counted).
  const expected = benchIterations * Math.max(models.length, benchVs.trim() ? 2 : 1);
  const got = models.reduce((a, m) => a + benchSamples[m].length, 0);
  // A sweep's progress: the job's (sizes done) plus the share of the size in progress.
  const job = benchJob ? jobs[benchJob] : undefined;
  const ofSizes = /\((\d+) of (\d+)\)/.exec(job?.message ?? '');
  const sweepFraction = ofSizes ? (Number(ofSizes[1]) - 1 + Math.min(1, (benchSamples[models.at(-1) ?? '']?.length ?? 0) / benchIterations)) / Number(ofSizes[2]) : job?.fraction;
  const fraction = sweepShown ? (running ? sweepFraction : undefined) : running && got > 0 ? Math.min(1, got / expected) : undefined;
  // Where the charts' samples were measured: only a bench on this machine streams them.
  const where = 'this machine';
  const hist = useMemo(() => histogram(models.map((m) => benchSamples[m].map((x) => x.ms))), [benchSamples]);
  return (
    <section>
      <h2>Benchmark</h2>
      <NeedsModel>
        <BenchTargetCard remote={remote} running={running} />
        <p className="hint">{remote ? 'The server runs the model under PyTorch after a warm-up, one timed call after another.' : 'Both models run under libtorch C++ as a production server would, interleaved, after a warm-up.'}{sweepOn ? ` The sweep measures ${benchVs.trim() ? 'the exported model' : 'the original model'} alone at each size of its symbolic dimension (the powers of two in its range, or every size of a short range).` : ''}</p>
        <div className="row">
          <label className="grow">Original <input className="grow" value={modelPath} readOnly aria-label="Original model" /></label>
        </div>
        <div className="row">
          <label className="grow">Exported <input className="grow" style={{ minWidth: 120 }} value={benchVs} placeholder="the exported .pt (Export page), optional" onChange={(e) => set({ benchVs: e.target.value })} aria-label="Exported model" /></label>
          <label>Iterations <input type="number" min={1} value={benchIterations} onChange={(e) => set({ benchIterations: Math.max(1, Number(e.target.value) || 1) })} style={{ width: '7em' }} aria-label="Iterations" /></label>
          <button className="primary" disabled={running || (sweepOn && !limitValid)} onClick={() => void bench()} data-testid="bench-run">{sweepOn ? 'Run sweep' : 'Run benchmark'}</button>
          <button disabled={!running || cancelling} onClick={() => void cancel(benchJob)} data-testid="bench-cancel">{cancelling ? 'Cancelling…' : 'Cancel'}</button>
        </div>
        <div className="row">
          <label title={symbolic ? 'Measure one model at each size of its symbolic dimension: latency and throughput per size' : 'Describe an input with a symbolic batch (Inputs page, e.g. batch=1..32) and export it to sweep the batch'}>
            <input type="checkbox" checked={sweepOn} disabled={!symbolic || running || !!remote} onChange={(e) => set({ benchSweep: e.target.checked })} data-testid="bench-sweep-toggle" /> Sweep the batch
          </label>
          <label>
            Latency limit (p50, ms){' '}
            <input type="number" min={0} step="any" value={benchLatencyLimit} disabled={!sweepOn} placeholder="none" onChange={(e) => set({ benchLatencyLimit: e.target.value })} style={{ width: '7em' }} aria-label="Latency limit in ms" aria-invalid={!limitValid} data-testid="bench-latency-limit" />
          </label>
          {remote ? <span className="hint">The sweep measures on this machine: switch to it above to sweep.</span> : !symbolic && <span className="hint">The sweep needs an input with a symbolic size (Inputs page: e.g. batch=1..32).</span>}
          {sweepOn && !limitValid && <span className="warn">The limit is a number of milliseconds above 0.</span>}
        </div>
        <JobStatus jobId={benchJob} what={sweepShown || sweepOn ? 'Sweep' : 'Benchmark'} fraction={fraction} />
        <MeasuredOnLine result={benchResult} running={running} remote={remote} />
        {sweepShown ? (
          <BatchSweep result={benchResult?.sweep} samples={benchSamples} running={running} limit={!running && benchResult?.sweep ? benchResult.sweep.latency_limit_ms : benchLatencyLimit.trim() && limitValid ? limitNum : undefined} />
        ) : models.length ? (
          <>
            <div className="grid2">
              <div className="chart" data-testid="bench-chart">
                <h4 className="chart-title">Latency per iteration{where ? <span className="chart-where"> · {where}</span> : null}</h4>
                <ResponsiveContainer width="100%" height={260}>
                  <LineChart data={data} margin={{ top: 4, right: 12, bottom: 22, left: 12 }}>
                    <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
                    <XAxis dataKey="i" type="number" allowDecimals={false} stroke="var(--muted)" height={34} label={{ value: 'iteration', position: 'insideBottom', offset: -12, fill: 'var(--muted)', fontSize: 12 }} />
                    <YAxis stroke="var(--muted)" width={70} tickFormatter={fmtAxisMs} label={{ value: 'latency', angle: -90, position: 'insideLeft', fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } }} />
                    <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} formatter={(v, name) => [typeof v === 'number' ? fmtMs(v) : String(v), String(name)]} labelFormatter={(l) => `iteration ${l}`} />
                    {models.map((m, k) => <Line key={m} name={m.split('/').pop()} dataKey={`m${k}`} stroke={seriesColor(k)} dot={false} isAnimationActive={false} connectNulls />)}
                  </LineChart>
                </ResponsiveContainer>
              </div>
              <div className="chart" data-testid="bench-histogram">
                <h4 className="chart-title">Distribution{where ? <span className="chart-where"> · {where}</span> : null}</h4>
                <ResponsiveContainer width="100%" height={260}>
                  <BarChart data={hist.bins} barGap={0} barCategoryGap={0} margin={{ top: 4, right: 12, bottom: 22, left: 12 }}>
                    <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
                    <XAxis dataKey="mid" type="number" scale={hist.log ? 'log' : 'auto'} domain={hist.log ? logTicks(hist.lo, hist.hi).domain : ['dataMin', 'dataMax']} ticks={hist.log ? logTicks(hist.lo, hist.hi).ticks : undefined} allowDataOverflow={hist.log} stroke="var(--muted)" height={34} tickFormatter={fmtAxisMs} label={{ value: `latency${hist.log ? ' (log)' : ''}`, position: 'insideBottom', offset: -12, fill: 'var(--muted)', fontSize: 12 }} />
                    <YAxis allowDecimals={false} stroke="var(--muted)" width={50} label={{ value: 'runs', angle: -90, position: 'insideLeft', fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } }} />
                    <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} labelFormatter={(_l, p) => { const b = p?.[0]?.payload as { x0: number; x1: number } | undefined; return b ? `${fmtMs(b.x0)} – ${fmtMs(b.x1)}` : ''; }} formatter={(v, name) => [`${v} runs`, String(name)]} />
                    {models.map((m, k) => <Bar key={m} name={m.split('/').pop()} dataKey={`s${k}`} fill={seriesColor(k)} fillOpacity={0.75} isAnimationActive={false} />)}
                  </BarChart>
                </ResponsiveContainer>
                {hist.clipped > 0 && <p className="hint">{hist.clipped} run(s) slower than p99.5 are counted in the last bar.</p>}
              </div>
            </div>
            <LegendItems items={models.map((m, k) => ({ label: m.split('/').pop() ?? m, color: seriesColor(k), kind: 'bar' as const, title: m }))} />
            <Table testId="bench-table" head={['model', 'runs', 'p50', 'p90', 'p99', 'min', 'p90 / p50', 'vs first']} rows={stats.map((s, k) => {
              const c = vs[k];
              return [s.m.split('/').pop(), s.n, fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.min), `${(s.p90 / s.p50).toFixed(2)}×`, !c ? 'baseline' : c.strong ? <b key="r" data-testid="bench-ratio">{c.text}</b> : <span key="r" className="warn" data-testid="bench-ratio" data-verdict={c.kind} title={c.warning ?? undefined}>{c.text}</span>];
            })} />
            {!running && benchResult && <BenchedBuilds r={benchResult} />}
            {!running && vs.map((c, k) => (c?.warning ? (
              <div key={`w${k}`} className="banner warn" data-testid="ratio-warning" data-verdict={c.kind}>
                {c.warning} <button onClick={() => void bench()} data-testid="measure-again">Measure again</button>
              </div>
            ) : null))}
            {stats.map((s) => {
              const w = spreadWarning(s);
              return w ? <p key={s.m} className="banner warn" data-testid="spread-warning">{s.m.split('/').pop()}: {w}</p> : null;
            })}
          </>
        ) : !running && benchResult ? (
          // A result without samples: measured on a tracker's server, which sends its statistics only.
          <ServerStats r={benchResult} />
        ) : (
          !running && <Empty title="No benchmark yet"><p>Export the model first (Export page) to compare it with the original; or run the original alone.</p></Empty>
        )}
      </NeedsModel>
    </section>
  );
}
