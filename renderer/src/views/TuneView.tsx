import { memo, useEffect, useMemo, useRef, useState } from 'react';
import { CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Scatter, Tooltip, XAxis, YAxis } from 'recharts';
import { cancel, go, tune, validateRows } from '../actions.js';
import { Empty, JobStatus, NeedsModel, ProgressBar, Table, fmtMs } from '../components.js';
import { set, useStore, type TaskRow, type TrialPoint } from '../store.js';
import { ResultTables } from './CompileView.js';

export const MAX_CHART_POINTS = 600;
/** The chart redraws at most this often while trials stream in; counters and tables update every frame. */
export const CHART_INTERVAL_MS = 400;

/** The latest value, but at most one change per `ms` (the last change always lands). */
export function useThrottled<T>(value: T, ms: number): T {
  const [shown, setShown] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    const wait = last.current + ms - performance.now();
    if (wait <= 0) {
      last.current = performance.now();
      setShown(value);
      return;
    }
    const t = setTimeout(() => {
      last.current = performance.now();
      setShown(value);
    }, wait);
    return () => clearTimeout(t);
  }, [value, ms]);
  return shown;
}

/** Keeps at most `max` points: per bucket the fastest trial (the lower envelope is what matters) and the latest curves. */
export function downsample(points: TrialPoint[], max = MAX_CHART_POINTS): TrialPoint[] {
  if (points.length <= max) return points;
  const stride = Math.ceil(points.length / max);
  const out: TrialPoint[] = [];
  for (let i = 0; i < points.length; i += stride) {
    let pick = points[i];
    const end = Math.min(points.length, i + stride);
    for (let k = i + 1; k < end; k++) {
      const p = points[k];
      if (p.latency !== null && (pick.latency === null || p.latency < pick.latency)) pick = p;
    }
    const last = points[end - 1];
    out.push({ ...pick, n: last.n, best: last.best, est: last.est });
  }
  return out;
}

export const TrialChart = memo(function TrialChart({ points: live }: { points: TrialPoint[] }) {
  const points = useThrottled(live, CHART_INTERVAL_MS);
  const data = useMemo(() => downsample(points), [points]);
  return (
    <div className="chart" data-testid="tune-chart" data-points={points.length}>
      <TrialChartSvg data={data} />
      {points.length > MAX_CHART_POINTS && <p className="hint">{points.length.toLocaleString('en-US')} trials, drawn as {data.length} (the fastest per bucket).</p>}
    </div>
  );
});

function Dot(props: unknown) {
  const { cx, cy } = props as { cx?: number; cy?: number };
  return cx === undefined || cy === undefined ? <g /> : <circle className="trial-dot" cx={cx} cy={cy} r={2.5} />;
}

/** The recharts tree, redrawn only when the (throttled, downsampled) data changes. */
const TrialChartSvg = memo(function TrialChartSvg({ data }: { data: TrialPoint[] }) {
  return (
    <ResponsiveContainer width="100%" height={320}>
      <ComposedChart data={data} margin={{ top: 8, right: 16, bottom: 8, left: 8 }}>
        <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
        <XAxis dataKey="n" type="number" domain={['dataMin', 'dataMax']} stroke="var(--muted)" label={{ value: 'trial', position: 'insideBottomRight', offset: -4, fill: 'var(--muted)' }} />
        <YAxis yAxisId="task" stroke="var(--muted)" tickFormatter={(v: number) => v.toPrecision(2)} label={{ value: 'task ms', angle: -90, position: 'insideLeft', fill: 'var(--muted)' }} />
        <YAxis yAxisId="total" orientation="right" stroke="var(--accent2)" tickFormatter={(v: number) => v.toPrecision(3)} label={{ value: 'model ms (est.)', angle: 90, position: 'insideRight', fill: 'var(--accent2)' }} />
        <Tooltip contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)' }} formatter={(v) => (typeof v === 'number' ? fmtMs(v) : String(v))} />
        <Legend />
        <Scatter yAxisId="task" name="trial latency (its task)" dataKey="latency" fill="var(--accent)" fillOpacity={0.6} isAnimationActive={false} shape={Dot} />
        <Line yAxisId="total" name="best so far: estimated end-to-end" dataKey="est" stroke="var(--accent2)" strokeWidth={2} dot={false} type="stepAfter" isAnimationActive={false} connectNulls />
      </ComposedChart>
    </ResponsiveContainer>
  );
});

