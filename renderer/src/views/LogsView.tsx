import { useMemo, useState } from 'react';
import { CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { loadRun } from '../actions.js';
import { Empty, ErrorBox, Table, fmtMs } from '../components.js';
import type { TuningLog } from '../../../app/contract/results.js';
import { set, useStore, type TuningRun } from '../store.js';
import { fmtAxisMs, LegendItems, seriesColor } from '../charts.js';
import { RunsList } from './RunsList.js';
import { placedMs, RUNS_AS_LABELS, taskShares, tasksOfLog, tuneFigures } from '../../../app/contract/tune-record.js';

type Curve = Array<{ n: number; ms: number }>;

type LogTask = TuningLog['tasks'][number];

function runTasks(data: TuningLog): LogTask[] {
  return data.tasks;
}

/**
 * A run's best-so-far curve. For one task: its own curve. For the whole model: the tune's estimate
 * (Σ weight × each task's time as the build runs it: best record or default schedule, or the
 * library kernel where faster; placedMs) over the tasks the workbench weighed, with the tasks'
 * records interleaved in proportion to their counts (the database keeps per-task order only),
 * drawn once every task has a time. Its last point is the log's estimate, the Tune page's.
 */
export function runCurve(data: TuningLog, task: number | 'model', maxPoints = 400): Curve {
  const tasks = runTasks(data);
  if (task !== 'model') {
    const c = tasks[task]?.curve ?? [];
    const stride = Math.max(1, Math.ceil(c.length / maxPoints));
    return c.flatMap((ms, i) => (ms !== null && (i % stride === 0 || i === c.length - 1) ? [{ n: i + 1, ms }] : []));
  }
  const total = tasks.reduce((a, t) => a + t.curve.length, 0);
  const stride = Math.max(1, Math.ceil(total / maxPoints));
  // A work dir made elsewhere has no weights: every task counts once.
  const weighed = tasks.some((t) => t.weight !== null) ? tasks.filter((t) => t.weight !== null) : tasks;
  const out: Curve = [];
  for (let i = stride; i <= total + stride - 1; i += stride) {
    const step = Math.min(i, total);
    let sum = 0;
    let complete = true;
    for (const t of weighed) {
      const k = Math.round((step * t.curve.length) / total);
      const best = k > 0 ? t.curve[k - 1] : null;
      const { ms } = placedMs({ best_ms: best, default_ms: t.default_ms ?? null, library_ms: t.library_ms ?? null });
      if (ms === null) complete = false;
      else sum += ms * (t.weight ?? 1);
    }
    if (complete) out.push({ n: step, ms: sum });
  }
  return out;
}


/** One work dir: its runs (the records the Tune page and the CLI show), then its tasks, as the Tune page's table. */
function LogCard({ run: r }: { run: TuningRun }) {
  const shares = new Map(taskShares(tasksOfLog(r.data)).rows.map((x) => [x.task.id, x]));
  const runs = r.data.runs ?? [];
  return (
    <div className="card" data-testid="log-card">
      <h3>{r.dir}</h3>
      <p className="hint">{r.data.records} records, {r.data.failures} failed · estimated end-to-end (sum of kernels, an estimate) <b data-testid="log-estimate">{fmtMs(r.data.estimated_ms)}</b>{r.data.model ? ` · model ${r.data.model}` : ''}</p>
      {runs.length > 0 && <h4>Runs (the workbench&apos;s record of each)</h4>}
      {runs.length > 0 && (
        <Table
          testId="log-runs"
          head={['run', 'state', 'trials', 'this run', 'first estimate', 'estimate', 'measured']}
          rows={runs.map((x, i) => {
            const f = tuneFigures(x);
            return [x.id ?? String(i + 1), x.state ?? '–', f.trials, f.split, f.first, f.best, f.measured];
          })}
        />
      )}
      <h4>Tasks</h4>
      <Table
        testId="log-tasks"
        head={['task', 'weight', 'records', 'failures', 'best', 'default schedule', 'library kernel', 'runs as', 'share of the estimate']}
        rows={runTasks(r.data).map((t) => {
          const x = shares.get(t.workload);
          return [t.name, t.weight ?? '–', t.records, t.failures, fmtMs(t.best_ms), fmtMs(t.default_ms), fmtMs(t.library_ms), x?.as ? RUNS_AS_LABELS[x.as] : '–', x?.share != null ? `${(100 * x.share).toFixed(1)}%` : '–'];
        })}
      />
    </div>
  );
}

export function LogsView() {
  const runs = useStore((s) => s.runs);
  const project = useStore((s) => s.project);
  const [dir, setDir] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [a, setA] = useState(0);
  const [b, setB] = useState(1);
  const [task, setTask] = useState<number | 'model'>('model');
  const shown = [runs[a], runs[b]].filter((r, i, all): r is TuningRun => !!r && all.indexOf(r) === i);
  const merged = useMemo(() => {
    const rows = new Map<number, Record<string, number>>();
    shown.forEach((r, k) => runCurve(r.data, task).forEach((p) => rows.set(p.n, { ...(rows.get(p.n) ?? { n: p.n }), [`r${k}`]: p.ms })));
    return [...rows.values()].sort((x, y) => x.n - y.n);
  }, [shown, task]);
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
      {project && (
        <details open className="card" data-testid="past-tuning-runs">
          <summary>This model's tuning runs</summary>
          <RunsList
            kinds={['tune']}
            action={(r) => {
              const dir = (r.request.kind === 'tune' ? r.request.work_dir : undefined) ?? project.defaults.work_dir;
              return <button onClick={async () => setErr(await loadRun(dir))} title={dir}>Open work dir</button>;
            }}
          />
        </details>
      )}
      {!runs.length ? (
        <Empty title="No tuning logs open">
          <p>Open a MetaSchedule work dir (one this workbench made, in the model's project folder under <code>tuning/</code>, or one made elsewhere). Open two to compare them on one chart.</p>
        </Empty>
      ) : (
        <>
          <div className="row">
            <label>Run A <select value={a} onChange={(e) => setA(Number(e.target.value))}>{runs.map((r, i) => <option key={r.dir} value={i}>{r.dir}</option>)}</select></label>
            <label>Run B <select value={b} onChange={(e) => setB(Number(e.target.value))}>{runs.map((r, i) => <option key={r.dir} value={i}>{r.dir}</option>)}</select></label>
            <label>Curve <select aria-label="Curve" value={String(task)} onChange={(e) => setTask(e.target.value === 'model' ? 'model' : Number(e.target.value))}>
              <option value="model">whole model (estimated)</option>
              {(runs[a] ? runTasks(runs[a].data) : []).map((t, i) => <option key={i} value={i}>{t.name}</option>)}
            </select></label>
            <button onClick={() => set({ runs: [] })}>Close all</button>
          </div>
          <div className="chart" data-testid="logs-chart">
            <ResponsiveContainer width="100%" height={300}>
              <LineChart data={merged} margin={{ top: 8, right: 12, bottom: 22, left: 12 }}>
                <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
                <XAxis dataKey="n" type="number" allowDecimals={false} stroke="var(--muted)" height={34} label={{ value: 'tuning record', position: 'insideBottom', offset: -12, fill: 'var(--muted)', fontSize: 12 }} />
                <YAxis stroke="var(--muted)" width={78} tickFormatter={fmtAxisMs} label={{ value: task === 'model' ? 'model, estimated (best so far)' : 'kernel, best so far', angle: -90, position: 'insideLeft', fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } }} />
                <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} formatter={(v, name) => [typeof v === 'number' ? fmtMs(v) : String(v), String(name)]} labelFormatter={(l) => `record ${l}`} />
                {shown.map((r, k) => <Line key={r.dir} name={r.dir.split('/').slice(-2).join('/')} dataKey={`r${k}`} stroke={seriesColor(k)} dot={false} type="stepAfter" isAnimationActive={false} connectNulls />)}
              </LineChart>
            </ResponsiveContainer>
            <LegendItems items={shown.map((r, k) => ({ label: r.dir.split('/').slice(-2).join('/'), color: seriesColor(k), kind: 'line' as const, title: r.dir }))} />
          </div>
          <p className="hint">The estimate is the Tune page&apos;s: Σ weight × each kernel&apos;s time as the build runs it (its best record, or its default schedule, or the library kernel where faster), from the times the tune kept in the work dir. It is an estimate, not a measurement: a build&apos;s measured latency includes everything between kernels.</p>
          {shown.map((r) => <LogCard key={r.dir} run={r} />)}
        </>
      )}
    </section>
  );
}
