// Reads of the files the workbench keeps (run records, settings): regular files only, and bounded.
// A FIFO put where a record was would block the whole server on open (O_NONBLOCK returns at
// once), a device would never end, and a record of gigabytes would stall every client while it is
// read and parsed.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Thrown for a path that is there but is not a regular file. */
export class NotARegularFile extends Error {}

/**
 * The text of `file`, at most `maxBytes` of it: the whole file when it fits, else its last
 * `maxBytes` (`truncated`). Throws ENOENT and the like as fs does, and NotARegularFile for a
 * folder, FIFO, socket or device.
 */
export function readRegularFile(file: string, maxBytes: number): { text: string; truncated: boolean } {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotARegularFile(`${file} is not a regular file`);
    const length = Math.min(st.size, maxBytes);
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, st.size - length + done);
      if (n === 0) break; // the file shrank meanwhile
      done += n;
    }
    return { text: buf.subarray(0, done).toString('utf8'), truncated: st.size > maxBytes };
  } finally {
    closeSync(fd);
  }
}
