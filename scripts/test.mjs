#!/usr/bin/env node
// `npm test`: lint and type checks (ESLint with the layer rules, tsc for app/, renderer/ and test/, ruff,
// mypy and import-linter for the engine), then the engine's pytest suite, its kernel tests again
// under TORCHTVM_MAX_CPU_ISA=avx2 (on an AVX-512 CPU), the Node suite (core, CLI, addon) and the e2e suite (browser mode in Chromium, and the Electron window where its binary is
// installed). Every suite runs even if an earlier one fails; the exit code is the first failure's.
//
// `node scripts/test.mjs [lint] [python] [kernels-avx2] [node] [e2e]` runs only the named suites.
//
// The summary says what was not tested: counts come from the runners' own reports (vitest's JSON
// reporter, pytest's JUnit XML), skips are counted by cause (pytest: by reason), and a suite whose
// tests skipped for want of Chromium or of Electron's binary names the command that fixes it. Under
// CI=true a missing Chromium fails the run. The last line is `N passed, N failed, N skipped` over
// all suites (each lint/type check counts as one test).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const venvBin = join(root, '.venv', 'bin');
const python = join(venvBin, 'python');
const engineDir = join(root, 'native', 'engine');
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const reports = join(root, 'test-artifacts', 'reports');
const ci = /^(1|true)$/i.test(process.env.CI ?? '');
// The same Chromium test/e2e/helpers.ts drives (TORCHTVM_CHROMIUM overrides it, e.g. to hide it).
const chromium = process.env.TORCHTVM_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_FIX = 'apt-get install chromium';
const ELECTRON_FIX = 'node node_modules/electron/install.js';

if (!existsSync(python)) {
  console.error('The engine is not set up: run "npm install" first.');
  process.exit(2);
}

function electronBinary() {
  try {
    const p = createRequire(join(root, 'package.json'))('electron');
    return typeof p === 'string' && existsSync(p) ? p : null;
  } catch {
    return null;
  }
}

