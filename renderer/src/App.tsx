import { useEffect, useState } from 'react';
import { exportModel, go } from './actions.js';
import { get, set, useStore, VIEWS, type Theme, type View } from './store.js';
import { BenchView } from './views/BenchView.js';
import { CompareView } from './views/CompareView.js';
import { CompileView } from './views/CompileView.js';
import { ExportView } from './views/ExportView.js';
import { GraphView } from './views/GraphView.js';
import { InputsView } from './views/InputsView.js';
import { LogsView } from './views/LogsView.js';
import { ModelView } from './views/ModelView.js';
import { TuneView } from './views/TuneView.js';
import { TargetsView } from './views/TargetsView.js';

const PAGES: Record<View, () => React.JSX.Element> = { model: ModelView, graph: GraphView, inputs: InputsView, compile: CompileView, tune: TuneView, logs: LogsView, bench: BenchView, export: ExportView, compare: CompareView, targets: TargetsView };
const NEXT_THEME: Record<Theme, Theme> = { system: 'light', light: 'dark', dark: 'system' };

function useShortcuts() {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
      const k = e.key.toLowerCase();
      if (k === 'e' && get().connection.status === 'refused') return; // read-only: the export would only fail
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

/**
 * A tab without a valid access token (opened by typing the address, from a bookmark, or a token from
 * an earlier server) cannot reach app/core: the page is read-only. It says so, and how to get a
 * link that works, and every control of the page is disabled (the <fieldset> in App), so that no
 * button offers what would only fail.
 */
function AccessBanner() {
  const connection = useStore((s) => s.connection);
  const modelPath = useStore((s) => s.modelPath);
  if (connection.status !== 'refused') return null;
  const port = location.port || '80';
  return (
    <div className="banner warn access" role="alert" data-testid="access-banner">
      <p><b>Read-only: this tab cannot reach the workbench server, so every button on the page is disabled.</b> {withCode(connection.why ?? '')}</p>
      <p>
        To get a link that works, open the URL that <code>torchtvm serve</code> printed when it started, <code className="url">http://127.0.0.1:{port}/#token=…</code>, in this tab.
        The token after <code>#token=</code> is the password, and only the tab that opened the link keeps it (no cookie), so other tabs and bookmarks do not have it.
        If that terminal is gone, stop the server (Ctrl-C) and start <code>torchtvm serve --port {port}</code> again: it prints a new link.
      </p>
      {modelPath && <p className="hint">The model shown is what this browser had open last, from its own storage; it may be out of date.</p>}
    </div>
  );
}

/** A sentence with `quoted` parts shown as code. */
function withCode(text: string): React.ReactNode[] {
  return text.split('`').map((part, i) => (i % 2 ? <code key={i}>{part}</code> : part));
}

export function App() {
  const { view, theme, modelPath, openingPath, info, mode } = useStore();
  const readOnly = useStore((s) => s.connection.status === 'refused');
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
    <div className="app" data-readonly={readOnly ? '1' : undefined}>
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
        <AccessBanner />
        <ConnectionBanner />
        {modelPath && <div className="model-bar" title={modelPath}>Model: <code>{modelPath}</code>{openingPath && openingPath !== modelPath ? <> · opening <code>{openingPath}</code>…</> : null}</div>}
        {/* Read-only (no valid token): a disabled fieldset disables every control of every page at once. */}
        <fieldset className="page" disabled={readOnly} data-testid="page">
          <Page />
        </fieldset>
      </main>
    </div>
  );
}
