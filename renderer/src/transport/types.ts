// What the renderer talks to: the WorkbenchApi, plus two Electron-only helpers the preload adds.
import type { WorkbenchApi } from '../../../app/contract/api.js';

export type MenuAction = { action: 'open'; path: string } | { action: 'export' } | { action: 'navigate'; view: string };

export interface HostBridge extends WorkbenchApi {
  /** Electron only: the file-system path of a dropped File (webUtils.getPathForFile). */
  pathForFile?(file: File): string;
  /** Electron only: menu commands (File > Open, Open Recent, Export). */
  onMenu?(listener: (a: MenuAction) => void): () => void;
}

declare global {
  interface Window {
    workbench?: HostBridge;
  }
}
