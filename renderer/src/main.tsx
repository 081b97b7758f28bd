import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { getApi, openModel, setApi, exportModel, go } from './actions.js';
import { enqueue } from './events.js';
import { set } from './store.js';
import { installTestHooks } from './testhooks.js';
import { connect } from './transport/index.js';
import './styles.css';

const { api, mode } = connect((status, why) => set({ connection: { status, why } }));
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
getApi()
  .info()
  .then((info) => set({ info }), () => {});
getApi()
  .recentModels()
  .then((recent) => set({ recent }), () => {});
installTestHooks();

createRoot(document.getElementById('root')!).render(<App />);
