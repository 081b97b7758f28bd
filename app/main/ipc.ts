// The one IPC entry point: checks who is calling (our window's top frame, loaded from our renderer
// file) and what (validateCall) before anything reaches app/core; pushes job events back.
import { ipcMain, type BrowserWindow, type IpcMainInvokeEvent } from 'electron';
import { CHANNELS, validateCall, type ApiMethod } from '../contract/api.js';
import { WorkbenchError } from '../contract/errors.js';
import type { Workbench } from '../core/workbench.js';

/** True when the message comes from the main frame of `win`, showing exactly `rendererUrl`. */
export function trustedSender(e: IpcMainInvokeEvent, win: BrowserWindow | null, rendererUrl: string): boolean {
  if (!win || win.isDestroyed() || e.sender !== win.webContents) return false;
  const frame = e.senderFrame;
  if (!frame || frame.parent !== null) return false;
  try {
    const u = new URL(frame.url);
    u.hash = '';
    u.search = '';
    return u.href === rendererUrl;
  } catch {
    return false;
  }
}

export function registerIpc(wb: Workbench, getWindow: () => BrowserWindow | null, rendererUrl: string): () => void {
  ipcMain.handle(CHANNELS.invoke, async (e, method: unknown, args: unknown) => {
    if (!trustedSender(e, getWindow(), rendererUrl)) {
      return { ok: false, error: { code: 'forbidden', message: 'This page may not call the workbench.' } };
    }
    try {
      const call = validateCall(method, args);
      const fn = wb[call.method as ApiMethod] as (...a: unknown[]) => Promise<unknown>;
      return { ok: true, result: await fn.apply(wb, call.args) };
    } catch (err) {
      return { ok: false, error: WorkbenchError.from(err).toJSON() };
    }
  });
  const off = wb.onEvent((event) => {
    const win = getWindow();
    if (win && !win.isDestroyed()) win.webContents.send(CHANNELS.event, event);
  });
  return () => {
    off();
    ipcMain.removeHandler(CHANNELS.invoke);
  };
}
