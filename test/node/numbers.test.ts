// One definition of each number, everywhere (issue 22, items 2, 3 and 7): given one tuning run's
// events, result and work dir, the CLI (its printing code and `torchtvm log`), the Tune page (the
// record the store folds from the events: app/contract/tune-record.ts, the functions TuneView
// renders) and the log reader (the engine's `tuning_log`) show the same trial count, budget, first
// and best estimate, measured latency and ratio strings. Plus the formatters themselves: one
// unit-aware time, one way to say a speed-up, and a warning instead of a bold ratio the noise
// can explain or that is implausible.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Output, fmtMs as cliMs } from '../../app/cli/output.js';
import { printCompileResult, printPlacement, printTuning, tuneView } from '../../app/cli/commands/compile.js';
import { compareLatency, fmtMs, fmtSizes, fmtSpeedup, latencyRows } from '../../app/contract/format.js';
import { JobEventSchema, type JobEvent } from '../../app/contract/jobs.js';
import { CompileResultSchema, PlacementSchema, TuningLogSchema } from '../../app/contract/results.js';
import { etaSeconds, latestRun, runOfSummary, taskShares, tasksOfLog, tasksOfSummary, tuneFigures, tuneLine, tuneRecordOf } from '../../app/contract/tune-record.js';
import { paths } from '../../app/core/paths.js';
import { runCli } from './helpers.js';

