// Where a compile or tune job writes, checked before the build starts: the export path, the build
// folder (out_dir) and the tuning work dir (work_dir). An export never replaces the model it came from, nor a
// file the workbench did not write, unless the request says `overwrite` (the CLI's --force, the
// app's confirmation); a missing parent folder is an error unless the request says `create_parent`
// (the CLI's --mkdir). Two jobs never write one path at once: each holds a lock file beside it for
// the length of the job, and a second writer is refused with a sentence.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, statSync, unlinkSync, writeFileSync, accessSync, constants, type Stats } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { writeFileAtomic } from './atomic-write.js';
import { WorkbenchError } from '../contract/errors.js';
import { workbenchHome } from './paths.js';

/** What the checks need from a compile or tune request. */
export interface OutputRequest {
  model: string;
  export_path?: string;
  out_dir?: string;
  work_dir?: string;
  overwrite?: boolean;
  create_parent?: boolean;
}

const CONFIRM = 'confirm the overwrite (--force on the command line)';
const MKDIR = 'create it (--mkdir on the command line, or confirm in the app)';

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function errnoWhy(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'the file system is read-only';
  if (code === 'ENOSPC') return 'the disk is full';
  return (e as Error).message ?? String(e);
}

/** Throws unless `folder` can take new files (exists, is a folder, is writable); creates it when allowed. */
function checkFolder(folder: string, what: string, createParent: boolean): void {
  const st = statOrNull(folder);
  if (st && !st.isDirectory()) throw new WorkbenchError('not_a_folder', `${folder} is a file, not a folder, so ${what} cannot be written there; choose another path.`);
  if (!st) {
    // The nearest ancestor that exists must be a folder, or no --mkdir can help.
    let up = dirname(folder);
    while (!existsSync(up) && dirname(up) !== up) up = dirname(up);
    const upSt = statOrNull(up);
    if (upSt && !upSt.isDirectory()) throw new WorkbenchError('not_a_folder', `${up} is a file, not a folder, so ${what} cannot be written under it; choose another path.`);
    if (!createParent) throw new WorkbenchError('folder_missing', `The folder ${folder} for ${what} does not exist; ${MKDIR}, or choose another path.`, folder);
    try {
      mkdirSync(folder, { recursive: true });
    } catch (e) {
      throw new WorkbenchError('not_writable', `The folder ${folder} for ${what} could not be created (${errnoWhy(e)}); choose another path.`);
    }
    return;
  }
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new WorkbenchError('not_writable', `The folder ${folder} is not writable (${errnoWhy(e)}), so ${what} cannot be written there; choose another folder.`);
  }
}

// ---- which files the workbench wrote ----

const REGISTRY_FILE = 'exports.json';
type Registry = Record<string, { size: number; mtimeMs: number }>;

function registryPath(): string {
  return join(workbenchHome(), REGISTRY_FILE);
}

function readRegistry(): Map<string, { size: number; mtimeMs: number }> {
  const out = new Map<string, { size: number; mtimeMs: number }>();
  try {
    const data = JSON.parse(readFileSync(registryPath(), 'utf8')) as { files?: Registry };
    for (const [k, v] of Object.entries(data.files ?? {})) if (v && typeof v.size === 'number' && typeof v.mtimeMs === 'number') out.set(k, v);
  } catch {
    /* no registry yet, or a damaged one: nothing is recorded */
  }
  return out;
}

/** Records that the workbench wrote `file` (as it is now), so that a later export may replace it without asking. */
export function recordExport(file: string): void {
  const abs = resolve(file);
  const st = statOrNull(abs);
  if (!st?.isFile()) return;
  const reg = readRegistry();
  reg.set(abs, { size: st.size, mtimeMs: st.mtimeMs });
  // Keep the newest 500 entries whose files still exist.
  const entries = [...reg.entries()].filter(([p]) => existsSync(p)).slice(-500);
  const path = registryPath();
  try {
    writeFileAtomic(path, JSON.stringify({ format: 1, files: Object.fromEntries(entries) }, null, 1));
  } catch {
    /* best effort: without the record, the next overwrite asks for a confirmation */
  }
}

