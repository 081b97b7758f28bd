// The built preload (dist/app/preload/preload.cjs) run against a fake `electron`: it exposes exactly
// one object, exactly the allow-list, validates before it sends, and is a CommonJS file that only
// requires 'electron' (what a sandboxed preload may do).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { API_METHODS, CHANNELS } from '../../app/contract/api.js';

const bundle = join(import.meta.dirname, '../../dist/app/preload/preload.cjs');

function loadPreload() {
  const exposed: Record<string, unknown> = {};
  const sent: unknown[][] = [];
  type Listener = (...a: unknown[]) => unknown;
  const listeners: Record<string, Listener[]> = {};
  const required: string[] = [];
  const electron = {
    contextBridge: { exposeInMainWorld: (k: string, v: unknown) => (exposed[k] = v) },
    ipcRenderer: {
      invoke: async (...a: unknown[]) => (sent.push(a), { ok: true, result: { echoed: a[1] } }),
      on: (ch: string, f: Listener) => (listeners[ch] ??= []).push(f),
      removeListener: (ch: string, f: Listener) => (listeners[ch] = (listeners[ch] ?? []).filter((x) => x !== f)),
    },
    webUtils: { getPathForFile: () => '/dropped/model.pt' },
  };
  const module = { exports: {} };
  runInNewContext(readFileSync(bundle, 'utf8'), {
    module,
    exports: module.exports,
    require: (name: string) => {
      required.push(name);
      if (name === 'electron') return electron;
      throw new Error(`a sandboxed preload cannot require ${name}`);
    },
  });
  return { exposed, sent, listeners, required };
}

describe.skipIf(!existsSync(bundle))('preload bundle', () => {
  it('exposes only window.workbench with exactly the allow-list', () => {
    const { exposed, required } = loadPreload();
    expect(Object.keys(exposed)).toEqual(['workbench']);
    const wb = exposed.workbench as Record<string, unknown>;
    expect(Object.keys(wb).sort()).toEqual([...API_METHODS, 'onEvent', 'onMenu', 'pathForFile'].sort());
    expect(Object.isFrozen(wb)).toBe(true);
    expect(new Set(required)).toEqual(new Set(['electron']));
  });

  it('validates calls before sending them and forwards events', async () => {
    const { exposed, sent, listeners } = loadPreload();
    const wb = exposed.workbench as Record<string, (...a: unknown[]) => unknown>;
    await expect(wb.cancelJob({ job: 3 })).rejects.toThrow(/Invalid arguments/);
    await expect(wb.startJob({ kind: 'shell' })).rejects.toThrow();
    expect(sent).toEqual([]);
    expect(await wb.listJobs()).toEqual({ echoed: 'listJobs' });
    expect(sent).toEqual([[CHANNELS.invoke, 'listJobs', []]]);
    const got: unknown[] = [];
    const off = wb.onEvent((e: unknown) => got.push(e)) as () => void;
    listeners[CHANNELS.event][0]({}, { event: 'log', job: 'j', data: { level: 'info', message: 'x' } });
    off();
    expect(got).toHaveLength(1);
    expect(listeners[CHANNELS.event]).toHaveLength(0);
    expect(wb.pathForFile({})).toBe('/dropped/model.pt');
  });
});
