// The main window's bounds, remembered across runs in the workbench home (atomic JSON).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Rectangle } from 'electron';
import { workbenchHome } from '../core/paths.js';
import { writeFileAtomic } from '../core/atomic-write.js';

export interface WindowState {
  x?: number;
  y?: number;
  width: number;
  height: number;
  maximized: boolean;
}

const DEFAULT: WindowState = { width: 1280, height: 860, maximized: false };
const file = () => join(workbenchHome(), 'window-state.json');

/** The saved state if it is sane and at least partly on one of the given displays; the default otherwise. */
export function loadWindowState(displays: Rectangle[]): WindowState {
  try {
    const s = JSON.parse(readFileSync(file(), 'utf8')) as Partial<WindowState>;
    const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
    if (!num(s.width) || !num(s.height) || s.width! < 400 || s.height! < 300) return DEFAULT;
    const state: WindowState = { width: Math.round(s.width!), height: Math.round(s.height!), maximized: s.maximized === true };
    if (num(s.x) && num(s.y)) {
      const visible = displays.some((d) => s.x! < d.x + d.width - 50 && s.x! + state.width > d.x + 50 && s.y! >= d.y - 10 && s.y! < d.y + d.height - 50);
      if (visible) Object.assign(state, { x: Math.round(s.x!), y: Math.round(s.y!) });
    }
    return state;
  } catch {
    return DEFAULT;
  }
}

export function saveWindowState(bounds: Rectangle, maximized: boolean): void {
  const state: WindowState = { ...bounds, maximized };
  try {
    writeFileAtomic(file(), JSON.stringify(state, null, 1));
  } catch {
    // Not worth bothering the user about.
  }
}
