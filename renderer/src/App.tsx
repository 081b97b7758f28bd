import { useEffect, useState } from 'react';
import { exportModel, go } from './actions.js';
import { set, useStore, VIEWS, type Theme, type View } from './store.js';
import { BenchView } from './views/BenchView.js';
import { CompileView } from './views/CompileView.js';
import { ExportView } from './views/ExportView.js';
import { GraphView } from './views/GraphView.js';
import { InputsView } from './views/InputsView.js';
import { LogsView } from './views/LogsView.js';
import { ModelView } from './views/ModelView.js';
import { TuneView } from './views/TuneView.js';

const PAGES: Record<View, () => React.JSX.Element> = { model: ModelView, graph: GraphView, inputs: InputsView, compile: CompileView, tune: TuneView, logs: LogsView, bench: BenchView, export: ExportView };
const NEXT_THEME: Record<Theme, Theme> = { system: 'light', light: 'dark', dark: 'system' };

function useShortcuts() {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
      const k = e.key.toLowerCase();
      if (k === 'o') {
        e.preventDefault();
        go('model');
        requestAnimationFrame(() => (document.getElementById('model-path') as HTMLInputElement | null)?.focus());
      } else if (k === 'e') {
        e.preventDefault();
        go('export');
        void exportModel();
      } else {
        const v = VIEWS.find((x) => x.key === k);
        if (v) {
          e.preventDefault();
          go(v.id);
        }
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
}

function StatusDot({ id }: { id: View }) {
  const state = useStore((s) => {
    const job = id === 'compile' ? s.compileJob : id === 'tune' ? s.tuneJob : id === 'bench' ? s.benchJob : id === 'export' ? s.exportJob : id === 'model' ? s.inspectJob : undefined;
    return job ? s.jobs[job]?.state : undefined;
  });
  return state ? <span className={`dot ${state}`} title={state} /> : null;
}

/** Says when the connection is lost, that it reconnects by itself, and when it is back. */
function ConnectionBanner() {
  const connection = useStore((s) => s.connection);
  const reconnectedAt = useStore((s) => s.reconnectedAt);
  const [, tick] = useState(0);
  useEffect(() => {
    if (!reconnectedAt) return;
    const t = setTimeout(() => tick((n) => n + 1), 6000);
    return () => clearTimeout(t);
  }, [reconnectedAt]);
  if (connection.status === 'closed' || connection.status === 'reconnecting') {
    return <div className="banner bad" role="alert" data-testid="connection-banner" data-status={connection.status}>{connection.why ?? 'Lost the connection to the workbench server; reconnecting by itself…'}</div>;
  }
  if (connection.status === 'open' && reconnectedAt && Date.now() - reconnectedAt < 6000) {
    return <div className="banner info" role="status" data-testid="connection-banner" data-status="reconnected">Reconnected to the workbench server; running jobs were reattached.</div>;
  }
  return null;
}

export function App() {
  const { view, theme, modelPath, openingPath, info, mode } = useStore();
  useShortcuts();
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('torchtvm.theme', theme);
  }, [theme]);
  useEffect(() => {
    // Let a file dropped outside the drop zone do nothing rather than navigate away.
    const stop = (e: DragEvent) => e.preventDefault();
    window.addEventListener('dragover', stop);
    window.addEventListener('drop', stop);
    return () => {
      window.removeEventListener('dragover', stop);
      window.removeEventListener('drop', stop);
    };
  }, []);
  const Page = PAGES[view];
  return (
    <div className="app">
      <nav className="sidebar" aria-label="Workbench sections">
        <div className="brand">
          <b>TorchTVM</b> Workbench
        </div>
        {VIEWS.map((v) => (
          <button key={v.id} className={v.id === view ? 'nav active' : 'nav'} onClick={() => go(v.id)} aria-current={v.id === view ? 'page' : undefined} data-view={v.id} title={`Ctrl/Cmd+${v.key}`}>
            {v.label}
            <StatusDot id={v.id} />
          </button>
        ))}
        <div className="sidebar-foot">
          <button className="theme" onClick={() => set({ theme: NEXT_THEME[theme] })} data-testid="theme-toggle" title="Light, dark, or follow the system">
            Theme: {theme}
          </button>
          <div className="hint">{info ? `v${info.version} · ${mode} · ${Object.entries(info.versions).filter(([k]) => k === 'tvm' || k === 'torch').map(([k, v]) => `${k} ${v}`).join(' · ')}` : mode}</div>
          <div className="hint">Ctrl/Cmd+O open · Ctrl/Cmd+E export</div>
        </div>
      </nav>
      <main>
        <ConnectionBanner />
        {modelPath && <div className="model-bar" title={modelPath}>Model: <code>{modelPath}</code>{openingPath && openingPath !== modelPath ? <> · opening <code>{openingPath}</code>…</> : null}</div>}
        <Page />
      </main>
    </div>
  );
}
