/** How the CLI and the app state a comparison, so that both say the same thing the same way. */

/** "2.1× faster" / "1.3× slower": a ratio with its direction, never a bare 0.23×. */
export function fmtSpeedup(baselineMs: number | null | undefined, candidateMs: number | null | undefined): string {
  if (!baselineMs || !candidateMs || !Number.isFinite(baselineMs) || !Number.isFinite(candidateMs)) return '–';
  const r = baselineMs / candidateMs;
  if (Math.abs(r - 1) < 0.005) return 'same speed';
  const x = r >= 1 ? r : 1 / r;
  return `${x >= 10 ? x.toFixed(0) : x.toFixed(x >= 1.995 ? 1 : 2)}× ${r >= 1 ? 'faster' : 'slower'}`;
}