// Plain output: NO_COLOR, and no FORCE_COLOR at all (vitest, pytest and ruff take any FORCE_COLOR,
// even 0, as a request for colour).
const { FORCE_COLOR: _forceColor, ...env } = process.env;
env.NO_COLOR = '1';
function exec(cmd, args, cwd = root, extraEnv = {}) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit', env: { ...env, ...extraEnv } });
  if (r.error) console.error(`could not run ${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// ---- lint and type checks -------------------------------------------------------------------------

function mypyArgs() {
  // Config-driven: when [tool.mypy] names its files, mypy takes them from there; otherwise the package.
  const toml = readFileSync(join(engineDir, 'pyproject.toml'), 'utf8');
  const section = /^\[tool\.mypy\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml);
  return section && /^\s*(files|packages|modules)\s*=/m.test(section[1]) ? [] : ['torchtvm'];
}

function lint() {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const eslint = join(root, 'node_modules', 'eslint', 'bin', 'eslint.js');
  const checks = [
    ['eslint', process.execPath, [eslint, '--max-warnings=0', '.']],
    ['tsc app', process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit']],
    ['tsc renderer', process.execPath, [tsc, '-p', 'renderer/tsconfig.json']],
    ['tsc tests', process.execPath, [tsc, '-p', 'tsconfig.tests.json']],
    ['ruff', join(venvBin, 'ruff'), ['check', '.'], engineDir],
    ['mypy', join(venvBin, 'mypy'), mypyArgs(), engineDir],
    ['lint-imports', join(venvBin, 'lint-imports'), [], engineDir],
  ];
  const failed = [];
  for (const [name, cmd, args, cwd] of checks) {
    console.log(`\n--- ${name} ---`);
    if (!existsSync(cmd)) {
      console.error(`${cmd} is missing: run "npm run setup" (it installs native/engine/requirements-dev.lock).`);
      failed.push(name);
      continue;
    }
    if (exec(cmd, args, cwd) !== 0) failed.push(name);
  }
  const n = checks.length;
  return {
    code: failed.length ? 1 : 0,
    passed: n - failed.length,
    failed: failed.length,
    skipped: 0,
    detail: failed.length ? `${failed.length} of ${n} checks failed: ${failed.join(', ')}` : `${n} checks: ${checks.map((c) => c[0]).join(', ')}`,
  };
}

// ---- pytest -----------------------------------------------------------------------------------------

const unescapeXml = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d))).replace(/&amp;/g, '&');

/** pytest on `paths`; `launcher`: arguments to python that run the python given last (run_capped). */
function pytest(report = 'pytest.xml', paths = ['test/python'], extraEnv = {}, launcher = []) {
  const xml = join(reports, report);
  rmSync(xml, { force: true });
  const code = exec(python, [...launcher, '-m', 'pytest', '-q', '-rs', `--junitxml=${xml}`, ...paths], root, extraEnv);
  if (!existsSync(xml)) return { code: code || 1, passed: 0, failed: 1, skipped: 0, detail: 'pytest wrote no report' };
  const text = readFileSync(xml, 'utf8');
  let tests = 0, failed = 0, skipped = 0;
  for (const m of text.matchAll(/<testsuite\b([^>]*)>/g)) {
    const attr = (k) => Number(new RegExp(`\\b${k}="(\\d+)"`).exec(m[1])?.[1] ?? 0);
    tests += attr('tests');
    failed += attr('failures') + attr('errors');
    skipped += attr('skipped');
  }
  const reasons = new Map();
  for (const m of text.matchAll(/<skipped\b[^>]*?\bmessage="([^"]*)"/g)) {
    const reason = unescapeXml(m[1]).replace(/^Skipped: /, '');
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  const lines = [...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) => `    ${n} skipped: ${r}`);
  // A run that failed without a failing test (collection error, crash) still counts as a failure.
  if (code !== 0 && failed === 0) failed = 1;
  return { code, passed: tests - failed - skipped, failed, skipped, detail: '', extra: lines };
}

// The kernel tests again with TORCHTVM_MAX_CPU_ISA=avx2: on an AVX-512 machine they then run the
// code an AVX2 desktop runs (the runtime's kernels, oneDNN, ATen and TVM's target all capped), and,
// where the kernel lets CPUID fault, with CPUID itself masked (torchtvm.common.run_capped), so that
// every library in the process picks its code as on an AVX2 CPU.
const KERNEL_TESTS = ['test/python/backend', 'test/python/common/test_isa_cap.py'];

function pytestAvx2() {
  const flags = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  if (!/\bavx512f\b/.test(flags)) {
    return { code: 0, passed: 0, failed: 0, skipped: 0, detail: 'not run: this CPU has no AVX-512, so the python suite already ran the AVX2 code' };
  }
  const probe = spawnSync(python, ['-c', 'from torchtvm.common import isa_cap; print(isa_cap.cpuid_mask_unavailable() or "")'], { cwd: root, encoding: 'utf8' });
  const noMask = probe.status === 0 ? probe.stdout.trim() : `the probe failed: ${(probe.stderr || '').trim().split('\n').pop()}`;
  const result = pytest('pytest-avx2.xml', KERNEL_TESTS, { TORCHTVM_MAX_CPU_ISA: 'avx2' }, ['-m', 'torchtvm.common.run_capped', 'avx2', '--', python]);
  const how = noMask ? `CPUID not masked (${noMask}): torch, oneDNN, the runtime and TVM capped by their variables` : 'CPUID masked: every library saw an AVX2 CPU';
  return { ...result, detail: [result.detail, how].filter(Boolean).join('; ') };
}

// ---- vitest -----------------------------------------------------------------------------------------

/** What a skipped test in `file` was waiting for, when a known gate is closed here. */
function skipCauses() {
  const causes = [];
  if (!existsSync(chromium)) causes.push({ key: 'chromium', what: `Chromium (${chromium})`, fix: CHROMIUM_FIX, gates: (src) => src.includes('hasChromium(') });
  if (!electronBinary()) causes.push({ key: 'electron', what: "Electron's binary", fix: ELECTRON_FIX, gates: (src, file) => basename(file) === 'electron.e2e.test.ts' });
  if (!existsSync(join(root, 'dist/app/preload/preload.cjs'))) causes.push({ key: 'preload', what: 'the preload bundle (dist/app/preload/preload.cjs)', fix: 'npm run build', gates: (src, file) => basename(file) === 'preload.test.ts' });
  return causes;
}

function vitestSuite(project) {
  const json = join(reports, `vitest-${project}.json`);
  rmSync(json, { force: true });
  const code = exec(process.execPath, [vitest, 'run', '--project', project, '--reporter=default', '--reporter=json', `--outputFile.json=${json}`]);
  if (!existsSync(json)) return { code: code || 1, passed: 0, failed: 1, skipped: 0, detail: 'vitest wrote no report' };
  const report = JSON.parse(readFileSync(json, 'utf8'));
  const causes = skipCauses();
  const byCause = new Map();
  let passed = 0, failed = 0, skipped = 0;
  for (const file of report.testResults) {
    const src = existsSync(file.name) ? readFileSync(file.name, 'utf8') : '';
    let fileFailed = 0;
    for (const t of file.assertionResults) {
      if (t.status === 'passed') passed++;
      else if (t.status === 'failed') failed++, fileFailed++;
      else {
        skipped++;
        const cause = causes.find((c) => c.gates(src, file.name));
        const key = cause?.key ?? 'other';
        byCause.set(key, { cause, n: (byCause.get(key)?.n ?? 0) + 1 });
      }
    }
    // A file that failed outside any test (an import error, a failing beforeAll hook) counts once.
    if (file.status === 'failed' && fileFailed === 0) failed++;
  }
  if (code !== 0 && failed === 0) failed = 1;
  const parts = [...byCause.values()].map(({ cause, n }) => (cause ? `${n} for want of ${cause.what}: fix with \`${cause.fix}\`` : `${n} skipped by the tests themselves`));
  const chromiumSkips = byCause.get('chromium')?.n ?? 0;
  return { code, passed, failed, skipped, detail: parts.join('; '), chromiumSkips };
}

