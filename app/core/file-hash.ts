// A file's SHA-256, streamed: what a benchmark result names the model it measured by.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** The file's SHA-256 in hex; undefined when it cannot be read (benchmarked, so readable a moment ago: a file removed since has no hash to show). */
export async function sha256File(file: string): Promise<string | undefined> {
  try {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
    return h.digest('hex');
  } catch {
    return undefined;
  }
}
