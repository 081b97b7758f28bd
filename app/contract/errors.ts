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

/** A zod error's first issues as one clause: `path: message; path: message; and N more`. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const issues = error.issues;
  const listed = issues.slice(0, max).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
  if (issues.length > max) listed.push(`and ${issues.length - max} more`);
  return listed.join('; ');
}

/** The WorkbenchError for a payload that crossed a process boundary and does not match its schema: `what` names the message. */
export function wireError(code: string, what: string, error: z.ZodError, value: unknown): WorkbenchError {
  let detail: string | undefined;
  try {
    detail = JSON.stringify(value)?.slice(0, 2000);
  } catch {
    detail = undefined;
  }
  return new WorkbenchError(code, `${what} does not match the workbench's contract (${describeIssues(error)}); the two sides are out of step: reinstall or update the workbench.`, detail);
}

/**
 * Parses a payload that crossed a process boundary with its contract schema. A payload that does
 * not parse becomes a WorkbenchError with `code`, naming the message (`what`) and the first issues.
 */
export function parseWire<S extends z.ZodType>(schema: S, value: unknown, code: string, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw wireError(code, what, parsed.error, value);
}
