// Small persistent state in the workbench home (recent models), written atomically.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { bundledPython, workbenchHome } from './paths.js';

/** Writes a file via a temp file in the same folder and a rename, so readers never see half of it. */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

const recentFile = () => join(workbenchHome(), 'recent.json');

export function recentModels(): string[] {
  try {
    const list = JSON.parse(readFileSync(recentFile(), 'utf8'));
    return Array.isArray(list) ? list.filter((p): p is string => typeof p === 'string' && existsSync(p)) : [];
  } catch {
    return [];
  }
}

export function addRecentModel(path: string): void {
  const abs = resolve(path);
  const list = [abs, ...recentModels().filter((p) => p !== abs)].slice(0, 10);
  writeFileAtomic(recentFile(), JSON.stringify(list, null, 1));
}

// ---- workbench settings (settings.json in the workbench home) ------------------------------------

export interface WorkbenchSettings {
  /** The Python that runs the engine; default: the bundled .venv. TORCHTVM_PYTHON overrides it. */
  python?: string;
}

const settingsFile = () => join(workbenchHome(), 'settings.json');

export function readSettings(): WorkbenchSettings {
  try {
    const s = JSON.parse(readFileSync(settingsFile(), 'utf8'));
    return s && typeof s === 'object' && !Array.isArray(s) ? (s as WorkbenchSettings) : {};
  } catch {
    return {};
  }
}

/** Merges `patch` into the settings; an undefined or empty value removes the key. */
export function writeSettings(patch: Partial<WorkbenchSettings>): WorkbenchSettings {
  const next: Record<string, unknown> = { ...readSettings() };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined || v === '') delete next[k];
    else next[k] = v;
  }
  writeFileAtomic(settingsFile(), JSON.stringify(next, null, 1));
  return next as WorkbenchSettings;
}

/** The engine's Python and where that choice came from: TORCHTVM_PYTHON, the setting, or the bundled .venv. */
export function enginePython(): { python: string; source: 'TORCHTVM_PYTHON' | 'setting' | 'bundled' } {
  if (process.env.TORCHTVM_PYTHON) return { python: process.env.TORCHTVM_PYTHON, source: 'TORCHTVM_PYTHON' };
  const s = readSettings().python;
  if (s) return { python: resolve(s), source: 'setting' };
  return { python: bundledPython(), source: 'bundled' };
}