function capture(): { out: Output; text: () => string } {
  let buf = '';
  const sink = { write: (s: string) => ((buf += s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  return { out: new Output(false, sink, sink), text: () => buf };
}

describe("the CLI's placement table", () => {
  it('shows where a call was timed inside the model too, with both algorithms, and nothing for the others', () => {
    // As the engine reports a 14x14 Winograd convolution that ran 1.4 ms in the model (0.43 alone)
    // and so runs the default 0.92 ms one (backend/placement.py, check_in_context).
    const op = (name: string, extra: object) => ({ name, kind: 'conv2d', shape: [1, 14, 14, 256], epilogue: ['bias'], where: 'library', ms: 0.92, share: 0.07, ...extra });
    const p = PlacementSchema.parse({
      mode: 'auto', library_ops: 2, tvm_ops: 0, library_ms: 1.0, tvm_ms: 0.1, total_ms: 1.1,
      ops: [op('a', { scope: 'layer3.0.conv2', alone_ms: { library: 0.863, winograd: 0.426 }, context_ms: { winograd: 1.4, library: 0.922 } }),
        op('b', { scope: 'layer3.0.conv1', alone_ms: { library: 0.472 } })],
    });
    const c = capture();
    printPlacement(p, c.out);
    const lines = c.text().split('\n');
    expect(lines.find((l) => l.startsWith('op '))).toContain('in the model');
    expect(lines.find((l) => l.includes('layer3.0.conv2'))).toMatch(/library 922 µs \/ Winograd 1\.40 ms$/);
    expect(lines.find((l) => l.includes('layer3.0.conv1'))).toMatch(/ -$/);
  });
});

describe('the formatters (app/contract/format.ts), shared by the CLI and the app', () => {
  it('writes a time with its unit, never 0.0000 ms', () => {
    expect(fmtMs(20e-6)).toBe('20 ns');
    expect(cliMs(20e-6)).toBe('20 ns');
    expect(fmtMs(0.0816)).toBe('81.6 µs');
    expect(fmtMs(0.129)).toBe('129 µs');
    expect(fmtMs(1.25)).toBe('1.25 ms');
    expect(fmtMs(289.8)).toBe('289.8 ms');
    expect(fmtMs(60_760)).toBe('60.8 s');
    expect(fmtMs(null)).toBe('–');
    expect(cliMs(null)).toBe('-');
  });

  it('says a ratio with its direction: "1.65× faster", "1.16× slower", never 0.61x', () => {
    expect(fmtSpeedup(1.65, 1)).toBe('1.65× faster');
    expect(fmtSpeedup(1, 1.16)).toBe('1.16× slower');
    expect(fmtSpeedup(1, 1 / 0.61)).toBe('1.64× slower');
    expect(fmtSpeedup(1, 1.001)).toBe('same speed');
  });

  it('shows a ratio in bold only when the measurement supports it', () => {
    const ok = compareLatency({ p50: 1.3, p90: 1.4, min: 1.2 }, { p50: 1, p90: 1.1, min: 0.95 });
    expect(ok).toMatchObject({ kind: 'faster', text: '1.30× faster', strong: true, warning: null });
    // The spreads overlap: the faster one's p90 reaches the slower one's p50.
    const noise = compareLatency({ p50: 1.05, p90: 1.3 }, { p50: 1, p90: 1.1 });
    expect(noise).toMatchObject({ kind: 'noise', strong: false });
    expect(noise.warning).toMatch(/within the noise.*Measure again/);
    // TorchScript 60.76 ms against TVM 81.6 µs: 745× from one tune is not believed.
    const absurd = compareLatency({ p50: 60.76, p90: 61 }, { p50: 0.0816, p90: 0.09 });
    expect(absurd).toMatchObject({ kind: 'implausible', text: '745× faster', strong: false });
    expect(absurd.warning).toMatch(/implausible.*measure again/i);
  });

  it('names the baseline as the engine does (a .pt2 is PyTorch eager) and says the sizes timed', () => {
    const s = { p50: 1, p90: 1.1, min: 0.9, runs: 30 };
    expect(latencyRows({ torch: s, tvm: { ...s, p50: 0.5, p90: 0.55 }, baseline: 'PyTorch eager' }).map((r) => r.label)).toEqual(['PyTorch eager', 'TVM']);
    expect(latencyRows({ torch: s, torch_frozen: s, tvm: s, baseline: 'TorchScript frozen' }).map((r) => r.label)).toEqual(['TorchScript', 'TorchScript frozen', 'TVM']);
    // TorchScript as loaded faster than frozen (small inputs): it is the baseline, frozen is compared with it.
    const rows = latencyRows({ torch: { ...s, p50: 0.077 }, torch_frozen: { ...s, p50: 0.291 }, tvm: { ...s, p50: 0.151 }, baseline: 'TorchScript' });
    expect(rows.map((r) => [r.label, r.baseline])).toEqual([['TorchScript', true], ['TorchScript frozen', false], ['TVM', false]]);
    expect(rows[2].vs!.text).toBe('1.96× slower');
    expect(fmtSizes({ batch: 1 })).toBe('at batch=1');
    expect(fmtSizes({})).toBe('');
  });

  it('keeps a task table\'s shares on the headline\'s total, the library kernels in it', () => {
    const tasks = [
      { id: 0, name: 'conv', weight: 2, trials: 3, errors: 0, best_ms: 0.5, default_ms: 1, library_ms: 0.3 }, // the library wins
      { id: 1, name: 'add', weight: 1, trials: 3, errors: 0, best_ms: 2, default_ms: 1, library_ms: null }, // the default wins
      { id: 2, name: 'dense', weight: 1, trials: 3, errors: 1, best_ms: 0.2, default_ms: 0.4, library_ms: 0.5 }, // the record wins
    ];
    const { rows, total, library } = taskShares(tasks);
    expect(rows.map((r) => r.as)).toEqual(['library', 'default', 'record']);
    expect(total).toBeCloseTo(2 * 0.3 + 1 + 0.2, 12);
    expect(rows.reduce((a, r) => a + (r.share ?? 0), 0)).toBeCloseTo(1, 12);
    expect(library).toMatchObject({ tasks: 1 });
    expect(library.ms).toBeCloseTo(0.6, 12);
  });

  it('gives the estimate axis round ticks even when the estimate moved by a few %', async () => {
    // charts.tsx reaches the store, which reads the theme from localStorage when it loads.
    (globalThis as { localStorage?: unknown }).localStorage ??= { getItem: () => null, setItem: () => undefined };
    const { logTicks } = await import('../../renderer/src/charts.js');
    // 129 µs to 120 µs on a log axis: one 1-2-5 tick (or none) before; round steps now.
    const { ticks, domain } = logTicks(0.12, 0.129);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks.every((t) => t >= domain[0] && t <= domain[1])).toBe(true);
    expect(logTicks(0.001, 10).ticks).toEqual([0.001, 0.01, 0.1, 1, 10]);
  });

  it('estimates the time left from this run\'s own trials, never from resumed records', () => {
    const ev = (n: number, t: number): JobEvent => ({ event: 'tune.trial', job: 'tune-1-a', data: { task_id: 0, task_name: 'k', trial: n, total_trials: 100 + n, latency_ms: 1, best_ms: 1, estimated_total_ms: 1, time_s: t } });
    const start: JobEvent = { event: 'tune.tasks', job: 'tune-1-a', data: { tasks: [{ id: 0, name: 'k', weight: 1, default_ms: 2, records: 100, best_ms: 1.5 }], budget: 300, resumed_records: 100, estimated_ms: 1.5 } };
    // A first batch of 4 (its events within half a second), then one trial every 3 s: the rate counts
    // from the end of that batch (2 trials in 5.9 s), and 194 to go take about 10 minutes, not 10 s.
    const rec = tuneRecordOf([start, ev(1, 1000), ev(2, 1000), ev(3, 1000), ev(4, 1000.1), ev(5, 1003), ev(6, 1006)]);
    expect(rec).toMatchObject({ budget: 300, resumed: 100, trials: 6, total: 106, first_estimate_ms: 1.5, estimate_ms: 1 });
    expect(etaSeconds(rec)).toBeCloseTo((194 * (1006 - 1000.1)) / 2, 6);
    expect(tuneFigures(rec)).toMatchObject({ trials: '106 of 300', split: '6 this run, 100 resumed', first: '1.50 ms', best: '1.00 ms' });
  });
});

describe('one run, four readers: the same figures', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ttvm-numbers-'));
    const r = spawnSync(paths.python, [join(paths.root, 'test/fixtures/make_tune_models.py'), dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`making models failed: ${r.stderr}`);
  });

  it('the CLI, the Tune page and the log reader agree on trials, budget, estimates, measured latency and ratio', async () => {
    const wd = join(dir, 'wd');
    const run = await runCli(['compile', join(dir, 'two_op.pt'), '--input', 'x:4,32:float32', '--trials', '4', '--work-dir', wd, '--out-dir', join(dir, 'build'), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const events = run.lines.filter((l) => 'event' in l).map((l) => JobEventSchema.parse(l));
    const result = CompileResultSchema.parse((run.lines.at(-1) as { result: unknown }).result);
    const tuning = result.tuning!;
    const measured = result.latency_ms!.tvm.p50;

    // The Tune page: the record the store folds from the run's events (and the measured p50 of its result).
    const page = tuneRecordOf(events.filter((e) => e.event === 'tune.tasks' || e.event === 'tune.trial'));
    // The CLI: its summary of the result; the log reader: the engine's record of the run in the work dir.
    const cli = runOfSummary(tuning);
    const shown = await runCli(['log', wd, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    const log = TuningLogSchema.parse((shown.lines.at(-1) as { result: unknown }).result);
    const logged = latestRun(log)!;
    expect(logged).not.toBeNull();

    const figures = tuneFigures(page, measured);
    expect(figures.trials).toBe('4 of 4');
    expect(figures.split).toBe('4 this run');
    expect(tuneFigures(cli)).toEqual(figures);
    expect(tuneFigures(logged)).toEqual(figures);
    expect(fmtMs(log.estimated_ms)).toBe(figures.best);
    expect(log.records).toBe(page.total);
    expect(events.filter((e) => e.event === 'tune.trial')).toHaveLength(4);
    // The estimate is labelled as one and is never a speed-up; the first is where the run started.
    expect(page.first_estimate_ms).toBe(tuning.first_estimate_ms);
    expect(page.estimate_ms! <= page.first_estimate_ms!).toBe(true);

    // Per task: the same time as run and share of the estimate, from the events, the result and the log.
    const fmtShares = (ts: Parameters<typeof taskShares>[0]) => taskShares(ts).rows.map((r) => `${r.task.name} ${r.as} ${fmtMs(r.ms)} ${((r.share ?? 0) * 100).toFixed(1)}%`);
    const pageShares = fmtShares(Object.values(page.tasks));
    expect(fmtShares(tasksOfSummary(tuning))).toEqual(pageShares);
    expect(fmtShares(tasksOfLog(log))).toEqual(pageShares);

    // The CLI's own printing: the run line, the measured latency and the ratio the app shows.
    const c = capture();
    printCompileResult(result, c.out);
    printTuning(tuning, c.out, result.latency_ms);
    const text = c.text();
    expect(text).toContain(tuneLine(page, measured, '-'));
    const tvmRow = latencyRows(result.latency_ms!).at(-1)!;
    expect(text).toContain(tvmRow.vs!.text);
    expect(text).not.toMatch(/\d\.\d+x\b/); // no bare "0.61x"
    expect(text).not.toMatch(/0\.0000 ms/);
    // `torchtvm log` in words: the same run line.
    const human = await runCli(['log', wd]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(tuneLine(logged, undefined, '-'));
    expect(human.stdout).toContain(`Estimated end-to-end (sum of kernels, not a measurement): ${cliMs(log.estimated_ms)}`);

    // The CLI's live line folds the same record.
    const live = capture();
    const view = tuneView(4, live.out);
    for (const e of events) view(e);
    expect(live.text()).toContain(`4/4  est ${cliMs(page.estimate_ms)}`);
  });
});
