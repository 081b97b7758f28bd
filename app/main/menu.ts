// The application menu: File (Open, Open Recent, bundled example, Export), Edit, View, Help.
import { app, dialog, Menu, shell, type BrowserWindow, type MenuItemConstructorOptions } from 'electron';
import { existsSync } from 'node:fs';
import { paths, workbenchHome } from '../core/paths.js';
import { recentModels } from '../core/settings.js';
import { MENU_CHANNEL, type MenuAction } from '../contract/bridge.js';

function send(win: BrowserWindow | null, action: MenuAction): void {
  if (win && !win.isDestroyed()) win.webContents.send(MENU_CHANNEL, action);
}

export async function chooseModel(win: BrowserWindow | null): Promise<void> {
  const opts = { title: 'Open a model', properties: ['openFile' as const], filters: [{ name: 'TorchScript or torch.export', extensions: ['pt', 'pth', 'ptl', 'pt2'] }, { name: 'All files', extensions: ['*'] }] };
  const r = win ? await dialog.showOpenDialog(win, opts) : await dialog.showOpenDialog(opts);
  if (!r.canceled && r.filePaths[0]) send(win, { action: 'open', path: r.filePaths[0] });
}

export function buildMenu(getWindow: () => BrowserWindow | null, versions: () => string): void {
  const isMac = process.platform === 'darwin';
  const recent = recentModels();
  const template: MenuItemConstructorOptions[] = [
    ...(isMac ? [{ role: 'appMenu' as const }] : []),
    {
      label: '&File',
      submenu: [
        { label: 'Open…', accelerator: 'CmdOrCtrl+O', click: () => void chooseModel(getWindow()) },
        {
          label: 'Open Recent',
          submenu: recent.length
            ? [...recent.map((p) => ({ label: p, click: () => send(getWindow(), { action: 'open', path: p }) })), { type: 'separator' as const }, { label: 'Refresh list', click: () => buildMenu(getWindow, versions) }]
            : [{ label: 'No recent models', enabled: false }],
        },
        { label: 'Open Bundled Example', enabled: existsSync(paths.exampleModel), click: () => send(getWindow(), { action: 'open', path: paths.exampleModel }) },
        { type: 'separator' },
        { label: 'Export…', accelerator: 'CmdOrCtrl+E', click: () => send(getWindow(), { action: 'export' }) },
        { type: 'separator' },
        { label: 'Show Workbench Folder', click: () => void shell.openPath(workbenchHome()) },
        { type: 'separator' },
        isMac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: '&View',
      submenu: [
        ...['model', 'inputs', 'compile', 'tune', 'logs', 'bench', 'export'].map((view, i) => ({ label: ['Model', 'Inputs', 'Compile & Verify', 'Tune', 'Tuning Logs', 'Benchmark', 'Export'][i], accelerator: `CmdOrCtrl+${i + 1}`, click: () => send(getWindow(), { action: 'navigate', view }) })),
        { type: 'separator' },
        { role: 'reload' },
        ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' as const }]),
        { type: 'separator' },
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    {
      role: 'help',
      submenu: [
        {
          label: 'About TorchTVM Workbench',
          click: () => {
            const win = getWindow();
            const opts = { type: 'info' as const, title: 'TorchTVM Workbench', message: `TorchTVM Workbench ${app.getVersion()}`, detail: `${versions()}\n\nLoading a .pt runs code from it: only open files you trust.` };
            void (win ? dialog.showMessageBox(win, opts) : dialog.showMessageBox(opts));
          },
        },
      ],
    },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}
