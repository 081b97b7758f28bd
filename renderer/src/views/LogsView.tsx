import { useMemo, useState } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { loadRun } from '../actions.js';
import { Empty, ErrorBox, Table, fmtMs } from '../components.js';
import { set, useStore, type TuningRun } from '../store.js';

type Curve = Array<{ n: number; ms: number }>;
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Best-so-far curve of a run, from whatever the reader provides: a curve, or the records. */
export function runCurve(data: Record<string, unknown>): Curve {
  for (const key of ['curve', 'best_curve', 'estimated_curve']) {
    const c = arr(data[key]);
    if (c.length) {
      return c.flatMap((p, i) => {
        if (typeof p === 'number') return [{ n: i + 1, ms: p }];
        const o = p as Record<string, unknown>;
        const ms = num(o.estimated_total_ms) ?? num(o.best_ms) ?? num(o.ms) ?? num(o.latency_ms);
        return ms === null ? [] : [{ n: num(o.trial) ?? num(o.total_trials) ?? num(o.n) ?? i + 1, ms }];
      });
    }
  }
  let best = Infinity;
  return arr(data.records).flatMap((r, i) => {
    const o = r as Record<string, unknown>;
    const ms = num(o.latency_ms) ?? num(o.run_ms) ?? (num(o.run_secs) !== null ? num(o.run_secs)! * 1000 : null);
    if (ms === null || ms >= 1e9) return [];
    best = Math.min(best, ms);
    return [{ n: i + 1, ms: best }];
  });
}

function runTasks(data: Record<string, unknown>): Array<Record<string, unknown>> {
  return arr(data.tasks).filter((t): t is Record<string, unknown> => typeof t === 'object' && t !== null);
}

const COLORS = ['var(--accent)', 'var(--accent2)', 'var(--good)', 'var(--bad)'];

export function LogsView() {
  const runs = useStore((s) => s.runs);
  const [dir, setDir] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [a, setA] = useState(0);
  const [b, setB] = useState(1);
  const shown = [runs[a], runs[b]].filter((r, i, all): r is TuningRun => !!r && all.indexOf(r) === i);
  const merged = useMemo(() => {
    const rows = new Map<number, Record<string, number>>();
    shown.forEach((r, k) => runCurve(r.data).forEach((p) => rows.set(p.n, { ...(rows.get(p.n) ?? { n: p.n }), [`r${k}`]: p.ms })));
    return [...rows.values()].sort((x, y) => x.n - y.n);
  }, [shown]);
  return (
    <section>
      <h2>Tuning logs</h2>
      <form className="row" onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setErr(await loadRun(dir));
        setBusy(false);
      }}>
        <input className="grow" value={dir} onChange={(e) => setDir(e.target.value)} placeholder="/path/to/tuning work dir (database_workload.json, database_tuning_record.json)" aria-label="Tuning work dir" />
        <button className="primary" disabled={!dir.trim() || busy}>{busy ? 'Reading…' : 'Open work dir'}</button>
      </form>
      {err && <ErrorBox message={err} />}
      {!runs.length ? (
        <Empty title="No tuning logs open">
          <p>Open a MetaSchedule work dir (one this workbench made, in the model's project folder under <code>tuning/</code>, or one made elsewhere). Open two to compare them on one chart.</p>
        </Empty>
      ) : (
        <>
          <div className="row">
            <label>Run A <select value={a} onChange={(e) => setA(Number(e.target.value))}>{runs.map((r, i) => <option key={r.dir} value={i}>{r.dir}</option>)}</select></label>
            <label>Run B <select value={b} onChange={(e) => setB(Number(e.target.value))}>{runs.map((r, i) => <option key={r.dir} value={i}>{r.dir}</option>)}</select></label>
            <button onClick={() => set({ runs: [] })}>Close all</button>
          </div>
          <div className="chart" data-testid="logs-chart">
            <ResponsiveContainer width="100%" height={300}>
              <LineChart data={merged}>
                <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
                <XAxis dataKey="n" type="number" stroke="var(--muted)" />
                <YAxis stroke="var(--muted)" tickFormatter={(v: number) => v.toPrecision(3)} />
                <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} formatter={(v) => (typeof v === 'number' ? fmtMs(v) : String(v))} />
                <Legend />
                {shown.map((r, k) => <Line key={r.dir} name={r.dir.split('/').slice(-2).join('/')} dataKey={`r${k}`} stroke={COLORS[k]} dot={false} type="stepAfter" isAnimationActive={false} connectNulls />)}
              </LineChart>
            </ResponsiveContainer>
          </div>
          {shown.map((r) => (
            <div key={r.dir} className="card">
              <h3>{r.dir}</h3>
              <Table head={['task', 'weight', 'records', 'best']} rows={runTasks(r.data).map((t) => [String(t.name ?? t.id ?? '?'), String(t.weight ?? '–'), String(num(t.records) ?? arr(t.records).length ?? num(t.trials) ?? '–'), fmtMs(num(t.best_ms))])} />
            </div>
          ))}
        </>
      )}
    </section>
  );
}
