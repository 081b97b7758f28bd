// Builds on disk (the engine's deploy/builds.py writes them): what app/core needs to know of one
// before the engine exports it.
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BUILD_RECORD_FORMAT, BuildRecordSchema, type BuildRecord } from '../contract/builds.js';
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

/**
 * A build folder's record (its build.json, or the path of that file), checked against the schema:
 * a missing, unreadable or damaged record is refused with a sentence that says what to do. The
 * build's dir and package are where the folder is now (it may have been moved since).
 */
export function readBuildRecord(dirOrFile: string): BuildRecord {
  let dir = resolve(dirOrFile);
  if (basename(dir) === 'build.json') dir = dirname(dir);
  const file = join(dir, 'build.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readRegularFile(file, 64 << 20).text);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const why = existsSync(dir) ? 'it holds no build.json (it is not a build folder, or one made by an older workbench)' : 'there is no such folder';
      throw new WorkbenchError('build_missing', `${dir} is not a build: ${why}. Give the build folder a compile or tune printed ("Wrote: … record DIR/build.json"), or compile the model again.`);
    }
    throw new WorkbenchError('build_damaged', `The build record ${file} cannot be read (${(e as Error).message}); compile the model again.`);
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (typeof format === 'number' && format > BUILD_RECORD_FORMAT) throw new WorkbenchError('build_damaged', `The build record ${file} was written by a newer workbench (format ${format}); compare it with that version.`);
  const parsed = BuildRecordSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new WorkbenchError('build_damaged', `The build record ${file} is damaged: ${first ? `${first.path.join('.') || '(top)'}: ${first.message}` : 'it does not match a build record'}${parsed.error.issues.length > 1 ? ` (and ${parsed.error.issues.length - 1} more problem(s))` : ''}. Compile the model again to make a new build.`);
  }
  const rec = parsed.data;
  return { ...rec, build: { ...rec.build, dir, package: join(dir, 'model.pt') } };
}
