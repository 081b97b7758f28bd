// Small shared pieces: progress bars, job status with readable errors, empty states, tables.
import { useState, type ReactNode } from 'react';
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

/** A job's live status: stage, message, progress bar, cancel, and how it ended. */
export function JobStatus({ jobId, what }: { jobId?: string; what: string }) {
  const job: JobView | undefined = useStore((s) => (jobId ? s.jobs[jobId] : undefined));
  if (!job) return null;
  const running = job.state === 'running' || job.state === 'queued';
  return (
    <div className="job-status" data-state={job.state} data-testid={`job-${job.kind}`}>
      {running && (
        <>
          <div className="job-line">
            <span className="stage">{job.stage || 'starting'}</span>
            <span className="message">{job.message || `${what} is starting…`}</span>
            <button onClick={() => cancel(job.id)}>Cancel</button>
          </div>
          <ProgressBar fraction={job.fraction} label={`${what} progress`} />
        </>
      )}
      {job.state === 'succeeded' && <p className="ok">✓ {what} finished.</p>}
      {job.state === 'cancelled' && <p className="warn">{what} was cancelled.</p>}
      {job.state === 'failed' && job.outcome?.state === 'failed' && <ErrorBox message={job.outcome.error.message} detail={job.outcome.error.detail} code={job.outcome.error.code} />}
    </div>
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

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  return ms >= 100 ? `${ms.toFixed(1)} ms` : ms >= 1 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(3)} ms`;
}

export function fmtBytes(b: number): string {
  return b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`;
}

export function NeedsModel({ children }: { children: ReactNode }) {
  const model = useStore((s) => s.modelPath);
  if (!model) {
    return (
      <Empty title="No model open">
        <p>Open a TorchScript model on the <b>Model</b> page first (Ctrl/Cmd+O), or try the bundled example.</p>
      </Empty>
    );
  }
  return <>{children}</>;
}
