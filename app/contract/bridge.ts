// Names shared by the preload and the main process beyond the two channels of api.ts: the
// Electron-only helpers of window.workbench. No electron import here.
export const MENU_CHANNEL = 'workbench:menu';

/** The keys of window.workbench: the WorkbenchApi methods plus onEvent, pathForFile and onMenu. */
export const BRIDGE_EXTRAS = ['onEvent', 'pathForFile', 'onMenu'] as const;

export type MenuAction = { action: 'open'; path: string } | { action: 'export' } | { action: 'navigate'; view: string };
