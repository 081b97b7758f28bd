#!/usr/bin/env node
// Everything `npm install` must do after the node packages are in place: the Python env with the
// pinned engine stack and its lint tools, the native builds, the TypeScript/renderer build and the
// example model.
// Each step is skipped when its inputs have not changed since it last succeeded, so re-running is fast.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stampDir = join(root, '.setup-stamps');
const venvPython = join(root, '.venv', 'bin', 'python');
const only = process.argv.slice(2);

function run(cmd, args, opts = {}) {
  const shown = [cmd, ...args].map((a) => relative(root, a) || a).join(' ');
  console.log(`[setup] $ ${shown}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) throw new Error(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`"${shown}" exited with code ${r.status}`);
}

/** Hash of every file under the given paths (recursively), so a step reruns only when they change. */
function hashInputs(paths) {
  const h = createHash('sha256');
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        if (['build', 'node_modules', '__pycache__', 'lib', '.pytest_cache'].includes(name)) continue;
        if (name.endsWith('.egg-info')) continue;
        visit(join(p, name));
      }
    } else {
      h.update(relative(root, p));
      h.update(readFileSync(p));
    }
  };
  paths.forEach((p) => visit(join(root, p)));
  return h.digest('hex');
}

function step(name, inputs, outputs, fn) {
  if (only.length && !only.includes(name)) return;
  const stamp = join(stampDir, name);
  const digest = hashInputs(inputs);
  const fresh = existsSync(stamp) && readFileSync(stamp, 'utf8') === digest;
  if (fresh && outputs.every((o) => existsSync(join(root, o)))) {
    console.log(`[setup] ${name}: up to date`);
    return;
  }
  const t0 = Date.now();
  fn();
  mkdirSync(stampDir, { recursive: true });
  writeFileSync(stamp, digest);
  console.log(`[setup] ${name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// A new .venv takes 6.3 GiB, and pip holds the wheels (2.5 GiB) while it unpacks them.
const VENV_BYTES = 9 * 2 ** 30;

/** Fails before a long download that a full disk would break half-way, naming the space needed. */
function requireFreeSpace(bytes, what) {
  const fs = statfsSync(root);
  const free = fs.bavail * fs.bsize;
  if (free >= bytes) return;
  const gib = (n) => (n / 2 ** 30).toFixed(1);
  throw new Error(`${what} needs about ${gib(bytes)} GiB of disk, and ${root} has ${gib(free)} GiB free. Free some space (or clone to a larger disk).`);
}

function findPython() {
  for (const cand of [process.env.TORCHTVM_PYTHON, 'python3.11', 'python3']) {
    if (!cand) continue;
    const r = spawnSync(cand, ['-c', 'import sys; print(sys.version_info[:2] >= (3, 10))'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === 'True') return cand;
  }
  throw new Error('Python 3.10 or newer is needed to set up the engine: install it, or set TORCHTVM_PYTHON to its path.');
}

try {
  step('python-env', ['native/engine/requirements.lock'], ['.venv/bin/python'], () => {
    // No CPU-only torch is served by the registries we may use, so this is PyPI's default wheel
    // (its CUDA libraries install but are not used on a CPU-only machine).
    // An existing env is updated in place (pip installs only what the lock adds or changes), so a
    // new pin does not download the whole torch stack again.
    if (!existsSync(venvPython)) {
      requireFreeSpace(VENV_BYTES, 'the engine\'s Python env (torch with its CUDA libraries, TVM, their wheels while they unpack)');
      run(findPython(), ['-m', 'venv', '--clear', '.venv']);
    }
    run(venvPython, ['-m', 'pip', 'install', '--no-input', '-r', 'native/engine/requirements.lock']);
  });

  // The engine's lint and type-check tools (ruff, mypy, import-linter), run by `npm test`.
  step('python-dev', ['native/engine/requirements-dev.lock', 'native/engine/requirements.lock'], ['.venv/bin/ruff', '.venv/bin/mypy', '.venv/bin/lint-imports'], () => {
    run(venvPython, ['-m', 'pip', 'install', '--no-input', '-r', 'native/engine/requirements-dev.lock']);
  });

  step('engine', ['native/engine/pyproject.toml'], [], () => {
    run(venvPython, ['-m', 'pip', 'install', '--no-input', '--no-deps', '--no-build-isolation', '-e', 'native/engine']);
  });

  step('runtime', ['native/runtime', 'native/isa_cap', 'native/engine/requirements.lock'], ['native/engine/torchtvm/lib/libtorchtvm_runtime.so', 'native/engine/torchtvm/lib/libtorchtvm_cpuid_mask.so'], () => {
    run(venvPython, ['native/runtime/build.py']);
  });

  step('addon', ['native/addon', 'native/runtime', 'native/engine/requirements.lock', 'package.json'], ['native/addon/build/Release/torchtvm_addon.node'], () => {
    run(process.execPath, [join(root, 'node_modules/cmake-js/bin/cmake-js'), 'compile', '-d', 'native/addon', '-O', 'native/addon/build', '--CDPython3_EXECUTABLE=' + venvPython]);
  });

  step('typescript', ['app', 'renderer', 'tsconfig.json', 'vite.config.ts', 'package.json'], ['dist/app/cli/main.js'], () => {
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
    if (existsSync(join(root, 'renderer/index.html'))) run(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn']);
  });

  step('example-model', ['assets/make_example_model.py', 'native/engine/requirements.lock'], ['assets/models/resnet18.pt'], () => {
    run(venvPython, ['assets/make_example_model.py', 'assets/models/resnet18.pt']);
  });
} catch (err) {
  console.error(`\n[setup] failed: ${err.message}\n[setup] Fix the cause above and run "npm run setup" to continue where it stopped.`);
  process.exit(1);
}
