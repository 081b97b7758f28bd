// Where things live: the repository (engine, venv, native builds) and the user's workbench home.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  // Compiled files sit in dist/app/core, sources in app/core: walk up to the package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('Cannot find the TorchTVM Workbench installation folder.');
}

export const ROOT = process.env.TORCHTVM_ROOT ?? findRoot();

/** The Python of the bundled .venv (what `npm install` sets up, with the pinned torch and TVM). */
export function bundledPython(): string {
  return join(ROOT, '.venv', 'bin', 'python');
}

export const paths = {
  root: ROOT,
  /** The engine's Python for tests and scripts; the app asks settings.enginePython() (which also reads the setting). */
  python: process.env.TORCHTVM_PYTHON ?? bundledPython(),
  engineDir: join(ROOT, 'native', 'engine'),
  runtimeLib: join(ROOT, 'native', 'engine', 'torchtvm', 'lib', 'libtorchtvm_runtime.so'),
  addon: join(ROOT, 'native', 'addon', 'build', 'Release', 'torchtvm_addon.node'),
  rendererDist: join(ROOT, 'dist', 'renderer'),
  exampleModel: join(ROOT, 'assets', 'models', 'resnet18.pt'),
};

/** The user's workbench folder: projects, settings, recent files. */
export function workbenchHome(): string {
  return process.env.TORCHTVM_HOME ?? join(homedir(), '.torchtvm');
}

/** A model's project folder: builds, tuning work dir, exports, bench results. Stable per model path. */
export function projectDir(modelPath: string): string {
  const abs = resolve(modelPath);
  const id = createHash('sha256').update(abs).digest('hex').slice(0, 10);
  const stem = basename(abs).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
  return join(workbenchHome(), 'projects', `${stem}-${id}`);
}
