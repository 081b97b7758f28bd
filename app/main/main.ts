// Electron's main process: one sandboxed window on the built renderer, menus, IPC to app/core.
// Thin on purpose: everything the window can do goes through the WorkbenchApi (app/core), the same
// code the CLI and browser mode run. The engine runs in a child process (app/core starts it); the
// native bench host runs in a utilityProcess so that a crash there never takes the window down.
import { app, BrowserWindow, screen, session, shell } from 'electron';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { paths } from '../core/paths.js';
import { createWorkbench, type Workbench } from '../core/workbench.js';
import { registerIpc } from './ipc.js';
import { buildMenu } from './menu.js';
import { electronServices } from './services.js';
import { loadWindowState, saveWindowState } from './window-state.js';

const rendererFile = join(paths.rendererDist, 'index.html');
const rendererUrl = pathToFileURL(rendererFile).href;
const preload = join(paths.root, 'dist', 'app', 'preload', 'preload.cjs');

let win: BrowserWindow | null = null;
let wb: Workbench | null = null;
let versionsText = '';

app.enableSandbox();
if (!app.requestSingleInstanceLock()) app.quit();

// Every web contents: no new windows, no navigation away from the renderer, no webviews, no permissions.
app.on('web-contents-created', (_e, contents) => {
  contents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  contents.on('will-navigate', (e, url) => {
    if (url !== rendererUrl) e.preventDefault();
  });
  contents.on('will-redirect', (e) => e.preventDefault());
  contents.on('will-attach-webview', (e) => e.preventDefault());
});

function createWindow(): BrowserWindow {
  const state = loadWindowState(screen.getAllDisplays().map((d) => d.workArea));
  const w = new BrowserWindow({
    ...state,
    minWidth: 820,
    minHeight: 560,
    show: false,
    title: 'TorchTVM Workbench',
    backgroundColor: '#14171c',
    webPreferences: {
      preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      spellcheck: false,
      devTools: !app.isPackaged,
    },
  });
  if (state.maximized) w.maximize();
  w.once('ready-to-show', () => w.show());
  let timer: NodeJS.Timeout | undefined;
  const remember = () => {
    clearTimeout(timer);
    timer = setTimeout(() => !w.isDestroyed() && saveWindowState(w.getNormalBounds(), w.isMaximized()), 500);
  };
  w.on('resize', remember);
  w.on('move', remember);
  w.on('close', () => {
    clearTimeout(timer);
    saveWindowState(w.getNormalBounds(), w.isMaximized());
  });
  w.on('closed', () => {
    if (win === w) win = null;
  });
  void w.loadFile(rendererFile);
  return w;
}

app.on('second-instance', () => {
  if (win) {
    if (win.isMinimized()) win.restore();
    win.focus();
  }
});

app.whenReady().then(async () => {
  if (!existsSync(rendererFile) || !existsSync(preload)) {
    console.error(`The app is not built (${!existsSync(rendererFile) ? rendererFile : preload} is missing): run "npm run build".`);
    app.exit(2);
    return;
  }
  session.defaultSession.setPermissionRequestHandler((_wc, _perm, cb) => cb(false));
  session.defaultSession.setPermissionCheckHandler(() => false);
  const services = await electronServices();
  wb = createWorkbench({ host: 'electron', runners: services.runners });
  registerIpc(wb, () => win, rendererUrl);
  const getWin = () => win;
  buildMenu(getWin, () => versionsText);
  wb.onEvent((e) => {
    // Recent files change when an inspection succeeds.
    if (e.event === 'job.state' && e.data.state === 'succeeded' && e.data.kind === 'inspect') buildMenu(getWin, () => versionsText);
  });
  void wb.info().then((i) => (versionsText = Object.entries(i.versions).map(([k, v]) => `${k} ${v}`).join('\n')), () => {});
  win = createWindow();
  app.on('activate', () => {
    if (!win) win = createWindow();
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});

let quitting = false;
app.on('before-quit', (e) => {
  if (quitting || !wb) return;
  quitting = true;
  e.preventDefault();
  const w = wb;
  wb = null;
  void w.close().finally(() => app.quit());
});
