// The CLI's side of issue 25 (measuring on other machines through TVM's RPC tracker): the engine's
// Python modules torchtvm.remote.{server,fleet,bench}, run as child processes of this command.
import { spawn } from 'node:child_process';
import { paths } from '../core/paths.js';
import { enginePython } from '../core/settings.js';

/** TVM's RPC protocol has no authentication: said wherever a tracker is used. */
export const NO_AUTH =
  "TVM's RPC protocol has no authentication: anyone who can reach the tracker or a server can upload and run code on the servers. Use it on a network you trust.";

/** "HOST:PORT" → a sentence when it is not one, else null. */
export function trackerProblem(text: string): string | null {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return `--tracker must be HOST:PORT (for example 127.0.0.1:9190), not "${text}"`;
  return null;
}

function spawnEngine(args: string[], stdio: 'inherit' | 'pipe') {
  return spawn(enginePython().python, args, {
    cwd: paths.engineDir,
    env: { ...process.env, PYTHONUNBUFFERED: '1', TORCHTVM_RUNTIME_LIB: process.env.TORCHTVM_RUNTIME_LIB ?? paths.runtimeLib },
    stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs `python -m MODULE ARGS` and parses its last stdout line as JSON. */
export function runEngineJson(args: string[]): Promise<{ code: number; value: unknown; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const p = spawnEngine(args, 'pipe');
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const stop = () => p.kill('SIGTERM');
    process.once('SIGINT', stop);
    p.on('error', reject);
    p.on('close', (code) => {
      process.off('SIGINT', stop);
      const last = out.trim().split('\n').pop() ?? '';
      let value: unknown = null;
      try {
        value = JSON.parse(last);
      } catch {
        value = null;
      }
      resolvePromise({ code: code ?? 1, value, stderr: err });
    });
  });
}

/** Runs the measuring server in the foreground until it exits or this process is stopped (it is stopped too). */
export function runServerForeground(args: string[]): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const p = spawnEngine(['-m', 'torchtvm.remote.server', ...args], 'inherit');
    const forward = (sig: NodeJS.Signals) => () => p.kill(sig);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolvePromise(code ?? (signal ? 0 : 1));
    });
  });
}
