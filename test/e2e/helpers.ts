// Shared e2e plumbing: a tiny TorchScript model made by the project's Python, `torchtvm serve`
// started as users start it, and Debian's Chromium driven by playwright-core.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = resolve(import.meta.dirname, '../..');
export const PYTHON = join(ROOT, '.venv/bin/python');
/** Debian's Chromium; TORCHTVM_CHROMIUM overrides it (scripts/test.mjs reads the same variable). */
export const CHROMIUM = process.env.TORCHTVM_CHROMIUM || '/usr/bin/chromium';
export const SHOTS = join(ROOT, 'test-artifacts/screenshots');
export const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A two-layer MLP, traced and saved as TorchScript (input x: 4×32 float32): compiles in seconds.
 * Linear layers only: tuning a conv model currently crashes the engine in tvm::ffi::ToJSONGraph
 * (SIGSEGV, seen with TVM 0.27 on a conv+linear model), which is the engine's issue to fix.
 */
export const TINY_DIMS = '4,32';
export function makeTinyModel(dir: string): string {
  const out = join(dir, 'tiny.pt');
  const code = `
import sys, torch
torch.manual_seed(0)
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(32, 64)
        self.fc2 = torch.nn.Linear(64, 10)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
m = torch.jit.trace(Tiny().eval(), torch.randn(4, 32))
torch.jit.save(m, sys.argv[1])
`;
  const r = spawnSync(PYTHON, ['-c', code, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`making the tiny model failed: ${r.stderr}`);
  return out;
}

export interface Served {
  url: string;
  port: number;
  token: string;
  proc: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/**
 * Runs `node bin/torchtvm.js serve --port 0` and parses the URL it prints (http://127.0.0.1:P/#token=…).
 * The tests' models and exports live under the temp folder, so it is an allowed write root unless `env` says otherwise.
 */
export async function serve(env: Record<string, string> = {}): Promise<Served> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/torchtvm.js'), 'serve', '--port', '0'], { cwd: ROOT, env: { ...process.env, TORCHTVM_ALLOWED_ROOTS: tmpdir(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  proc.stdout!.on('data', (d) => (text += d));
  proc.stderr!.on('data', (d) => (text += d));
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve printed no URL in 60 s:\n${text}`)), 60_000);
    const check = () => {
      const m = /http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]+/.exec(text);
      if (m) {
        clearTimeout(timer);
        ok(m[0]);
      }
    };
    proc.stdout!.on('data', check);
    proc.on('exit', (code) => fail(new Error(`serve exited with ${code}:\n${text}`)));
  });
  const u = new URL(url);
  return {
    url,
    port: Number(u.port),
    token: new URLSearchParams(u.hash.slice(1)).get('token')!,
    proc,
    output: () => text,
    stop: () =>
      new Promise<void>((done) => {
        if (proc.exitCode !== null) return done();
        proc.once('exit', () => done());
        proc.kill('SIGTERM');
        setTimeout(() => proc.exitCode === null && proc.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

/** The page URL with a query (e.g. 'testHooks=1') before the #token fragment. */
export function pageUrl(served: { url: string }, query: string): string {
  const u = new URL(served.url);
  u.search = query;
  return u.toString();
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

export function hasChromium(): boolean {
  return existsSync(CHROMIUM);
}

export function shotPath(name: string): string {
  mkdirSync(SHOTS, { recursive: true });
  return join(SHOTS, `${name}.png`);
}

/** Open `path` from the Model page's path field (already shown) and wait for its inspection. */
export async function openModel(page: Page, path: string): Promise<void> {
  await page.fill('#model-path', path);
  await page.click('form button[type=submit]');
  await page.waitForSelector('[data-testid=inspection]', { timeout: 120_000 });
}

/** On the Inputs page (already shown): input 0's name, dims (numbers or symbols) and dtype. */
export async function setInput(page: Page, name: string, dims: string, dtype: string): Promise<void> {
  await page.getByLabel('input 0 name').fill(name);
  await page.getByLabel('input 0 dims').fill(dims);
  await page.getByLabel('input 0 dtype').selectOption(dtype);
}

export interface Session {
  dir: string;
  server: Served;
  browser: Browser;
  page: Page;
  /** Uncaught page errors and console errors, for a test to assert there were none. */
  pageErrors: string[];
  close(): Promise<void>;
}

/**
 * The set-up most e2e files repeat: a temp folder (with its own TORCHTVM_HOME), `torchtvm serve`,
 * Chromium, and one page on the served URL (with `query`, e.g. 'testHooks=1'), collecting errors.
 */
export async function openSession(opts: { prefix: string; query?: string; viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark'; env?: Record<string, string>; consoleErrors?: boolean }): Promise<Session> {
  const dir = tempDir(opts.prefix);
  const server = await serve({ TORCHTVM_HOME: join(dir, 'home'), ...opts.env });
  const browser = await launchChromium();
  const page = await browser.newPage({ viewport: opts.viewport ?? { width: 1280, height: 900 }, colorScheme: opts.colorScheme ?? 'light' });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // Console errors too, unless a test provokes them (a dropped connection logs one).
  if (opts.consoleErrors !== false) page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  await page.goto(opts.query ? pageUrl(server, opts.query) : server.url);
  return {
    dir,
    server,
    browser,
    page,
    pageErrors,
    close: async () => {
      await browser.close().catch(() => {});
      await server.stop();
    },
  };
}