function TaskTable({ tasks }: { tasks: TaskRow[] }) {
  // What the build runs per task: the best record when it beats the default schedule.
  const applied = (t: TaskRow) => (t.best !== null && (t.defaultMs === null || t.best < t.defaultMs) ? t.best : t.defaultMs);
  const total = tasks.reduce((a, t) => a + (applied(t) ?? 0) * t.weight, 0);
  return (
    <Table
      testId="task-table"
      head={['task', 'weight', 'share of time', 'trials', 'errors', 'best trial', 'default schedule']}
      rows={tasks.map((t) => {
        const a = applied(t);
        return [t.name || `task ${t.id}`, t.weight, total > 0 && a !== null ? `${(((a * t.weight) / total) * 100).toFixed(1)}%` : '–', t.trials, t.errors, fmtMs(t.best), fmtMs(t.defaultMs)];
      })}
    />
  );
}

export function TuneView() {
  const { tuneJob, jobs, trials, tasks, tuneBudget, tuneWorkDir, tuneResult, inputs } = useStore();
  const job = tuneJob ? jobs[tuneJob] : undefined;
  const running = job ? ['running', 'queued'].includes(job.state) : false;
  const { specs } = validateRows(inputs);
  const taskRows = useMemo(() => Object.values(tasks).sort((a, b) => a.id - b.id), [tasks]);
  const last = trials[trials.length - 1];
  const done = last?.n ?? 0;
  const first = trials.find((t) => t.est !== null)?.est ?? null;
  return (
    <section>
      <h2>Tune</h2>
      <NeedsModel>
        <div className="row">
          <label>
            Trial budget <input type="number" min={1} max={100000} value={tuneBudget} onChange={(e) => set({ tuneBudget: Math.max(1, Number(e.target.value) || 1) })} aria-label="Trial budget" style={{ width: '7em' }} />
          </label>
          <label className="grow">
            Work dir <input className="grow" value={tuneWorkDir} placeholder="default: the model's project folder" onChange={(e) => set({ tuneWorkDir: e.target.value })} aria-label="Tuning work dir" />
          </label>
          <button className="primary" data-testid="tune-start" disabled={running || !specs} onClick={() => void tune(false)}>Start tuning</button>
          <button disabled={!running} onClick={() => void cancel(tuneJob)}>Cancel</button>
          <button disabled={running || !specs || !job} onClick={() => void tune(true)} title="Start again: the tuning database keeps every finished trial">Resume</button>
        </div>
        {!specs && <p className="warn">Fix the <button className="link" onClick={() => go('inputs')}>input specs</button> first.</p>}
        {running && (
          <div className="job-status">
            <div className="job-line">
              <span className="stage">{job?.stage || 'tuning'}</span>
              <span className="message">{done} / {tuneBudget} trials{last?.est ? ` · estimated ${fmtMs(last.est)}` : ''}{job?.message ? ` · ${job.message}` : ''}</span>
            </div>
            <ProgressBar fraction={done ? Math.min(1, done / tuneBudget) : job?.fraction} label="Tuning progress" />
          </div>
        )}
        {!running && <JobStatus jobId={tuneJob} what="Tuning" />}
        {trials.length > 0 ? (
          <>
            <div className="stats">
              <div><span>trials</span><b data-testid="trial-count">{trials.length}</b></div>
              <div><span>estimated end-to-end</span><b>{fmtMs(last?.est)}</b></div>
              <div><span>first estimate</span><b>{fmtMs(first)}</b></div>
              <div><span>errors</span><b>{taskRows.reduce((a, t) => a + t.errors, 0)}</b></div>
            </div>
            <TrialChart points={trials} />
          </>
        ) : (
          !running && (
            <Empty title="No trials yet">
              <p>Set a trial budget and start: every measured trial appears here as it finishes. Cancelling keeps the finished trials; Resume continues from the tuning database.</p>
            </Empty>
          )
        )}
        {taskRows.length > 0 && (
          <>
            <h3>Tasks</h3>
            <TaskTable tasks={taskRows} />
          </>
        )}
        {tuneResult && (
          <>
            <h3>Tuned build</h3>
            <ResultTables r={tuneResult} />
          </>
        )}
      </NeedsModel>
    </section>
  );
}
