// "Bring your own Python": the engine runs in the Python named by TORCHTVM_PYTHON or the python
// setting, after its torch / apache-tvm versions are checked against the pinned ones.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../app/contract/errors.js';
import { EngineClient } from '../../app/core/engine-client/engine-client.js';
import { bundledPython, paths } from '../../app/core/paths.js';
import { enginePython, writeSettings } from '../../app/core/settings.js';
import { makeModels, tmpHome } from './helpers.js';

let models: string;
let home: string;
const systemPython = execFileSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).trim();

/** A "python" that runs the system Python with fake package metadata (torch 2.9.0 etc.) on its path. */
function fakePython(dir: string, versions: Record<string, string>): string {
  const site = join(dir, 'site');
  for (const [name, ver] of Object.entries(versions)) {
    const info = join(site, `${name.replace(/-/g, '_')}-${ver}.dist-info`);
    mkdirSync(info, { recursive: true });
    writeFileSync(join(info, 'METADATA'), `Metadata-Version: 2.1\nName: ${name}\nVersion: ${ver}\n`);
  }
  const exe = join(dir, 'python');
  writeFileSync(exe, `#!/bin/sh\nPYTHONPATH=${site} exec ${systemPython} "$@"\n`);
  chmodSync(exe, 0o755);
  return exe;
}

async function failure(python?: string): Promise<WorkbenchError> {
  const engine = new EngineClient(python ? { python } : {});
  try {
    return await engine.request('versions', {}).done.then(() => { throw new Error('expected a failure'); }, (e) => e);
  } finally {
    await engine.close();
  }
}

beforeAll(() => {
  models = makeModels();
});
afterEach(() => {
  delete process.env.TORCHTVM_PYTHON;
});

describe('the engine Python', () => {
  it('defaults to the bundled .venv', () => {
    home = tmpHome();
    process.env.TORCHTVM_HOME = home;
    expect(enginePython()).toEqual({ python: bundledPython(), source: 'bundled' });
  });

  it('refuses a Python without torch with a sentence naming what is missing and who chose it', async () => {
    process.env.TORCHTVM_PYTHON = systemPython;
    const err = await failure();
    expect(err.code).toBe('python_incompatible');
    expect(err.message).toMatch(/torch is not installed \(the engine needs torch==2\.15/);
    expect(err.message).toMatch(/pip install .*apache-tvm==0\.27/);
    expect(err.message).toMatch(/chosen by TORCHTVM_PYTHON/);
  });

  it('refuses mismatched versions', async () => {
    const dir = join(tmpHome(), 'fake');
    const py = fakePython(dir, { torch: '2.9.0', 'apache-tvm': '0.27.1', 'apache-tvm-ffi': '0.1.14' });
    const err = await failure(py);
    expect(err.code).toBe('python_incompatible');
    expect(err.message).toMatch(/it has torch 2\.9\.0 but the engine needs 2\.15\.x/);
    expect(err.message).not.toMatch(/apache-tvm 0\.27\.1/); // same minor: compatible
  });

  it('says so when the named Python does not exist', async () => {
    process.env.TORCHTVM_PYTHON = '/nonexistent/bin/python';
    const err = await failure();
    expect(err.code).toBe('python_missing');
    expect(err.message).toMatch(/\/nonexistent\/bin\/python \(from TORCHTVM_PYTHON\) does not exist/);
  });

  it('runs the engine in the Python the setting names, once it passes the check', async () => {
    process.env.TORCHTVM_HOME = home;
    // Another path to a Python with the pinned packages (as the user's own env would be).
    const link = join(home, 'my-python');
    writeFileSync(link, `#!/bin/sh\nexec ${bundledPython()} "$@"\n`);
    chmodSync(link, 0o755);
    writeSettings({ python: link });
    expect(enginePython()).toEqual({ python: link, source: 'setting' });
    const engine = new EngineClient();
    try {
      const v = (await engine.request('versions', {}).done) as { torch: string; tvm: string };
      expect(v.torch).toMatch(/^2\.15/);
      const r = (await engine.request('inspect', { model: join(models, 'mlp.pt') }).done) as { ops: Record<string, number> };
      expect(Object.keys(r.ops).length).toBeGreaterThan(0);
    } finally {
      await engine.close();
      writeSettings({ python: undefined });
    }
    expect(paths.python).toBe(bundledPython());
  });
});