// ---- run --------------------------------------------------------------------------------------------

const suites = [
  ['lint', lint],
  ['python', () => pytest()],
  ['kernels-avx2', pytestAvx2],
  ['node', () => vitestSuite('node')],
  ['e2e', () => vitestSuite('e2e')],
];
const only = process.argv.slice(2);
const unknown = only.filter((n) => !suites.some(([s]) => s === n));
if (unknown.length) {
  console.error(`unknown suite ${unknown.join(', ')}: choose from ${suites.map(([s]) => s).join(', ')}`);
  process.exit(2);
}
mkdirSync(reports, { recursive: true });
// One scratch folder for the whole run, as every child's TMPDIR (Node's os.tmpdir(), Python's
// tempfile, Chromium): tests need not each remove theirs, and nothing is left behind in /tmp.
const scratch = mkdtempSync(join(tmpdir(), 'torchtvm-test-'));
env.TMPDIR = scratch;

let exit = 0;
const lines = [];
const total = { passed: 0, failed: 0, skipped: 0 };
const problems = [];
for (const [name, fn] of suites) {
  if (only.length && !only.includes(name)) continue;
  console.log(`\n=== ${name} ===`);
  const t0 = Date.now();
  const r = fn();
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  if (name === 'e2e' && ci && !existsSync(chromium)) {
    problems.push(`CI=true and Chromium is missing (${chromium}), so ${plural(r.chromiumSkips ?? 0, 'browser e2e test')} did not run: that fails the run. Fix with \`${CHROMIUM_FIX}\`.`);
    if (r.code === 0) r.code = 1;
  }
  for (const k of Object.keys(total)) total[k] += r[k];
  const counts = name === 'lint' || (r.passed + r.failed + r.skipped === 0 && r.detail) ? r.detail : `${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${r.detail ? ` (${r.detail})` : ''}`;
  lines.push(`${name}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`} in ${secs} s: ${counts}`, ...(r.extra ?? []));
  if (r.code !== 0 && exit === 0) exit = r.code;
}
console.log('\n=== summary ===');
console.log(lines.join('\n'));
for (const p of problems) console.log(p);
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
rmSync(scratch, { recursive: true, force: true });
process.exit(exit);
