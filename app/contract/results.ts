// Shapes of job results that the CLI and the renderer read. The engine produces them; core checks
// the parts it relies on.
import type { InputSpec } from './specs.js';

export interface LatencyStats {
  p50: number;
  p90: number;
  p99?: number;
  min: number;
  mean: number;
  stddev?: number;
  runs: number;
}

export interface OutputCheck {
  index: number;
  shape: number[];
  dtype: string;
  ok: boolean;
  max_abs: number | null;
  max_rel: number | null;
  atol?: number;
  rtol?: number;
}

export interface Verification {
  ok: boolean;
  outputs: OutputCheck[];
  checks?: Array<{ ok: boolean; outputs: OutputCheck[]; input_shapes: number[][] }>;
}

export interface InspectResult {
  path: string;
  inputs: Array<{ name: string; type: string; shape?: number[]; dtype?: string }>;
  ops: Record<string, number>;
  parameters: { count: number; bytes: number; tensors: number };
  exported: Record<string, unknown> | null;
}

export interface CompileResult {
  model: string;
  inputs: InputSpec[];
  target: { kind: string; mcpu: string | null; features: string[] };
  num_outputs: number;
  timings_s: { import: number; build: number };
  verification: Verification;
  threads: number;
  latency_ms?: { torch: LatencyStats; tvm: LatencyStats; ratio: number };
  files: { library?: string; partitioned?: string; exported?: string; workDir?: string };
  tuning?: Record<string, unknown>;
  /** Module-level fallback: why the whole model did not import, and what got compiled. */
  fallback?: { reason: string; code: string };
  coverage?: CompileCoverage;
}

export interface CompileCoverage {
  ops_total: number;
  ops_compiled: number;
  time_share_compiled: number;
  modules: Array<{ name: string; compiled: boolean; reason?: string }>;
}
