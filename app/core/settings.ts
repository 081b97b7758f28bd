// Small persistent state in the workbench home (recent models), written atomically.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { workbenchHome } from './paths.js';

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
