// Small shared pieces: progress bars, job status with readable errors, empty states, tables.
import { useEffect, useState, type ReactNode } from 'react';
import type { ErrorInfo } from '../../app/contract/errors.js';
import { fmtDuration } from '../../app/contract/format.js';
import { useStore, type JobView } from './store.js';
import { cancel } from './actions.js';

export function ProgressBar({ fraction, label }: { fraction?: number; label?: string }) {
  const indeterminate = fraction === undefined;
  return (
    <div className="progress" role="progressbar" aria-label={label ?? 'progress'} aria-valuemin={0} aria-valuemax={100} aria-valuenow={indeterminate ? undefined : Math.round(fraction * 100)}>
      <div className={indeterminate ? 'progress-bar indeterminate' : 'progress-bar'} style={indeterminate ? undefined : { width: `${Math.round(fraction * 100)}%` }} />
    </div>
  );
}

export function ErrorBox({ message, detail, code }: { message: string; detail?: string; code?: string }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="error-box" role="alert">
      <p>{message}</p>
      {detail && (
        <>
          <button className="link" onClick={() => setOpen(!open)} aria-expanded={open}>
            {open ? 'Hide details' : 'Details'}
          </button>
          {open && <pre className="detail">{code ? `[${code}]\n` : ''}{detail}</pre>}
        </>
      )}
    </div>
  );
}

/** Re-renders every second while mounted (elapsed-time counters). */
export function useNow(active = true): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

/**
 * Elapsed time, and an ETA once a fraction done is known (linear: honest enough, and labelled
 * "about"). A view that measures a better rate (trials per second as they arrive) passes `endsAt`,
 * when it expects the work to end (a Date.now() time).
 */
export function Elapsed({ startedAt, fraction, endsAt, limitS }: { startedAt?: number; fraction?: number; endsAt?: number; limitS?: number }) {
  const now = useNow(startedAt !== undefined);
  if (startedAt === undefined) return null;
  const elapsed = now - startedAt;
  const eta = endsAt !== undefined && fraction !== undefined && fraction < 1 ? Math.max(0, endsAt - now) : fraction !== undefined && fraction > 0.02 && fraction < 1 ? (elapsed * (1 - fraction)) / fraction : null;
  return (
    <span className="elapsed" data-testid="elapsed">
      {fmtDuration(elapsed)} elapsed{eta !== null ? ` · about ${fmtDuration(eta)} left` : ''}
      {limitS !== undefined && <span className="limit" title="Past its time limit the job is stopped (Tune page: Time limit; CLI: --timeout SECONDS)"> · limit {fmtDuration(limitS * 1000)}</span>}
    </span>
  );
}

/** The job's engine log (what the engine said while it ran), folded away until asked for. */
export function LogPanel({ job }: { job: JobView }) {
  if (!job.logs.length) return null;
  return (
    <details className="log-panel" data-testid="job-log">
      <summary>Engine log ({job.logs.length} line{job.logs.length > 1 ? 's' : ''})</summary>
      <pre className="detail">{job.logs.map((l) => `${l.level === 'info' ? '' : `[${l.level}] `}${l.message}`).join('\n')}</pre>
    </details>
  );
}

/**
 * A job's live status: stage, message, elapsed time, progress bar, cancel, its log, and how it ended.
 * `explain` may turn a failure the view knows (a refused export path, say) into its own words and
 * buttons; when it returns nothing, the error's own sentence is shown.
 */
/** `quietSuccess`: the view says itself what a success came to (an export that wrote nothing is not "finished"). */
export function JobStatus({ jobId, what, fraction, explain, quietSuccess }: { jobId?: string; what: string; fraction?: number; explain?: (error: ErrorInfo) => ReactNode | null; quietSuccess?: boolean }) {
  const job: JobView | undefined = useStore((s) => (jobId ? s.jobs[jobId] : undefined));
  if (!job) return null;
  const running = job.state === 'running' || job.state === 'queued';
  const frac = fraction ?? job.fraction;
  return (
    <div className="job-status" data-state={job.state} data-testid={`job-${job.kind}`} data-job={job.id}>
      {running && (
        <>
          <div className="job-line">
            <span className="stage">{job.cancelRequested ? 'Cancelling…' : job.stage || 'starting'}</span>
            <span className="message">{job.cancelRequested ? `${what} stops after the step in progress; finished work is kept.` : job.message || `${what} is starting…`}</span>
            <Elapsed startedAt={job.startedAt} fraction={frac} limitS={job.timeoutS} />
            <button onClick={() => cancel(job.id)} disabled={job.cancelRequested} data-testid="job-cancel">{job.cancelRequested ? 'Cancelling…' : 'Cancel'}</button>
          </div>
          <ProgressBar fraction={frac} label={`${what} progress`} />
        </>
      )}
      {job.state === 'succeeded' && !quietSuccess && <p className="ok">✓ {what} finished.</p>}
      {job.state === 'cancelled' && <p className="warn">{what} was cancelled.</p>}
      {job.state === 'failed' && job.outcome?.state === 'failed' && (explain?.(job.outcome.error) ?? <ErrorBox message={job.outcome.error.message} detail={job.outcome.error.detail} code={job.outcome.error.code} />)}
      <LogPanel job={job} />
    </div>
  );
}

// One formatter of times, durations and comparisons for the app and the CLI (app/contract/format.ts).
export { fmtDuration, fmtMs, fmtSpeedup } from '../../app/contract/format.js';

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState<'ok' | 'fail' | null>(null);
  return (
    <button
      className="copy"
      onClick={() => {
        // The clipboard API needs a secure context; 127.0.0.1 counts, and Electron's file:// too.
        navigator.clipboard?.writeText(text).then(() => setDone('ok'), () => setDone('fail'));
        setTimeout(() => setDone(null), 1500);
      }}
      title="Copy to the clipboard"
    >
      {done === 'ok' ? 'Copied' : done === 'fail' ? 'Copy failed: select and copy by hand' : label}
    </button>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children}
    </div>
  );
}

export function Table({ head, rows, testId }: { head: ReactNode[]; rows: ReactNode[][]; testId?: string }) {
  return (
    <table data-testid={testId}>
      <thead>
        <tr>{head.map((h, i) => <th key={i}>{h}</th>)}</tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>{r.map((c, j) => <td key={j}>{c}</td>)}</tr>
        ))}
      </tbody>
    </table>
  );
}

/** Milliseconds in the unit that reads best: 12.3 ms, 850 µs, 42 ns. */
export function fmtBytes(b: number): string {
  return b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`;
}

export function NeedsModel({ children }: { children: ReactNode }) {
  const model = useStore((s) => s.modelPath);
  const opening = useStore((s) => s.openingPath);
  if (!model && opening) return <Empty title="Opening…"><p>Inspecting <code>{opening}</code>.</p></Empty>;
  if (!model) {
    return (
      <Empty title="No model open">
        <p>Open a TorchScript model on the <b>Model</b> page first (Ctrl/Cmd+O), or try the bundled example.</p>
      </Empty>
    );
  }
  return <>{children}</>;
}