/** The bytes of one member of a zip archive (stored or deflated), or null. Reads only the central directory and that member. */
function zipMember(file: string, wanted: (name: string) => boolean, maxBytes = 1 << 20): Buffer | null {
  let fd = -1;
  try {
    fd = openSync(file, 'r');
    const size = statSync(file).size;
    if (size < 22) return null;
    const tailLen = Math.min(size, 22 + 0xffff + 20);
    const tail = Buffer.alloc(tailLen);
    readSync(fd, tail, 0, tailLen, size - tailLen);
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) return null;
    let entries = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset === 0xffffffff || entries === 0xffff) {
      // zip64: the locator sits just before the end record.
      const loc = eocd - 20;
      if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) return null;
      const rec64 = Number(tail.readBigUInt64LE(loc + 8));
      const r = Buffer.alloc(56);
      readSync(fd, r, 0, 56, rec64);
      if (r.readUInt32LE(0) !== 0x06064b50) return null;
      entries = Number(r.readBigUInt64LE(32));
      cdSize = Number(r.readBigUInt64LE(40));
      cdOffset = Number(r.readBigUInt64LE(48));
    }
    if (cdSize > 64 << 20 || cdOffset + cdSize > size) return null;
    const cd = Buffer.alloc(cdSize);
    readSync(fd, cd, 0, cdSize, cdOffset);
    let p = 0;
    for (let i = 0; i < entries && p + 46 <= cd.length; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) return null;
      const method = cd.readUInt16LE(p + 10);
      let csize = cd.readUInt32LE(p + 20);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let local = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      if (wanted(name)) {
        // zip64 sizes and offsets live in the extra field (id 1) when the 32-bit ones are saturated.
        let q = p + 46 + nameLen;
        const end = q + extraLen;
        while (q + 4 <= end) {
          const id = cd.readUInt16LE(q);
          const len = cd.readUInt16LE(q + 2);
          if (id === 1) {
            let r = q + 4;
            if (cd.readUInt32LE(p + 24) === 0xffffffff) r += 8; // uncompressed size
            if (csize === 0xffffffff) (csize = Number(cd.readBigUInt64LE(r))), (r += 8);
            if (local === 0xffffffff) local = Number(cd.readBigUInt64LE(r));
          }
          q += 4 + len;
        }
        const head = Buffer.alloc(30);
        readSync(fd, head, 0, 30, local);
        if (head.readUInt32LE(0) !== 0x04034b50) return null;
        const dataStart = local + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
        const n = Math.min(csize, maxBytes);
        const data = Buffer.alloc(n);
        readSync(fd, data, 0, n, dataStart);
        if (method === 0) return data;
        if (method === 8 && csize <= maxBytes) return inflateRawSync(data);
        return null;
      }
      p += 46 + nameLen + extraLen + commentLen;
    }
    return null;
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * The pickle opcodes that start an exported module: its top-level class is torchtvm's TVMModule
 * (possibly with a `_<hash>` suffix), qualified by the Python module that defined it:
 * torchtvm.deploy.export, or torchtvm.export in files exported before the engine's packages were
 * grouped by stage. Within the first bytes (after the protocol opcode).
 */
const EXPORT_CLASS = /^[\s\S]{0,4}c__torch__\.torchtvm\.(?:deploy\.)?export\nTVMModule(?:_[0-9a-f]+)?\n/;
const PRODUCER = Buffer.from('"producer": "torchtvm"', 'latin1');

/**
 * True when `file` is a `.pt` that the workbench exported: its top-level module is torchtvm's
 * TVMModule carrying torchtvm metadata (checked in the archive's data.pkl), or the workbench
 * recorded writing it and it has not changed since.
 */
export function isWorkbenchExport(file: string): boolean {
  const abs = resolve(file);
  const st = statOrNull(abs);
  if (!st?.isFile()) return false;
  const rec = readRegistry().get(abs);
  if (rec && rec.size === st.size && rec.mtimeMs === st.mtimeMs) return true;
  const pkl = zipMember(abs, (n) => /^[^/]+\/data\.pkl$/.test(n), 64 << 10);
  if (!pkl) return false;
  const head = pkl.subarray(0, 128);
  return EXPORT_CLASS.test(head.toString('latin1')) && pkl.indexOf(PRODUCER) >= 0;
}

// ---- locks: one writer per path ----

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const held = new Set<string>();

/**
 * Takes the write lock on `target` (a lock file beside it, holding this process's pid). Refuses
 * with a sentence when another job, in this process or another live one, holds it; a lock left by a
 * process that died is taken over. Returns the release function.
 */
