// The sandboxed preload: exposes exactly one object, window.workbench, implementing the
// WorkbenchApi over two IPC channels, plus pathForFile (drag-and-drop) and onMenu. Every call is
// validated here (validateCall) and again in the main process. Bundled to CommonJS
// (dist/app/preload/preload.cjs) by vite.config.ts: sandboxed preloads cannot be ES modules.
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import { API_METHODS, CHANNELS, validateCall, type ApiMethod } from '../contract/api.js';
import type { JobEvent } from '../contract/jobs.js';
import { MENU_CHANNEL, type MenuAction } from '../contract/bridge.js';

type Reply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; detail?: string } };

async function invoke(method: ApiMethod, args: unknown[]): Promise<unknown> {
  validateCall(method, args);
  const reply = (await ipcRenderer.invoke(CHANNELS.invoke, method, args)) as Reply;
  if (reply.ok) return reply.result;
  // Errors crossing contextBridge keep only their message, so the code and detail ride along as properties.
  throw Object.assign(new Error(reply.error.message), { code: reply.error.code, detail: reply.error.detail });
}

const api: Record<string, unknown> = {};
for (const m of API_METHODS) api[m] = (...args: unknown[]) => invoke(m, args);
api.onEvent = (listener: (e: JobEvent) => void) => {
  if (typeof listener !== 'function') throw new TypeError('onEvent needs a function');
  const wrapped = (_e: IpcRendererEvent, event: JobEvent) => listener(event);
  ipcRenderer.on(CHANNELS.event, wrapped);
  return () => void ipcRenderer.removeListener(CHANNELS.event, wrapped);
};
api.onMenu = (listener: (a: MenuAction) => void) => {
  if (typeof listener !== 'function') throw new TypeError('onMenu needs a function');
  const wrapped = (_e: IpcRendererEvent, action: MenuAction) => listener(action);
  ipcRenderer.on(MENU_CHANNEL, wrapped);
  return () => void ipcRenderer.removeListener(MENU_CHANNEL, wrapped);
};
api.pathForFile = (file: File) => webUtils.getPathForFile(file);

contextBridge.exposeInMainWorld('workbench', Object.freeze(api));
