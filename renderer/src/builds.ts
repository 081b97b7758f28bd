// The builds a model has on screen (the latest untuned compile, the latest tune, the build of the
// latest export) and the one the user selected: the Export page exports it and the graph view
// colours its placement, so that every figure names the build it belongs to.
import type { CompileResult } from '../../app/contract/results.js';
import type { InputSpec } from '../../app/contract/specs.js';
import type { State } from './store.js';

export type BuildKey = 'tuned' | 'untuned' | 'export';
/** 'auto': the newest build made for the current inputs and target; 'new': compile a new build to export. */
export type BuildChoice = 'auto' | 'new' | BuildKey;

export interface BuildEntry {
  key: BuildKey;
  job: string;
  result: CompileResult & { build: NonNullable<CompileResult['build']> };
  /** Built for the input specs and target on screen now (else it shows what it was built for). */
  current: boolean;
}

const LABELS: Record<BuildKey, string> = { tuned: 'latest tune', untuned: 'latest compile', export: 'latest export' };
export const buildSource = (k: BuildKey) => LABELS[k];

/** The builds on screen, newest first, each once (an export of an existing build is that build); `specs`: the valid input specs on screen, or null. */
export function availableBuilds(s: State, specs: InputSpec[] | null): BuildEntry[] {
  const candidates: Array<[BuildKey, string | undefined, CompileResult | null]> = [
    ['tuned', s.tuneJob, s.tuneResult],
    ['untuned', s.compileFrom, s.compile],
    ['export', s.exportJob, s.exported],
  ];
  const seen = new Set<string>();
  const out: BuildEntry[] = [];
  for (const [key, job, r] of candidates) {
    if (!r?.build || !job || seen.has(r.build.sha256)) continue;
    seen.add(r.build.sha256);
    const req = s.project?.runs.find((x) => x.job === job)?.request;
    const current = !!req && 'target' in req && req.target === s.target && !!specs && JSON.stringify(req.inputs) === JSON.stringify(specs);
    out.push({ key, job, result: r as BuildEntry['result'], current });
  }
  return out.sort((a, b) => b.result.build.created_at.localeCompare(a.result.build.created_at));
}

/** The build the choice names; for 'auto', the newest current one; null for 'new' or when there is none. */
export function selectedBuild(s: State, builds: BuildEntry[]): BuildEntry | null {
  if (s.buildChoice === 'new') return null;
  if (s.buildChoice === 'auto') return builds.find((b) => b.current) ?? null;
  return builds.find((b) => b.key === s.buildChoice) ?? null;
}

/** What the graph colours: the selected build, else the newest build on screen. */
export function graphBuild(s: State, specs: InputSpec[] | null): CompileResult | null {
  const builds = availableBuilds(s, specs);
  return selectedBuild(s, builds)?.result ?? builds[0]?.result ?? s.exported ?? s.tuneResult ?? s.compile;
}
