// Shared helpers for Node tests: tiny real models, the CLI as a subprocess.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paths } from '../../app/core/paths.js';

export const CLI = join(paths.root, 'bin', 'torchtvm.js');

/** Makes the tiny fixture models (test/fixtures/make_models.py) in a fresh temp dir. */
export function makeModels(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ttvm-models-'));
  const r = spawnSync(paths.python, [join(paths.root, 'test/fixtures/make_models.py'), dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making models failed: ${r.stderr}`);
  return dir;
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  lines: Array<Record<string, unknown>>;
}

/** Runs the CLI; in --json mode `lines` are the parsed JSON lines of stdout. */
export function runCli(args: string[], env: Record<string, string> = {}, onLine?: (line: Record<string, unknown>, child: ReturnType<typeof spawn>) => void): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    let pending = '';
    const lines: Array<Record<string, unknown>> = [];
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        try {
          const obj = JSON.parse(line);
          lines.push(obj);
          onLine?.(obj, child);
        } catch {
          /* human output */
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr, lines }));
  });
}

export const tmpHome = () => mkdtempSync(join(tmpdir(), 'ttvm-home-'));

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago): a tracker that is down. */
export function closedPort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}
