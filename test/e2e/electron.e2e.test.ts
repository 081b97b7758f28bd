// Electron smoke test: the real app window, through playwright-core's _electron. Runs only where
// Electron's binary is installed (not on the build machines: ELECTRON_SKIP_BINARY_DOWNLOAD=1).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { _electron } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { API_METHODS } from '../../app/contract/api.js';
import { ROOT, shotPath, tempDir } from './helpers.js';

function electronBinary(): string | null {
  try {
    const p = createRequire(import.meta.url)('electron') as unknown;
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

const bin = electronBinary();
if (!bin) console.warn("[electron e2e] skipped: Electron's binary is not installed here (ELECTRON_SKIP_BINARY_DOWNLOAD=1). Run `node node_modules/electron/install.js` to enable this test.");

describe('Electron app', () => {
  it.skipIf(!bin)('opens one sandboxed window exposing exactly window.workbench', async () => {
    const app = await _electron.launch({ executablePath: bin!, args: [join(ROOT, 'dist/app/main/main.js')], env: { ...process.env, TORCHTVM_HOME: join(tempDir('torchtvm-electron-'), 'home') } as Record<string, string> });
    try {
      const page = await app.firstWindow();
      await page.waitForSelector('nav');
      expect(app.windows()).toHaveLength(1);
      const r = await page.evaluate(() => ({ req: typeof (globalThis as any).require, proc: typeof (globalThis as any).process, keys: Object.keys((window as any).workbench ?? {}).sort() }));
      expect(r.req).toBe('undefined');
      expect(r.proc).toBe('undefined');
      expect(r.keys).toEqual([...API_METHODS, 'onEvent', 'onMenu', 'pathForFile'].sort());
      const info = await page.evaluate(() => (window as any).workbench.info());
      expect(info.host).toBe('electron');
      await expect(page.evaluate(() => (window as any).workbench.cancelJob({ job: 1 }))).rejects.toThrow(/Invalid arguments/);
      const prefs = await app.evaluate(({ BrowserWindow }) => {
        const w = BrowserWindow.getAllWindows()[0];
        // Electron has it; its typings of this version do not declare it.
        const p = (w.webContents as unknown as { getLastWebPreferences(): Electron.WebPreferences | null }).getLastWebPreferences();
        return { sandbox: p?.sandbox, contextIsolation: p?.contextIsolation, nodeIntegration: p?.nodeIntegration };
      });
      expect(prefs).toEqual({ sandbox: true, contextIsolation: true, nodeIntegration: false });
      // window.open and navigation are denied
      await page.evaluate(() => window.open('https://example.com'));
      await page.evaluate(() => (location.href = 'https://example.com')).catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
      expect(app.windows()).toHaveLength(1);
      expect(page.url()).toMatch(/^file:.*index\.html/);
      await page.screenshot({ path: shotPath('30-electron-window') });
    } finally {
      await app.close();
    }
  });
});