export function lockPath(target: string, what: string): () => void {
  const abs = resolve(target);
  const lock = join(dirname(abs), `.${basename(abs)}.torchtvm-lock`);
  const busy = (pid: number | null) =>
    new WorkbenchError('busy', `Another job${pid && pid !== process.pid ? ` (process ${pid})` : ''} is already writing ${what} ${abs}; wait for it to finish or choose another path.`);
  if (held.has(abs)) throw busy(process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      held.add(abs);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(abs);
        try {
          if (readFileSync(lock, 'utf8') === String(process.pid)) unlinkSync(lock);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new WorkbenchError('not_writable', `Cannot write beside ${abs} (${errnoWhy(e)}); choose another folder.`);
      }
      let pid: number | null = null;
      try {
        pid = Number(readFileSync(lock, 'utf8').trim()) || null;
      } catch {
        continue; // released meanwhile: try again
      }
      if (pid !== null && pidAlive(pid) && (pid !== process.pid || held.has(abs))) throw busy(pid);
      try {
        unlinkSync(lock); // stale: its process is gone
      } catch {
        /* someone else took it over: try again */
      }
    }
  }
  throw busy(null);
}

// ---- the checks a compile or tune job runs before building ----

/** Prefix check on real paths: is `p` inside `root`? */
export function isInside(p: string, root: string): boolean {
  const r = root.endsWith(sep) ? root : root + sep;
  return p === root || p.startsWith(r);
}

/** `p` with symbolic links resolved as far as the path exists (what the OS will really write). */
export function realPathOfTarget(p: string): string {
  const abs = resolve(p);
  let head = abs;
  const rest: string[] = [];
  while (!existsSync(head) && dirname(head) !== head) {
    rest.unshift(basename(head));
    head = dirname(head);
  }
  try {
    return join(realpathSync(head), ...rest);
  } catch {
    return abs;
  }
}

/**
 * Checks where a compile or tune request writes, before anything is built, and takes a write lock on
 * the export path and the user-given folders. Throws a WorkbenchError (a sentence naming the path and
 * what to do); on success returns the release function for the locks.
 */
export function prepareOutputs(req: OutputRequest): () => void {
  const createParent = req.create_parent === true;
  const releases: Array<() => void> = [];
  const release = () => releases.splice(0).forEach((r) => r());
  try {
    if (req.export_path !== undefined) {
      const raw = req.export_path;
      const exp = resolve(raw);
      const st = statOrNull(exp);
      if ((st && st.isDirectory()) || /[/\\]$/.test(raw)) {
        const is = st?.isDirectory() ? 'is a folder' : 'ends with a slash, so it names a folder';
        throw new WorkbenchError('export_is_folder', `The export path ${exp} ${is}; give a file path such as ${join(exp, 'model_tvm.pt')}.`);
      }
      if (st && !st.isFile()) throw new WorkbenchError('export_not_file', `The export path ${exp} exists and is not a regular file; choose another path.`);
      checkFolder(dirname(exp), 'the exported model', createParent);
      const model = statOrNull(resolve(req.model));
      if (st && model && sameFile(st, model) && !req.overwrite) {
        throw new WorkbenchError('export_is_source', `The export path ${exp} is the model being compiled: writing there would replace it. Choose another file name such as ${exp.replace(/(\.[^./]*)?$/, '_tvm.pt')}, or ${CONFIRM}.`, exp);
      }
      if (st && !req.overwrite && !isWorkbenchExport(exp)) {
        throw new WorkbenchError('export_exists', `${exp} already exists and was not written by TorchTVM Workbench; choose another file name, or ${CONFIRM}.`, exp);
      }
      releases.push(lockPath(exp, 'the export'));
    }
    for (const [dir, what] of [
      [req.out_dir, 'the build'],
      [req.work_dir, 'the tuning work dir'],
    ] as const) {
      if (dir === undefined) continue;
      const abs = resolve(dir);
      const st = statOrNull(abs);
      if (st && !st.isDirectory()) throw new WorkbenchError('not_a_folder', `${abs} is a file, not a folder; give a folder for ${what}.`);
      if (!st) {
        checkFolder(dirname(abs), what, createParent);
        try {
          mkdirSync(abs, { recursive: true });
        } catch (e) {
          throw new WorkbenchError('not_writable', `The folder ${abs} for ${what} could not be created (${errnoWhy(e)}); choose another path.`);
        }
      } else checkFolder(abs, what, false);
      if (what === 'the build') releases.push(lockPath(join(abs, 'model.so'), what));
    }
  } catch (e) {
    release();
    throw e;
  }
  return release;
}
