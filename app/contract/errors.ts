import { z } from 'zod';

/** A failure as users see it: a stable code, one sentence (what is wrong, what to do), detail on demand. */
export const ErrorInfoSchema = z.object({
  code: z.string(),
  message: z.string(),
  detail: z.string().optional(),
});
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

export class WorkbenchError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'WorkbenchError';
  }
  toJSON(): ErrorInfo {
    return { code: this.code, message: this.message, ...(this.detail ? { detail: this.detail } : {}) };
  }
  static from(err: unknown): WorkbenchError {
    if (err instanceof WorkbenchError) return err;
    const e = err as { code?: unknown; message?: unknown; detail?: unknown; stack?: unknown };
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      return new WorkbenchError(e.code, e.message, typeof e.detail === 'string' ? e.detail : undefined);
    }
    return new WorkbenchError('internal', err instanceof Error ? err.message : String(err), err instanceof Error ? err.stack : undefined);
  }
}
