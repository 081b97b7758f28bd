// Builds the renderer (renderer/ → dist/renderer) and, as a last step, the Electron preload as one
// CommonJS file (dist/app/preload/preload.cjs): sandboxed preloads cannot be ES modules and may only
// require('electron'), so the preload and the contract code it uses are bundled together.
import { build as esbuild } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

function preloadBundle(): Plugin {
  return {
    name: 'torchtvm-preload-cjs',
    apply: 'build',
    async closeBundle() {
      await esbuild({
        entryPoints: [`${root}app/preload/preload.ts`],
        outfile: `${root}dist/app/preload/preload.cjs`,
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        external: ['electron'],
        minify: true,
        sourcemap: true,
        logLevel: 'warning',
      });
    },
  };
}

export default defineConfig({
  root: 'renderer',
  // Relative asset URLs: the same build loads from file:// (Electron) and http://127.0.0.1 (browser mode).
  base: './',
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: '../dist/renderer',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    sourcemap: true,
  },
  plugins: [preloadBundle()],
});
