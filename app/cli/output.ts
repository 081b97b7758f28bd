// CLI output: human mode (progress on stderr, tables on stdout) or --json (JSON lines on stdout:
// the events, then one last line {"result": …} or {"error": {code, message}}).
import type { ErrorInfo } from '../contract/errors.js';
import type { JobEvent } from '../contract/jobs.js';
import { fmtMs as fmtTime } from '../contract/format.js';

export class Output {
  private lastProgress = '';
  constructor(
    readonly json: boolean,
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly err: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {}

  line(text = ''): void {
    if (!this.json) {
      this.clearProgress();
      this.out.write(text + '\n');
    }
  }

  /** Human mode: a status line rewritten in place on a terminal, one line per change otherwise. */
  progress(text: string): void {
    if (this.json || text === this.lastProgress) return;
    this.lastProgress = text;
    if (this.err.isTTY) this.err.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns || 120) - 1)}`);
    else this.err.write(text + '\n');
  }

  clearProgress(): void {
    if (this.err.isTTY && this.lastProgress) this.err.write('\r\x1b[2K');
    this.lastProgress = '';
  }

  /** Human mode: a warning the user must see (e.g. tuning records dropped), on stderr. */
  warn(text: string): void {
    if (this.json) return;
    this.clearProgress();
    this.err.write(`warning: ${text}\n`);
  }

  event(e: JobEvent): void {
    if (this.json) this.out.write(JSON.stringify(e) + '\n');
  }

  result(result: unknown): void {
    if (this.json) this.out.write(JSON.stringify({ result }) + '\n');
  }

  error(err: ErrorInfo, showDetail = false): void {
    if (this.json) {
      this.out.write(JSON.stringify({ error: { code: err.code, message: err.message, ...(err.detail ? { detail: err.detail } : {}) } }) + '\n');
      return;
    }
    this.clearProgress();
    this.err.write(`error: ${err.message}\n`);
    if (showDetail && err.detail) this.err.write(`\n${err.detail}\n`);
    else if (err.detail) this.err.write('(run with --verbose for details)\n');
  }
}

/** A plain text table with right-aligned numeric columns. */
export function table(rows: Array<Array<string | number>>, header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const cells = all.map((r) => r.map((c) => String(c)));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (/^[-+]?[\d.]+(e[-+]?\d+)?( ?(ms|µs|ns|s|x|×|%))?$/.test(c) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const lines = cells.map(fmt);
  if (header) lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

/** A time with its unit (ms, µs, ns, s): the app's formatter (app/contract/format.ts), '-' for none. */
export function fmtMs(ms: number | null | undefined): string {
  return fmtTime(ms, '-');
}
