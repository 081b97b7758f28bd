// The open model's runs (compile, tune, bench, export), newest first, from its project folder.
import type { RunSummary } from '../../../app/contract/runs.js';
import { tuneFigures } from '../../../app/contract/tune-record.js';
import { fmtDuration } from '../components.js';
import { useStore } from '../store.js';

function when(t: number): string {
  const d = new Date(t);
  return `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB', { hour12: false })}`;
}

function what(r: RunSummary): string {
  const q = r.request;
  if (r.kind === 'export' && (q.kind === 'compile' || q.kind === 'tune')) return `→ ${q.export_path ?? ''}`;
  // A tune's record (what it did), not its request's budget: a cancelled run of 24 did 9.
  if (q.kind === 'tune') return `${r.tune ? `${tuneFigures(r.tune).trials} trials (${tuneFigures(r.tune).split}) · estimated ${tuneFigures(r.tune).best}` : `budget ${q.trials} trials`}${q.work_dir ? ` · work dir ${q.work_dir}` : ''}`;
  if (q.kind === 'bench') return `${q.iterations} iterations${q.vs ? ` · vs ${q.vs.split('/').pop()}` : ''}`;
  return q.kind === 'compile' ? `target ${q.target}` : '';
}

export function RunsList({ kinds, action }: { kinds?: RunSummary['kind'][]; action?: (r: RunSummary) => React.ReactNode }) {
  const project = useStore((s) => s.project);
  if (!project) return null;
  const runs = project.runs.filter((r) => !kinds || kinds.includes(r.kind));
  if (!runs.length) return <p className="hint">No runs yet for this model. They are kept in <code>{project.project}</code>.</p>;
  return (
    <>
      <table className="runs-list" data-testid="runs-list">
        <thead>
          <tr><th>run</th><th>state</th><th>started</th><th>took</th><th>what</th>{action && <th />}</tr>
        </thead>
        <tbody>
          {runs.slice(0, 30).map((r) => (
            <tr key={r.job} data-job={r.job} data-state={r.state}>
              <td>{r.kind}</td>
              <td>
                <span className={`state ${r.state}`} title={r.error}>{r.state}</span>
                {r.damaged && <span className="state damaged" title={r.damaged} data-testid="run-damaged">damaged</span>}
              </td>
              <td>{when(r.startedAt)}</td>
              <td>{r.finishedAt ? fmtDuration(r.finishedAt - r.startedAt) : r.state === 'running' ? '…' : '–'}</td>
              <td className="wrap">{what(r)}{r.error ? <div className="hint">{r.error}</div> : null}</td>
              {action && <td>{action(r)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint">Runs are kept in <code>{project.project}</code>{runs.length > 30 ? ` (${runs.length} in all; the 30 newest shown)` : ''}.</p>
    </>
  );
}
