import { useEffect, useRef, useState, type DragEvent, type ReactNode } from 'react';
import { formatDim } from '../../../app/contract/specs.js';
import type { InspectResult } from '../../../app/contract/results.js';
import { getApi, go, openModel } from '../actions.js';
import { Empty, JobStatus, Table, fmtBytes } from '../components.js';
import { useStore } from '../store.js';
import { RunsList } from './RunsList.js';
import { CompareBar, ComparePick } from './CompareView.js';

/** Exported metadata as readable rows: specs as specs, lists joined, nested objects as key: value lines. */
function metaValue(v: unknown): React.ReactNode {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) {
    if (v.every((x) => x && typeof x === 'object' && 'name' in x && 'dims' in x && 'dtype' in x)) {
      return v.map((x, i) => {
        const s = x as { name: string; dims: Array<number | { name: string; min?: number; max?: number }>; dtype: string };
        return <div key={i}><code>{s.name}: [{s.dims.map((d) => (typeof d === 'number' ? d : `${d.name}${d.min !== undefined || d.max !== undefined ? `=${d.min ?? 1}..${d.max ?? ''}` : ''}`)).join(', ')}] {s.dtype}</code></div>;
      });
    }
    return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  }
  return Object.entries(v as Record<string, unknown>).map(([k, x]) => <div key={k}><span className="hint">{k}:</span> {typeof x === 'object' && x !== null ? JSON.stringify(x) : String(x)}</div>);
}

/**
 * An input's shape as the model states it: a .pt2's own spec (symbolic dims as their names and
 * ranges, batch=1..64), a traced graph's recorded sizes, or a note that TorchScript kept none.
 */
function inputShape(i: InspectResult['inputs'][number]): ReactNode {
  if (i.spec) return <code className="shape" title={i.spec.dims.some((d) => typeof d !== 'number') ? 'A symbolic dimension serves every size in its range' : undefined}>[{i.spec.dims.map(formatDim).join(', ')}]</code>;
  if (i.shape) return <code className="shape">[{i.shape.join(', ')}]</code>;
  return <span className="hint" title="The TorchScript file does not record this input's shape: give it on the Inputs page">not recorded</span>;
}

