import type { ErrorInfo } from '../contract/errors.js';
import type { Workbench } from '../core/workbench.js';
import type { Output } from './output.js';

export interface CommandContext {
  wb: Workbench;
  out: Output;
  /** Reports an error (a sentence, or the engine's ErrorInfo) and returns the exit code to use. */
  fail(err: string | ErrorInfo, code?: number): number;
}

export interface Command {
  usage: string;
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

/** An integer flag's value (undefined when absent); a usage error names the flag when it is not an integer of at least `min`. */
export function intFlag(flag: string, text: string | undefined, min = 1): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer of at least ${min}, not "${text}"`);
  return n;
}
