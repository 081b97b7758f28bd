import { memo, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { CartesianGrid, ComposedChart, Line, ResponsiveContainer, Scatter, Tooltip, XAxis, YAxis } from 'recharts';
import { EST_COLOR, fmtAxisMs, intTicks, LegendItems, LOG_RANGE, logTicks, seriesColor, span } from '../charts.js';
import { cancel, go, tune, validateRows } from '../actions.js';
import { Elapsed, Empty, JobStatus, LogPanel, NeedsModel, ProgressBar, Table, fmtMs } from '../components.js';
import { set, useStore, type TaskRow, type TrialPoint } from '../store.js';
import { ResultTables } from './CompileView.js';
import { fmtSizes } from '../../../app/contract/format.js';
import { etaSeconds, RUNS_AS_LABELS, taskShares, tuneFigures, type TuneRecord, type TuneTask } from '../../../app/contract/tune-record.js';
import { recordRedraw } from '../testhooks.js';

export const MAX_CHART_POINTS = 600;
/** The chart redraws at most this often while trials stream in; counters and tables update every frame. */
export const CHART_INTERVAL_MS = 250;
/**
 * A redraw may take at most this share of the time: on a slow or busy machine the interval grows
 * with the measured cost of the last redraw, so streaming trials never turns into one long frame
 * after another (the counters and tables still update every frame).
 */
const CHART_BUDGET = 0.1;

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

export const TrialChart = memo(function TrialChart({ points: live, tasks }: { points: TrialPoint[]; tasks: Record<number, TaskRow> }) {
  const cost = useRef(0);
  const points = useThrottled(live, Math.max(CHART_INTERVAL_MS, cost.current / CHART_BUDGET));
  const renderStart = performance.now();
  const drawn = useRef<TrialPoint[] | null>(null);
  useLayoutEffect(() => {
    // The cost of drawing this set of points (render + commit of the recharts tree).
    if (drawn.current !== points) {
      cost.current = performance.now() - renderStart;
      recordRedraw(cost.current);
    }
    drawn.current = points;
  });
  const data = useMemo(() => downsample(points), [points]);
  const [scale, setScale] = useState<'auto' | 'log' | 'linear'>('auto');
  // Task names change rarely; the chart only needs them for the legend and the tooltip.
  // `tasks` is a new object on every batch (trial counts change); keyed on the names alone, so the
  // chart below is not redrawn for every batch of trials.
  const namesKey = Object.values(tasks).map((t) => `${t.id}\u0000${t.name}`).join('\u0001');
  const names = useMemo(() => Object.fromEntries(Object.values(tasks).map((t) => [t.id, t.name || `task ${t.id}`])), [namesKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const taskIds = useMemo(() => [...new Set([...Object.keys(names).map(Number), ...data.map((p) => p.task)])].sort((a, b) => a - b), [names, data]);
  const lat = useMemo(() => span(data.map((p) => p.latency)), [data]);
  const log = scale === 'log' || (scale === 'auto' && lat !== null && lat.hi / lat.lo > LOG_RANGE);
  return (
    <div className="chart" data-testid="tune-chart" data-points={points.length} data-scale={log ? 'log' : 'linear'}>
      <div className="chart-head">
        <label>
          Latency axis{' '}
          <select aria-label="Latency axis scale" value={scale} onChange={(e) => setScale(e.target.value as typeof scale)}>
            <option value="auto">auto ({lat && lat.hi / lat.lo > LOG_RANGE ? 'log' : 'linear'})</option>
            <option value="log">log</option>
            <option value="linear">linear</option>
          </select>
        </label>
      </div>
      <TrialChartSvg data={data} log={log} names={names} taskIds={taskIds} />
      <LegendItems items={[...taskIds.map((t) => ({ label: names[t] ?? `task ${t}`, color: seriesColor(t), kind: 'dot' as const })), { label: 'estimated end-to-end, best so far (right axis)', color: EST_COLOR, kind: 'line' as const }]} />
      {points.length > MAX_CHART_POINTS && <p className="hint">{points.length.toLocaleString('en-US')} trials, drawn as {data.length} (the fastest per bucket).</p>}
    </div>
  );
});

function Dot(props: unknown) {
  const { cx, cy, fill } = props as { cx?: number; cy?: number; fill?: string };
  return cx === undefined || cy === undefined ? <g /> : <circle className="trial-dot" cx={cx} cy={cy} r={3} fill={fill} fillOpacity={0.75} />;
}

function TrialTooltip({ active, payload, names }: { active?: boolean; payload?: Array<{ payload?: TrialPoint }>; names: Record<number, string> }) {
  const p = active ? payload?.[0]?.payload : undefined;
  if (!p) return null;
  return (
    <div className="chart-tooltip" data-testid="trial-tooltip">
      <b style={{ color: seriesColor(p.task) }}>{names[p.task] ?? `task ${p.task}`}</b>
      trial {p.n}: {p.latency === null ? 'failed' : fmtMs(p.latency)}
      <br />
      best so far for this task: {fmtMs(p.best)}
      {p.est !== null && <><br />estimated end-to-end: {fmtMs(p.est)}</>}
    </div>
  );
}

/** The recharts tree, redrawn only when the (throttled, downsampled) data changes. */
const TrialChartSvg = memo(function TrialChartSvg({ data, log, names, taskIds }: { data: TrialPoint[]; log: boolean; names: Record<number, string>; taskIds: number[] }) {
  const byTask = useMemo(() => {
    const m = new Map<number, TrialPoint[]>();
    for (const p of data) if (p.latency !== null && p.latency > 0) (m.get(p.task) ?? m.set(p.task, []).get(p.task)!).push(p);
    return m;
  }, [data]);
  const estData = useMemo(() => data.filter((p) => p.est !== null), [data]);
  const latSpan = span(data.map((p) => p.latency));
  const estSpan = span(data.map((p) => p.est));
  const left = log && latSpan ? logTicks(latSpan.lo, latSpan.hi) : null;
  const right = log && estSpan ? logTicks(estSpan.lo, estSpan.hi) : null;
  return (
    <ResponsiveContainer width="100%" height={340}>
      <ComposedChart margin={{ top: 8, right: 12, bottom: 24, left: 12 }}>
        <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
        <XAxis dataKey="n" type="number" domain={['dataMin', 'dataMax']} ticks={data.length ? intTicks(data[0].n, data[data.length - 1].n) : undefined} padding={{ left: 6, right: 6 }} allowDecimals={false} stroke="var(--muted)" height={36} label={{ value: 'trial (all tasks, in the order measured)', position: 'insideBottom', offset: -14, fill: 'var(--muted)', fontSize: 12 }} />
        <YAxis yAxisId="task" dataKey="latency" width={78} stroke="var(--muted)" scale={log ? 'log' : 'auto'} domain={left ? left.domain : [0, 'auto']} ticks={left?.ticks} allowDataOverflow={!!left} tickFormatter={fmtAxisMs} label={{ value: `kernel latency${log ? ' (log)' : ''}`, angle: -90, position: 'insideLeft', offset: -2, fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } }} />
        <YAxis yAxisId="total" dataKey="est" orientation="right" width={78} stroke={EST_COLOR} scale={log ? 'log' : 'auto'} domain={right ? right.domain : [0, 'auto']} ticks={right?.ticks} allowDataOverflow={!!right} tickFormatter={fmtAxisMs} label={{ value: 'model, estimated', angle: 90, position: 'insideRight', offset: -2, fill: EST_COLOR, fontSize: 12, style: { textAnchor: 'middle' } }} />
        <Tooltip content={<TrialTooltip names={names} />} cursor={{ stroke: 'var(--border)' }} isAnimationActive={false} />
        {taskIds.map((t) => (
          <Scatter key={t} yAxisId="task" name={names[t] ?? `task ${t}`} data={byTask.get(t) ?? []} dataKey="latency" fill={seriesColor(t)} isAnimationActive={false} shape={Dot} />
        ))}
        <Line yAxisId="total" data={estData} name="estimated end-to-end" dataKey="est" stroke={EST_COLOR} strokeWidth={2} dot={false} type="stepAfter" isAnimationActive={false} connectNulls />
      </ComposedChart>
    </ResponsiveContainer>
  );
});

/**
 * Per task: the time the build runs it at (its best record, its default schedule, or the op's
 * library kernel where faster, as the estimate counts it) and its share of that same estimate, so
 * the shares add up to the headline; the library kernels' part in a row of its own.
 */
function TaskTable({ tasks }: { tasks: TuneTask[] }) {
  const { rows, total, library } = taskShares(tasks);
  const pct = (v: number | null) => (v !== null ? `${(v * 100).toFixed(1)}%` : '–');
  return (
    <>
      <Table
        testId="task-table"
        head={['task', 'weight', 'trials', 'errors', 'best trial', 'default schedule', 'library kernel', 'runs as', 'share of the estimate']}
        rows={rows.map((r) => [r.task.name || `task ${r.task.id}`, r.task.weight, r.task.trials, r.task.errors, fmtMs(r.task.best_ms), fmtMs(r.task.default_ms), fmtMs(r.task.library_ms), r.as ? RUNS_AS_LABELS[r.as] : '–', pct(r.share)])}
      />
      <p className="hint" data-testid="task-table-total">
        Shares are of the estimate, {fmtMs(total)} (Σ weight × time as the build runs it).
        {library.tasks > 0 && <> Library kernels (not tuned): {library.tasks} task{library.tasks > 1 ? 's' : ''}, {fmtMs(library.ms)}, {pct(library.share)} of it: trials there pay off only once a kernel beats the library&apos;s.</>}
      </p>
    </>
  );
}

/**
 * When the run should end (a Date.now() time): this run's own trial rate (engine clock, from the
 * end of its first batch), counted from when its latest trial arrived here. Undefined until two
 * batches are in. Resumed records and replayed events do not count.
 */
export function useRecordEta(rec: TuneRecord): number | undefined {
  const arrived = useRef<{ t: number | null; at: number }>({ t: null, at: 0 });
  const t = rec.rate?.t ?? null;
  if (arrived.current.t !== t) arrived.current = { t, at: Date.now() };
  const eta = etaSeconds(rec);
  return eta === null ? undefined : arrived.current.at + eta * 1000;
}

export function TuneView() {
  const { tuneJob, jobs, trials, tasks, tuneRecord: rec, tuneBudget, tunePerRound, tuneLimitH, tuneWorkDir, tuneResult, inputs, project } = useStore();
  const defaultWorkDir = project?.defaults.work_dir ?? '';
  const job = tuneJob ? jobs[tuneJob] : undefined;
  const running = job ? ['running', 'queued'].includes(job.state) : false;
  const { specs } = validateRows(inputs);
  // Every figure below is the run's record (app/contract/tune-record.ts): the CLI and the log
  // reader show the same. A resume is a new run: its own trials, starting from where the last ended.
  const taskRows = useMemo(() => Object.values(rec.tasks).sort((a, b) => a.id - b.id), [rec.tasks]);
  const figures = tuneFigures(rec, tuneResult?.tuning?.measured_ms ?? tuneResult?.latency_ms?.tvm.p50);
  const budget = rec.budget ?? tuneBudget;
  const progress = rec.trials ? Math.min(1, rec.total / budget) : job?.fraction;
  // The ETA counts this run's trials only (never the resumed records).
  const etaFraction = rec.trials > 0 && budget > rec.resumed ? Math.min(1, rec.trials / (budget - rec.resumed)) : undefined;
  const liveEta = useRecordEta(rec);
  const at = fmtSizes(tuneResult?.latency_ms?.sizes);
  return (
    <section>
      <h2>Tune</h2>
      <NeedsModel>
        <div className="row">
          <label>
            Trial budget <input type="number" min={1} max={100000} value={tuneBudget} onChange={(e) => set({ tuneBudget: Math.max(1, Number(e.target.value) || 1) })} aria-label="Trial budget" style={{ width: '7em' }} />
          </label>
          <label title="Candidates measured per search round. Trials arrive on the chart a round at a time: smaller rounds stream sooner, larger ones search a little more efficiently.">
            Per round <input type="number" min={1} max={64} value={tunePerRound} placeholder="auto" onChange={(e) => set({ tunePerRound: e.target.value })} aria-label="Trials per round" style={{ width: '5em' }} />
          </label>
          <label title="Past this the tune is stopped and fails with timed_out; finished trials are kept in the work dir.">
            Time limit (h) <input type="number" min={0.1} max={168} step={0.5} value={tuneLimitH} onChange={(e) => set({ tuneLimitH: Math.min(168, Math.max(0.1, Number(e.target.value) || 24)) })} aria-label="Time limit in hours" style={{ width: '5em' }} />
          </label>
          <button className="primary" data-testid="tune-start" disabled={running || !specs} onClick={() => void tune(false)}>Start tuning</button>
          <button disabled={!running || job?.cancelRequested} onClick={() => void cancel(tuneJob)} data-testid="tune-cancel">{job?.cancelRequested && running ? 'Cancelling…' : 'Cancel'}</button>
          <button disabled={running || !specs || !job} onClick={() => void tune(true)} title="Continue from the tuning database: finished trials are kept, and the imported model is reused when the model file and input specs are unchanged">Resume</button>
        </div>
        <div className="row">
          <label className="grow">
            Work dir <input className="grow" value={tuneWorkDir} placeholder={defaultWorkDir ? `default: ${defaultWorkDir}` : "default: the model's project folder"} onChange={(e) => set({ tuneWorkDir: e.target.value })} aria-label="Tuning work dir" />
          </label>
        </div>
        <p className="hint" data-testid="work-dir">
          Tuning records go to <code>{tuneWorkDir.trim() || defaultWorkDir || "the model's project folder"}</code>{tuneWorkDir.trim() ? '' : ' (this model\'s own; a custom one is not carried to other models)'}.
        </p>
        {!specs && <p className="warn">Fix the <button className="link" onClick={() => go('inputs')}>input specs</button> first.</p>}
        {running && (
          <div className="job-status">
            <div className="job-line">
              <span className="stage">{job?.cancelRequested ? 'Cancelling…' : job?.stage || 'tuning'}</span>
              <span className="message">{job?.cancelRequested ? 'stops after the trials being measured; every finished trial is kept' : `${figures.trials} trials (${figures.split})${rec.estimate_ms !== null ? ` · estimated ${figures.best}` : ''}${job?.message && !(job.stage === 'tune' && rec.trials > 0) ? ` · ${job.message}` : ''}`}</span>
              <Elapsed startedAt={job?.startedAt} fraction={etaFraction} endsAt={liveEta} limitS={job?.timeoutS} />
            </div>
            <ProgressBar fraction={progress} label="Tuning progress" />
            {job && <LogPanel job={job} />}
          </div>
        )}
        {!running && <JobStatus jobId={tuneJob} what="Tuning" />}
        {trials.length > 0 || rec.total > 0 ? (
          <>
            <div className="stats">
              <div title="Records of this model in the work dir, against the budget (the budget counts the records already there)"><span>trials ({figures.split})</span><b data-testid="trial-count" data-budget={budget}>{rec.total}</b> <small>of {budget}</small></div>
              <div title="The estimate before this run's first trial: the default schedules and library kernels (and, on a resume, where the run it resumed ended)"><span>first estimate</span><b data-testid="tune-first-estimate">{figures.first}</b></div>
              <div title="Σ weight × each kernel's time as the build runs it: the tuner's estimate from per-kernel timings, not a measurement of the whole model"><span>estimated end-to-end (sum of kernels, an estimate)</span><b data-testid="tune-estimate">{figures.best}</b></div>
              {tuneResult?.latency_ms && <div title="The tuned build run end to end after verification: the p50 of timed calls after warm-up"><span>measured end-to-end, p50{at ? ` ${at}` : ''}</span><b data-testid="tune-measured">{figures.measured}</b> <small>p90 {fmtMs(tuneResult.latency_ms.tvm.p90)}</small></div>}
              <div><span>errors (this run)</span><b>{rec.errors}</b></div>
            </div>
            {trials.length > 0 ? <TrialChart points={trials} tasks={tasks} /> : <p className="hint">This run measured no trial: the work dir already held {rec.total} record(s) against a budget of {budget}. Raise the budget to tune further.</p>}
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
