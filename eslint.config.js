// ESLint (flat config) for app/ and renderer/: the layer contract of DESIGN.md ("Processes and
// layers") as eslint-plugin-boundaries policies, plus typescript-eslint's recommended rules for real
// bugs. `npm run lint` runs it; `npm test` runs it too (scripts/test.mjs) and fails on any finding.
//
//   renderer → contract ← core ← {main, cli, server};  preload → contract
//
// - app/contract imports nothing of ours but itself, and of packages only zod.
// - app/core imports the contract (and Node, packages); never cli, server, main, preload or electron.
// - app/cli, app/server, app/main import core and the contract, not each other; except that the CLI's
//   `serve` command is browser mode's entry point, so cli may start app/server.
// - app/preload imports the contract, and of electron only contextBridge, ipcRenderer and webUtils
//   (pathForFile: a dropped file's path, which the sandboxed page cannot read itself).
// - renderer/src imports the contract (its types and its runtime schemas), never core or Node.
// - Only app/main and app/preload import electron.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import boundaries from 'eslint-plugin-boundaries';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

const LAYERS = ['contract', 'core', 'cli', 'server', 'main', 'preload', 'renderer'];
const el = (...types) => ({ element: { types } });
const mod = (origin, source) => ({ module: source ? { origin, source } : { origin } });
const packagesAndNode = [mod('external'), mod('core')];

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', '.venv/**', 'native/**', 'scripts/**', 'assets/**', 'test-artifacts/**', '*.config.*', 'bin/**'] },
  {
    files: ['app/**/*.ts', 'renderer/src/**/*.{ts,tsx}', 'test/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    plugins: { boundaries },
    settings: {
      'import/resolver': { typescript: { project: ['tsconfig.json', 'renderer/tsconfig.json'], noWarnOnMultipleProjects: true } },
      'boundaries/elements': [
        ...LAYERS.filter((l) => l !== 'renderer').map((type) => ({ type, pattern: `app/${type}` })),
        { type: 'renderer', pattern: 'renderer/src' },
      ],
    },
    rules: {
      'boundaries/dependencies': [
        'error',
        {
          default: 'disallow',
          checkAllOrigins: true, // packages and Node built-ins too, not only our own files
          message: 'layer break: {{from.element.type}} may not import {{to.module.source}}{{to.element.type}} (DESIGN.md, "Processes and layers")',
          // Last matching policy wins.
          policies: [
            { from: el('contract'), allow: { to: [el('contract'), mod('external', 'zod')] } },
            { from: el('core'), allow: { to: [el('core', 'contract'), ...packagesAndNode] } },
            { from: el('cli'), allow: { to: [el('cli', 'core', 'contract', 'server'), ...packagesAndNode] } },
            { from: el('server'), allow: { to: [el('server', 'core', 'contract'), ...packagesAndNode] } },
            { from: el('main'), allow: { to: [el('main', 'core', 'contract'), ...packagesAndNode] } },
            { from: el('preload'), allow: { to: [el('preload', 'contract')] } },
            { from: el('renderer'), allow: { to: [el('renderer', 'contract'), mod('external')] } },
            // electron: main may import it; the preload only its sandbox APIs (and types).
            { from: el('contract', 'core', 'cli', 'server', 'renderer'), disallow: { to: mod('external', 'electron') } },
            // A specifier selector matches when any one specifier does: allow the import, then refuse
            // it when it also names another runtime API (camelCase; PascalCase names are types).
            { from: el('preload'), allow: { to: mod('external', 'electron') } },
            {
              from: el('preload'),
              disallow: { to: mod('external', 'electron'), dependency: { kind: 'value', specifiers: '!(contextBridge|ipcRenderer|webUtils|[A-Z]*)' } },
              message: 'layer break: the preload may import only contextBridge, ipcRenderer and webUtils (and types) from electron (DESIGN.md, "Processes and layers")',
            },
          ],
        },
      ],
      // Modest otherwise: the point is the layer contract and real bugs, not style.
      '@typescript-eslint/no-unused-expressions': 'off', // flags the code base's `(a(), b++)` idiom
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['renderer/src/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    // rules-of-hooks only (real bugs), not the React Compiler rules of the plugin's presets.
    // exhaustive-deps is off: its findings here are deliberate memo keys (derived values, fit-once
    // effects); the code's `eslint-disable-line react-hooks/exhaustive-deps` comments stay harmless.
    rules: { 'react-hooks/rules-of-hooks': 'error', 'react-hooks/exhaustive-deps': 'off' },
  },
);
