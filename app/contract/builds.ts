// How a build is named wherever numbers are shown (CLI, every page): its kind, when it was made and
// the first digits of its package's SHA-256, so that a user can tell which build a figure belongs to.
import { z } from 'zod';
import { BuildInfoSchema, CompileResultSchema, type BuildInfo } from './results.js';

/** A build folder's build.json (engine deploy/builds.py write_record): its identity and the result its compile or tune reported. */
export const BuildRecordSchema = z.looseObject({
  format: z.number().int(),
  build: BuildInfoSchema,
  result: CompileResultSchema,
});
export type BuildRecord = z.output<typeof BuildRecordSchema>;
/** The newest build.json format this version reads. */
export const BUILD_RECORD_FORMAT = 1;

/** "2026-12-06 14:02" in local time (the record holds UTC ISO); the input as given when it is not a date. */
export function buildTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** "tuned · 2026-12-06 14:02 · a1b2c3d4e5f6" (untuned, partly compiled likewise). */
export function describeBuild(b: Pick<BuildInfo, 'id' | 'created_at' | 'tuned' | 'partial'>): string {
  const kind = `${b.tuned ? 'tuned' : 'untuned'}${b.partial ? ', partly compiled' : ''}`;
  return `${kind} · ${buildTime(b.created_at)} · ${b.id}`;
}