export function ModelView() {
  const { modelPath, inspect, inspectJob, recent, info, mode, openingPath, jobs } = useStore();
  const readOnly = useStore((s) => s.connection.status === 'refused');
  const [path, setPath] = useState(openingPath ?? modelPath);
  // A model opened from elsewhere (a reload restoring the session, the menu) shows its path here.
  useEffect(() => setPath(openingPath ?? modelPath), [modelPath, openingPath]);
  const openFailed = inspectJob ? jobs[inspectJob]?.state === 'failed' : false;
  const [drag, setDrag] = useState(false);
  const [dropMsg, setDropMsg] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDrag(false);
    const file = e.dataTransfer.files[0];
    if (!file) return;
    if (readOnly) return setDropMsg('This tab is read-only (see the banner above): it cannot open models.');
    if (!/\.pt2?$/i.test(file.name)) return setDropMsg(`${file.name} is not a .pt or .pt2 file: drop a TorchScript model saved with torch.jit.save or a program saved with torch.export.save.`);
    const p = getApi().pathForFile?.(file);
    if (!p) return setDropMsg(`The browser does not reveal where ${file.name} lives: type its path above instead (drag-and-drop works in the desktop app).`);
    setDropMsg(null);
    setPath(p);
    void openModel(p);
  };

  const ops = inspect ? Object.entries(inspect.ops).sort((a, b) => b[1] - a[1]) : [];
  const maxOp = ops[0]?.[1] ?? 1;
  return (
    <section>
      <h2>Model</h2>
      <p className="notice" role="note">
        ⚠ Loading a <code>.pt</code> or <code>.pt2</code> file executes code from it (TorchScript and pickled objects can call arbitrary operators). Only open models you trust.
      </p>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          void openModel(path);
        }}
      >
        <input ref={input} id="model-path" data-shortcut="open" className="grow" placeholder="/path/to/model.pt" value={path} onChange={(e) => setPath(e.target.value)} aria-label="Model path" />
        <button type="submit" className="primary" disabled={!path.trim()}>Open</button>
        {info?.exampleModel && (
          <button
            type="button"
            onClick={() => {
              setPath(info.exampleModel!);
              void openModel(info.exampleModel!);
            }}
          >
            Open bundled example (ResNet-18)
          </button>
        )}
      </form>
      <div className={drag ? 'dropzone active' : 'dropzone'} onDragOver={(e) => { e.preventDefault(); setDrag(true); }} onDragLeave={() => setDrag(false)} onDrop={onDrop} data-testid="dropzone">
        Drop a <code>.pt</code> or <code>.pt2</code> file here{mode === 'browser' ? ' (desktop app only: in the browser, type the path)' : ''}
      </div>
      {dropMsg && <p className="warn">{dropMsg}</p>}
      <JobStatus jobId={inspectJob} what="Inspection" />
      {openFailed && modelPath && <p className="hint" data-testid="still-showing">That file was not opened; still showing <code>{modelPath}</code>.</p>}
      {!modelPath && (
        <Empty title="Open a TorchScript model to begin">
          <p>Type the path of a model saved with <code>torch.jit.save</code>, drop one here, pick a recent one, or open the bundled example.</p>
          {recent.length > 0 && (
            <>
              <h4>Recent models</h4>
              <ul className="recent">
                {recent.map((r) => (
                  <li key={r}>
                    <button className="link" onClick={() => { setPath(r); void openModel(r); }}>{r}</button>
                  </li>
                ))}
              </ul>
            </>
          )}
        </Empty>
      )}
      {inspect && (
        <div className="grid2" data-testid="inspection">
          <div className="card">
            <h3>Inputs</h3>
            <Table head={['name', 'type', 'shape', 'dtype']} rows={inspect.inputs.map((i) => [i.name, i.type, inputShape(i), i.spec?.dtype ?? i.dtype ?? <span className="hint">not recorded</span>])} />
            <p className="hint">Check or set the input shapes on the <button className="link" onClick={() => go('inputs')}>Inputs</button> page{inspect.exported ? ' (pre-filled from the specs embedded in this export)' : ''}.</p>
            <h3>Parameters</h3>
            <p>
              <b>{inspect.parameters.count.toLocaleString('en-US')}</b> parameters, {fmtBytes(inspect.parameters.bytes)} in {inspect.parameters.tensors} tensors
            </p>
            {inspect.exported && (
              <>
                <h3>Exported by TorchTVM Workbench</h3>
                <Table testId="exported-meta" head={['key', 'value']} rows={Object.entries(inspect.exported).map(([k, v]) => [k, <div key={k} className="meta-value">{metaValue(v)}</div>])} />
              </>
            )}
          </div>
          <div className="card">
            <h3>Ops ({ops.reduce((a, [, n]) => a + n, 0)} in {ops.length} kinds)</h3>
            <div className="histogram">
              {ops.slice(0, 24).map(([op, n]) => (
                <div className="bar-row" key={op}>
                  <span className="bar-label" title={op}>{op}</span>
                  <span className="bar" style={{ width: `${Math.max(2, (n / maxOp) * 100)}%` }} />
                  <span className="bar-value">{n}</span>
                </div>
              ))}
              {ops.length > 24 && <p className="hint">…and {ops.length - 24} more kinds</p>}
            </div>
          </div>
        </div>
      )}
      {inspect && (
        <div className="card" data-testid="model-runs">
          <h3>Runs of this model</h3>
          <RunsList action={(r) => <ComparePick run={r} />} />
          <CompareBar />
        </div>
      )}
    </section>
  );
}
