#!/usr/bin/env node
// Entry point of `npx torchtvm`: the compiled CLI (built by `npm install`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/app/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  console.error('error: the workbench is not built; run "npm install" (or "npm run setup") in its folder first.');
  process.exit(2);
}
await import(main);
