// The Benchmark page's batch sweep (issue 24): throughput against latency (p50), a labelled dot per
// size of the symbolic dimension joined in size order, the best size under the latency limit
// marked and the limit drawn as a vertical line; and the table the CLI prints. While the sweep
// runs, each size's point comes from its samples so far; once it is over, from the result.
import { CartesianGrid, LabelList, Line, LineChart, ReferenceDot, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { BenchSweepResult } from '../../../app/contract/results.js';
import { fmtAxisMs, LegendItems, seriesColor } from '../charts.js';
import { fmtMs, Table } from '../components.js';
import type { BenchSample } from '../store.js';

/** A bench.sample label of a sweep: "model.pt @ batch=4". */
const LABEL = /^(.*) @ ([A-Za-z_][A-Za-z0-9_]*)=(\d+)$/;

export function sweepOfLabel(label: string): { model: string; symbol: string; size: number } | null {
  const m = LABEL.exec(label);
  return m ? { model: m[1], symbol: m[2], size: Number(m[3]) } : null;
}

interface Point {
  size: number;
  p50: number;
  p90: number;
  p99: number;
  runs: number;
  throughput: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The points so far: the result's when there is one, else each size's samples'. */
export function sweepPoints(result: BenchSweepResult | undefined, samples: Record<string, BenchSample[]>): { symbol: string; points: Point[] } | null {
  if (result) {
    return { symbol: result.symbol, points: result.points.map((p) => ({ size: p.size, p50: p.stats.p50, p90: p.stats.p90, p99: p.stats.p99 ?? NaN, runs: p.stats.runs, throughput: p.throughput_per_s })) };
  }
  let symbol = '';
  const points: Point[] = [];
  for (const [label, list] of Object.entries(samples)) {
    const at = sweepOfLabel(label);
    if (!at || !list.length) continue;
    symbol = at.symbol;
    const v = list.map((s) => s.ms).sort((a, b) => a - b);
    const p50 = pct(v, 50);
    points.push({ size: at.size, p50, p90: pct(v, 90), p99: pct(v, 99), runs: v.length, throughput: (at.size * 1000) / p50 });
  }
  return points.length ? { symbol, points: points.sort((a, b) => a.size - b.size) } : null;
}


const nowrap = (text: string) => <span style={{ whiteSpace: 'nowrap' }}>{text}</span>;
const fmtRate = (n: number) => `${n.toLocaleString('en-US', { maximumSignificantDigits: 3 })}/s`;
const fmtAxisRate = (n: number) => (n >= 1e6 ? `${+(n / 1e6).toPrecision(3)}M` : n >= 1e3 ? `${+(n / 1e3).toPrecision(3)}k` : `${+n.toPrecision(3)}`);

export function BatchSweep({ result, samples, limit, running }: { result?: BenchSweepResult; samples: Record<string, BenchSample[]>; limit?: number; running: boolean }) {
  const sw = sweepPoints(running ? undefined : result, samples);
  if (!sw) return null;
  const { symbol, points } = sw;
  // The best point: the result's once it is over; while it runs, the same rule on the points so far.
  const within = points.filter((p) => limit === undefined || p.p50 <= limit);
  const best = !running && result ? (result.best ? points.find((p) => p.size === result.best!.size) : undefined) : within.reduce<Point | undefined>((a, b) => (!a || b.throughput > a.throughput ? b : a), undefined);
  const maxP50 = Math.max(...points.map((p) => p.p50));
  // The limit line is drawn when it falls within reach of the points (else the points would be squeezed to one side): the caption says where it is.
  const drawLimit = limit !== undefined && limit <= maxP50 * 3;
  const line = seriesColor(0);
  // The latency axis spans the sizes' p50s (and the limit), not from 0: close latencies stay apart, and the ticks say where it starts.
  const note = !running && result?.note;
  return (
    <div data-testid="bench-sweep">
      <div className="chart" data-testid="sweep-chart">
        <h4 className="chart-title">Throughput against latency (p50), a point per {symbol} size</h4>
        <ResponsiveContainer width="100%" height={320}>
          <LineChart data={points} margin={{ top: 22, right: 28, bottom: 22, left: 12 }}>
            <CartesianGrid stroke="var(--grid)" strokeDasharray="3 3" />
            <XAxis dataKey="p50" type="number" domain={['auto', 'auto']} padding={{ left: 24, right: 24 }} stroke="var(--muted)" height={34} tickFormatter={fmtAxisMs} label={{ value: 'latency p50', position: 'insideBottom', offset: -12, fill: 'var(--muted)', fontSize: 12 }} />
            <YAxis type="number" domain={[0, 'auto']} stroke="var(--muted)" width={64} tickFormatter={fmtAxisRate} label={{ value: 'samples / s', angle: -90, position: 'insideLeft', fill: 'var(--muted)', fontSize: 12, style: { textAnchor: 'middle' } }} />
            <Tooltip
              contentStyle={{ background: 'var(--panel)', border: '1px solid var(--border)', color: 'var(--text)' }}
              labelFormatter={(_l, p) => {
                const pt = p?.[0]?.payload as Point | undefined;
                return pt ? `${symbol}=${pt.size}: p50 ${fmtMs(pt.p50)}` : '';
              }}
              formatter={(v) => [typeof v === 'number' ? fmtRate(v) : String(v), 'throughput']}
            />
            {drawLimit && <ReferenceLine x={limit} ifOverflow="extendDomain" stroke="var(--bad)" strokeDasharray="6 4" strokeWidth={1.5} label={{ value: `limit ${fmtMs(limit)}`, position: 'insideTopRight', fill: 'var(--bad)', fontSize: 12 }} />}
            <Line dataKey="throughput" name="throughput" stroke={line} strokeWidth={2} dot={{ r: 4, fill: line, stroke: line }} activeDot={{ r: 6 }} isAnimationActive={false}>
              <LabelList dataKey="size" position="top" offset={9} fill="var(--text)" fontSize={12} fontWeight={600} stroke="var(--panel)" strokeWidth={4} paintOrder="stroke" formatter={(v: unknown) => `${v}`} />
            </Line>
            {best && <ReferenceDot x={best.p50} y={best.throughput} r={9} fill="none" stroke="var(--good)" strokeWidth={2.5} ifOverflow="extendDomain" />}
          </LineChart>
        </ResponsiveContainer>
        <LegendItems
          items={[
            { label: `throughput at each ${symbol} size (labelled)`, color: line, kind: 'line' },
            ...(best ? [{ label: `best${limit !== undefined ? ` under ${fmtMs(limit)}` : ' throughput'}: ${symbol}=${best.size}`, color: 'var(--good)', kind: 'dot' as const }] : []),
            ...(limit !== undefined ? [{ label: drawLimit ? `latency limit ${fmtMs(limit)} (p50)` : `latency limit ${fmtMs(limit)} (p50), off the chart: every size is well within it`, color: 'var(--bad)', kind: 'line' as const }] : []),
          ]}
        />
      </div>
      <div style={{ overflowX: 'auto' }}>
      <Table
        testId="sweep-table"
        head={[symbol, 'p50', 'p90', 'p99', 'throughput', 'runs', limit !== undefined ? <span key="l" style={{ whiteSpace: 'nowrap' }}>limit {fmtMs(limit)}</span> : '']}
        rows={points.map((p) => [
          p.size,
          nowrap(fmtMs(p.p50)),
          nowrap(fmtMs(p.p90)),
          nowrap(fmtMs(p.p99)),
          nowrap(fmtRate(p.throughput)),
          p.runs,
          p === best ? <b key="b" className="ok" data-testid="sweep-best" style={{ whiteSpace: 'nowrap' }} title={limit !== undefined ? `The highest throughput with p50 within ${fmtMs(limit)}` : 'The highest throughput'}>◀ best</b> : limit !== undefined && p.p50 > limit ? <span key="o" className="warn" style={{ whiteSpace: 'nowrap' }}>over the limit</span> : '',
        ])}
      />
      </div>
      {!running && result?.best && (
        <p data-testid="sweep-summary">
          Best: <b>{symbol}={result.best.size}</b>, {fmtRate(result.best.throughput_per_s)} at {fmtMs(result.best.p50)} p50{limit !== undefined ? ` (the highest throughput with p50 within ${fmtMs(limit)})` : ''}.
        </p>
      )}
      {note && <p className="banner warn" data-testid="sweep-note">{note}</p>}
    </div>
  );
}
