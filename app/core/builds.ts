// Builds on disk (the engine's deploy/builds.py writes them): what app/core needs to know of one
// before the engine exports it.
import { join, resolve } from 'node:path';
import { WorkbenchError } from '../contract/errors.js';
import { readRegularFile } from './read-file.js';

/** The model a build folder was made from (its build.json's result.model): an export run belongs to it. */
export function buildModel(dir: string): string {
  const file = join(resolve(dir), 'build.json');
  let model: unknown;
  try {
    model = (JSON.parse(readRegularFile(file, 64 << 20).text) as { result?: { model?: unknown } }).result?.model;
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it holds no build.json' : `its build.json cannot be read (${(e as Error).message})`;
    throw new WorkbenchError('build_missing', `${resolve(dir)} is not a build folder: ${why}. Give the build folder a compile or tune printed, or compile the model again.`);
  }
  if (typeof model !== 'string' || !model) throw new WorkbenchError('build_damaged', `${file} does not name the model it was built from; compile the model again.`);
  return model;
}
