import { useMemo } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { bench, cancel } from '../actions.js';
import { Empty, JobStatus, NeedsModel, Table, fmtMs } from '../components.js';
import { set, useStore, type BenchSample } from '../store.js';

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const COLORS = ['var(--accent)', 'var(--accent2)'];

export function BenchView() {
  const { modelPath, benchVs, benchIterations, benchJob, benchSamples, jobs } = useStore();
  const running = benchJob ? ['running', 'queued'].includes(jobs[benchJob]?.state ?? '') : false;
  const models = Object.keys(benchSamples);
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
  const stats = models.map((m) => {
    const v = benchSamples[m].map((s) => s.ms).sort((a, b) => a - b);
    return { m, n: v.length, p50: pct(v, 50), p90: pct(v, 90), p99: pct(v, 99), min: v[0] };
  });
  const base = stats[0]?.p50;
  return (
    <section>
      <h2>Benchmark</h2>
      <NeedsModel>
        <p className="hint">Both models run under libtorch C++ as a production server would, interleaved, after a warm-up.</p>
        <div className="row">
          <label className="grow">Original <input className="grow" value={modelPath} readOnly aria-label="Original model" /></label>
        </div>
        <div className="row">
          <label className="grow">Exported <input className="grow" value={benchVs} placeholder="the exported .pt (Export page), optional" onChange={(e) => set({ benchVs: e.target.value })} aria-label="Exported model" /></label>
          <label>Iterations <input type="number" min={1} value={benchIterations} onChange={(e) => set({ benchIterations: Math.max(1, Number(e.target.value) || 1) })} style={{ width: '7em' }} aria-label="Iterations" /></label>
          <button className="primary" disabled={running} onClick={() => void bench()}>Run benchmark</button>
          <button disabled={!running} onClick={() => void cancel(benchJob)}>Cancel</button>
        </div>
        <JobStatus jobId={benchJob} what="Benchmark" />
        {models.length ? (
          <>
            <div className="chart" data-testid="bench-chart">
              <ResponsiveContainer width="100%" height={300}>
                <LineChart data={data}>
                  <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
                  <XAxis dataKey="i" type="number" stroke="var(--muted)" />
                  <YAxis stroke="var(--muted)" tickFormatter={(v: number) => v.toPrecision(3)} />
                  <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} formatter={(v) => (typeof v === 'number' ? fmtMs(v) : String(v))} />
                  <Legend />
                  {models.map((m, k) => <Line key={m} name={m.split('/').pop()} dataKey={`m${k}`} stroke={COLORS[k % 2]} dot={false} isAnimationActive={false} connectNulls />)}
                </LineChart>
              </ResponsiveContainer>
            </div>
            <Table testId="bench-table" head={['model', 'runs', 'p50', 'p90', 'p99', 'min', 'vs first']} rows={stats.map((s) => [s.m.split('/').pop(), s.n, fmtMs(s.p50), fmtMs(s.p90), fmtMs(s.p99), fmtMs(s.min), base ? `${(s.p50 / base).toFixed(2)}×` : '–'])} />
          </>
        ) : (
          !running && <Empty title="No benchmark yet"><p>Export the model first (Export page) to compare it with the original; or run the original alone.</p></Empty>
        )}
      </NeedsModel>
    </section>
  );
}
