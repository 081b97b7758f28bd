// Targets (issue 25): where a tune measures its trials. "This machine", or an RPC tracker's key:
// its servers (started with `torchtvm rpc-server`) measure the trials through MetaSchedule's
// RPCRunner, and the build targets their CPU. The queues are the tracker's own figures.
import { useState } from 'react';
import { getApi } from '../actions.js';
import { ErrorBox, Table } from '../components.js';
import { NO_AUTH_NOTE, type TrackerQueues } from '../../../app/contract/targets.js';
import { set, useStore } from '../store.js';

type Probe = NonNullable<TrackerQueues['probe']>;
type ProbeOrError = { ok: true; probe: Probe } | { ok: false; error: string };

export function TargetsView() {
  const { remoteTarget, trackerAddress } = useStore();
  const [queues, setQueues] = useState<TrackerQueues | null>(null);
  const [error, setError] = useState<{ message: string; code?: string } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [probes, setProbes] = useState<Record<string, ProbeOrError>>({});

  const list = async () => {
    setBusy('list');
    setError(null);
    try {
      setQueues(await getApi().trackerQueues({ tracker: trackerAddress.trim() }));
      setProbes({});
    } catch (e) {
      setQueues(null);
      setError({ message: (e as Error).message, code: (e as { code?: string }).code });
    } finally {
      setBusy(null);
    }
  };
  const check = async (key: string) => {
    setBusy(key);
    try {
      const r = await getApi().trackerQueues({ tracker: queues!.tracker, key });
      setProbes((p) => ({ ...p, [key]: { ok: true, probe: r.probe! } }));
    } catch (e) {
      setProbes((p) => ({ ...p, [key]: { ok: false, error: (e as Error).message } }));
    } finally {
      setBusy(null);
    }
  };
  const use = (tracker: string | null, key?: string) => {
    const t = tracker && key ? { tracker, key } : null;
    set({ remoteTarget: t });
    localStorage.setItem('torchtvm.remoteTarget', JSON.stringify(t));
  };

  return (
    <section>
      <h2>Targets</h2>
      <p className="hint">Where a tune measures its trials. Builds always run here, in parallel builder processes; with a tracker key, each trial is measured on one of the key&apos;s servers (as many at a time as the key has servers) and the code is built for their CPU.</p>
      <div className="banner warn" role="note" data-testid="no-auth-note">{NO_AUTH_NOTE}</div>
      <div className="card" data-testid="current-target">
        <h3>Tunes measure on</h3>
        <label className="row">
          <input type="radio" name="target" checked={remoteTarget === null} onChange={() => use(null)} data-testid="target-local" /> This machine
        </label>
        {remoteTarget && (
          <label className="row">
            <input type="radio" name="target" checked readOnly data-testid="target-remote" /> key <b>{remoteTarget.key}</b> at tracker <code>{remoteTarget.tracker}</code>
          </label>
        )}
      </div>
      <div className="card">
        <h3>RPC tracker</h3>
        <form className="row" onSubmit={(e) => { e.preventDefault(); void list(); }}>
          <label>
            Tracker <input value={trackerAddress} onChange={(e) => { set({ trackerAddress: e.target.value }); localStorage.setItem('torchtvm.tracker', e.target.value); }} placeholder="127.0.0.1:9190" aria-label="Tracker address" style={{ width: '16em' }} />
          </label>
          <button type="submit" className="primary" disabled={!/^\S+:\d{1,5}$/.test(trackerAddress.trim()) || busy !== null} data-testid="list-queues">{busy === 'list' ? 'Asking…' : 'List queues'}</button>
        </form>
        <p className="hint">Start a measuring server on each machine with <code>torchtvm rpc-server --tracker HOST:PORT --key KEY</code> (the tracker: <code>python -m tvm.exec.rpc_tracker --host HOST --port PORT</code>). Servers of one key must have one CPU.</p>
        {error && <ErrorBox message={error.message} code={error.code} />}
        {queues && (queues.keys.length === 0 ? <p data-testid="no-queues">No server is registered with the tracker at <code>{queues.tracker}</code>.</p> : (
          <div className="table-scroll"><Table
            testId="tracker-queues"
            head={['key (server addresses)', 'servers', 'free', 'busy', 'pending', '']}
            rows={queues.keys.map((q) => {
              const chosen = remoteTarget?.tracker === queues.tracker && remoteTarget.key === q.key;
              return [
                <div key="k"><b>{q.key}</b>{q.addresses.map((a) => <div key={a} className="hint">{a}</div>)}</div>, q.servers, q.free, Math.max(0, q.servers - q.free), q.pending,
                <div key="b" className="row" style={{ margin: 0 }}>
                  <button onClick={() => void check(q.key)} disabled={busy !== null || q.servers === 0} data-testid={`check-${q.key}`} style={{ whiteSpace: 'nowrap' }}>{busy === q.key ? 'Asking…' : 'Check CPU'}</button>
                  <button className={chosen ? 'primary' : undefined} aria-pressed={chosen} onClick={() => use(queues.tracker, q.key)} disabled={q.servers === 0} data-testid={`use-${q.key}`} style={{ whiteSpace: 'nowrap' }}>{chosen ? 'Used for tuning' : 'Use for tuning'}</button>
                </div>,
              ];
            })}
          /></div>
        ))}
        {Object.entries(probes).map(([key, r]) => (
          <div key={key} className="card" data-testid={`probe-${key}`}>
            <h4>Key {key}</h4>
            {!r.ok ? <ErrorBox message={r.error} /> : (
              <>
                <p>A build for this key targets <code>{JSON.stringify(r.probe.target)}</code>.</p>
                <div className="table-scroll"><Table head={['server', 'CPU', 'LLVM CPU', 'cores', 'features']} rows={r.probe.servers.map((s) => [s.name, s.cpu_model ?? '-', s.llvm_cpu ?? '-', s.cores ?? '-', <span key="f" className="hint" title={s.features.join(' ')}>{s.features.length} ({s.features.filter((f) => /avx512f$|avx2|amx-tile|avx512fp16/.test(f)).join(', ') || 'baseline'})</span>])} /></div>
              </>
            )}
          </div>
        ))}
      </div>
    </section>
  );
}
