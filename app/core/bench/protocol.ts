// Messages between the bench host (app/core) and the bench child process that loads the addon.
// Plain JSON over the child's IPC channel (child_process.fork or Electron's utilityProcess).
import type { InputSpec } from '../../contract/specs.js';

export type BenchMethod = 'inspect' | 'benchmark' | 'cancel';

export interface BenchChildRequest {
  id: number;
  method: BenchMethod;
  params: Record<string, unknown>;
}

export interface BenchmarkParams {
  models: string[];
  inputs?: InputSpec[];
  warmup: number;
  iterations: number;
  threads?: number;
  /** One clock around the whole loop and no samples: the harness-free reference timing. */
  bare?: boolean;
}

/** [model index, iteration, latency in ms] */
export type SampleTuple = [number, number, number];

export type BenchChildMessage =
  | { ready: true; pid: number; runtime: { path: string; loaded: boolean; error?: string } }
  | { id: number; samples: SampleTuple[] }
  | { id: number; result: Record<string, unknown> }
  | { id: number; error: { code: string; message: string; detail?: string } };

export interface AddonStats {
  min: number;
  max: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  stddev: number;
  runs: number;
}

export interface AddonModelRun {
  path: string;
  input_style: 'list' | 'positional';
  first_ms: number;
  stats: AddonStats;
  bare_mean_ms?: number;
}

/** What the addon's benchmark() resolves with (see native/addon/src/addon.cc). */
export interface AddonBenchResult {
  threads: number;
  iterations: number;
  cancelled: boolean;
  inputs: Array<{ name: string; shape: number[]; dtype: string }>;
  models: AddonModelRun[];
  /** Added by the child: where the input specs came from. */
  inputs_from?: 'request' | 'model' | 'metadata';
}
