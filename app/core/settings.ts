// Small persistent state in the workbench home (recent models), written atomically.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from './atomic-write.js';
import { bundledPython, workbenchHome } from './paths.js';
import { readRegularFile } from './read-file.js';

/** A small JSON file of the home; undefined when missing, not a regular file, over 1 MB or not JSON. */
function readSmallJson(file: string): unknown {
  try {
    const { text, truncated } = readRegularFile(file, 1 << 20);
    return truncated ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

const recentFile = () => join(workbenchHome(), 'recent.json');

export function recentModels(): string[] {
  const list = readSmallJson(recentFile());
  return Array.isArray(list) ? list.filter((p): p is string => typeof p === 'string' && existsSync(p)) : [];
}

/**
 * Remembers a model that a job used. A convenience, so it never fails the job or the host: when the
 * home cannot be written (a full disk, recent.json made a folder) it says so on stderr and goes on.
 * Returns whether the list was written.
 */
export function addRecentModel(path: string): boolean {
  const abs = resolve(path);
  const list = [abs, ...recentModels().filter((p) => p !== abs)].slice(0, 10);
  try {
    writeFileAtomic(recentFile(), JSON.stringify(list, null, 1));
    return true;
  } catch (e) {
    console.warn(`Could not update the recent models in ${recentFile()} (${(e as Error).message}); the job's results are not affected.`);
    return false;
  }
}

// ---- workbench settings (settings.json in the workbench home) ------------------------------------

export interface WorkbenchSettings {
  /** The Python that runs the engine; default: the bundled .venv. TORCHTVM_PYTHON overrides it. */
  python?: string;
}

const settingsFile = () => join(workbenchHome(), 'settings.json');

export function readSettings(): WorkbenchSettings {
  const s = readSmallJson(settingsFile());
  return s && typeof s === 'object' && !Array.isArray(s) ? (s as WorkbenchSettings) : {};
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
