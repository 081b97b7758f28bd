import { useMemo, useRef } from 'react';
import { TrialChart } from '../charts.js';
import { cancel, go, tune, validateRows } from '../actions.js';
import { Elapsed, Empty, JobStatus, LogPanel, NeedsModel, ProgressBar, Table, fmtMs } from '../components.js';
import { set, useStore } from '../store.js';
import { ResultTables } from './CompileView.js';
import { fmtSizes } from '../../../app/contract/format.js';
import { etaSeconds, RUNS_AS_LABELS, taskShares, tuneFigures, type TuneRecord, type TuneTask } from '../../../app/contract/tune-record.js';

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
  const { tuneJob, jobs, trials, tasks, tuneRecord: rec, tuneBudget, tunePerRound, tuneLimitH, tuneWorkDir, tuneResult, inputs, project, remoteTarget } = useStore();
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
        <p className="hint" data-testid="tune-measures-on">
          {(() => {
            // Live: trials per measuring server so far (a tune over an RPC tracker).
            const by: Record<string, number> = {};
            for (const t of trials) if (t.server) by[t.server] = (by[t.server] ?? 0) + 1;
            const parts = Object.entries(by).sort();
            return parts.length ? <span data-testid="tune-by-server">Measured so far: {parts.map(([k, n]) => `${k} ${n}`).join(', ')}. </span> : null;
          })()}
          Trials are measured on {remoteTarget ? <>the servers of key <b>{remoteTarget.key}</b> at tracker <code>{remoteTarget.tracker}</code> (built here for their CPU)</> : 'this machine'}; change it on the <button className="link" onClick={() => set({ view: 'targets' })}>Targets</button> page.
        </p>
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
            {trials.length > 0 ? <TrialChart points={trials} tasks={tasks} budget={budget} /> : <p className="hint">This run measured no trial: the work dir already held {rec.total} record(s) against a budget of {budget}. Raise the budget to tune further.</p>}
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
