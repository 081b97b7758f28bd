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
