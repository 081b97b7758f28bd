#!/usr/bin/env node
// `npm start`: opens the desktop app when Electron's binary is installed; otherwise says how to get
// it, or to use browser mode (`npx torchtvm serve`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist/app/main/main.js');

function electronBinary() {
  try {
    // Under plain Node, the electron package exports the binary's path, and throws when it was never downloaded.
    const p = createRequire(import.meta.url)('electron');
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

const bin = electronBinary();
if (!bin) {
  console.error(`Electron's binary is missing (installed with ELECTRON_SKIP_BINARY_DOWNLOAD=1, or its download failed).
Get it with one of:
  npm install                             (without ELECTRON_SKIP_BINARY_DOWNLOAD set)
  node node_modules/electron/install.js
Or use the workbench in a browser, no Electron needed:
  npx torchtvm serve                      (then open the printed http://127.0.0.1:…/?token=… URL)`);
  process.exit(1);
}
if (!existsSync(main) || !existsSync(join(root, 'dist/renderer/index.html')) || !existsSync(join(root, 'dist/app/preload/preload.cjs'))) {
  console.error('The app is not built: run "npm run build" (or "npm run setup") first.');
  process.exit(2);
}
const child = spawn(bin, [main, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined } });
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 0)));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
