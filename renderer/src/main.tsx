import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { attachRuns, connectionOpened, exportModel, getApi, go, openModel, rememberInputs, restoreSession, setApi } from './actions.js';
import { enqueue } from './events.js';
import { get, set, useStore, VIEWS, type View } from './store.js';
import { installTestHooks, trackSockets } from './testhooks.js';
import { connect } from './transport/index.js';
import './styles.css';

// What survives a reload or a restart of the app: the open model, the page, the typed inputs.
// Jobs and their results live on the server side as runs and are reattached from there.
const SESSION_KEY = 'torchtvm.session';
function savedSession(): { model?: string; view?: View } {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) ?? '{}') as { model?: string; view?: View };
  } catch {
    return {};
  }
}

trackSockets();
const { api, mode } = connect(
  (status, why) => {
    set({ connection: { status, why } });
    if (status === 'open') connectionOpened();
  },
  () => {
    // Back after a lost connection: say so, and reattach to the open model's runs (jobs kept running on the server).
    set({ reconnectedAt: Date.now() });
    const model = get().modelPath;
    if (model) void attachRuns(model);
  },
);
setApi(api);
set({ mode });
api.onEvent(enqueue);
api.onMenu?.((m) => {
  if (m.action === 'open') void openModel(m.path);
  else if (m.action === 'export') {
    go('export');
    void exportModel();
  } else if (m.action === 'navigate') go(m.view as never);
});
const infoReady = getApi()
  .info()
  .then((info) => set({ info }), () => {});
getApi()
  .recentModels()
  .then((recent) => set({ recent }), () => {});
installTestHooks();

useStore.subscribe((s, prev) => {
  if (s.modelPath !== prev.modelPath || s.view !== prev.view) localStorage.setItem(SESSION_KEY, JSON.stringify({ model: s.modelPath || undefined, view: s.view }));
  if (s.inputs !== prev.inputs && s.modelPath && s.modelPath === prev.modelPath) rememberInputs(s.modelPath, s.inputs);
});

const session = savedSession();
if (session.view && VIEWS.some((v) => v.id === session.view)) set({ view: session.view });
if (session.model) {
  const model = session.model;
  // After info, so that the bundled example is recognised when its rows are pre-filled.
  void infoReady.then(() => restoreSession(model));
}

createRoot(document.getElementById('root')!).render(<App />);
