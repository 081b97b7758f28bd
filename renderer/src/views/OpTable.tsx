// The per-op table beside (or, in a narrow window, below) the graph, as OpenVINO's DL Workbench
// had it: each op with its module path, where it runs, its time and share, and its error against
// PyTorch; sortable by any column. Clicking a row selects the op and brings it into view in the graph.
import { useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import type { OpComparison } from '../../../app/contract/results.js';
import { fmtMs } from '../components.js';
import { ERROR_OVER, WHERE_COLOR, WHERE_SHORT, errorColor, fmtNum, fmtRatio, sortRows, type OpRow, type SortKey } from './graph-data.js';

const COLUMNS: Array<{ key: SortKey; label: string; title: string; numeric?: boolean }> = [
  { key: 'op', label: 'op', title: 'The op (and the ops fused into its call)' },
  { key: 'scope', label: 'module path', title: 'The submodule it belongs to' },
  { key: 'where', label: 'placement', title: 'Where it runs: a library kernel, a TVM kernel, or TorchScript' },
  { key: 'ms', label: 'time', title: "Its calls' median time inside a model run (library calls are timed one by one; TVM's kernels together)", numeric: true },
  { key: 'share', label: 'share', title: "Its share of the model's time", numeric: true },
  { key: 'error', label: 'error', title: "Its max abs error against PyTorch's value, as a fraction of the tolerance (a compile with each op compared)", numeric: true },
];

/** `comparison`: the build's per-op comparison with PyTorch, where it has one. */
/** An op's name with line-break opportunities after its inner underscores (adaptive_avg_pool2d), never inside a word. */
function breakable(name: string): ReactNode {
  const parts = name.split(/(?<=.)_/);
  return parts.map((p, i) => (i < parts.length - 1 ? <span key={i}>{p}_<wbr /></span> : <span key={i}>{p}</span>));
}

export function OpTable({ rows, selected, onSelect, comparison }: { rows: OpRow[]; selected: string | null; onSelect: (id: string) => void; comparison?: OpComparison }) {
  const [sort, setSort] = useState<{ key: SortKey; dir: 'asc' | 'desc' }>({ key: 'order', dir: 'asc' });
  const sorted = useMemo(() => sortRows(rows, sort.key, sort.dir), [rows, sort]);
  const wrap = useRef<HTMLDivElement>(null);
  // The selected op's row scrolls into the table's view (the table alone: the page stays where it is).
  useEffect(() => {
    const box = wrap.current;
    const row = selected && box ? box.querySelector<HTMLElement>(`tr[data-id="${CSS.escape(selected)}"]`) : null;
    if (!box || !row) return;
    const head = box.querySelector('thead')?.getBoundingClientRect().height ?? 0;
    const top = row.offsetTop - head;
    if (top < box.scrollTop) box.scrollTop = top;
    else if (row.offsetTop + row.offsetHeight > box.scrollTop + box.clientHeight) box.scrollTop = row.offsetTop + row.offsetHeight - box.clientHeight;
  }, [selected]);
  const by = (key: SortKey) => setSort((s) => (s.key === key ? { key, dir: s.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: COLUMNS.find((c) => c.key === key)?.numeric ? 'desc' : 'asc' }));
  // Counted over the calls compared (the comparison's rows), as the CLI's table counts them.
  const compared = !!comparison?.ops.length;
  const failing = comparison?.ops.filter((o) => !o.ok).length ?? 0;
  return (
    <div className="op-table-wrap" ref={wrap} data-testid="op-table">
      <table className="op-table">
        <thead>
          <tr>
            {COLUMNS.map((c) => (
              <th key={c.key} className={c.numeric ? 'num' : undefined} aria-sort={sort.key === c.key ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'} title={c.title}>
                <button className="sort" onClick={() => by(c.key)} data-sort={c.key}>
                  {c.label}
                  <span className="sort-mark" aria-hidden>{sort.key === c.key ? (sort.dir === 'asc' ? '▲' : '▼') : ''}</span>
                </button>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {sorted.map((r) => (
            <tr key={r.id} data-id={r.id} className={selected === r.id ? 'selected' : undefined} onClick={() => onSelect(r.id)} aria-selected={selected === r.id}>
              <td className="op-cell" title={r.fusedOps.length ? `${r.op}, with ${r.fusedOps.join(', ')} fused into its call` : r.op}>
                <b>{breakable(r.op)}</b>
                {r.fusedOps.length ? <span className="hint">{'\u00a0'}+{r.fusedOps.length}</span> : null}
              </td>
              <td className="scope-cell">{r.scope ? <code title={r.scope}>{r.scope}</code> : <span className="hint">–</span>}</td>
              <td>
                {r.where ? (
                  <span className="where-dot-label" title={r.mix ? r.mix.map((m) => `${m.calls} call${m.calls === 1 ? '' : 's'} in ${WHERE_SHORT[m.where]}${m.ms !== null ? ` (${fmtMs(m.ms)})` : ''}`).join(', ') : undefined}>
                    <span className="swatch dot" style={{ background: WHERE_COLOR[r.where] }} />
                    {WHERE_SHORT[r.where]}
                    {r.mix ? <span className="hint"> (mixed)</span> : null}
                  </span>
                ) : (
                  <span className="hint">–</span>
                )}
              </td>
              <td className="num" data-ms={r.ms ?? undefined}>{fmtMs(r.ms)}</td>
              <td className="num">{r.share !== null ? `${(r.share * 100).toFixed(1)}%` : '–'}</td>
              <td className="num" data-ok={r.err ? String(r.err.ok) : undefined} title={r.err ? `max abs ${fmtNum(r.err.worst.max_abs)}, max rel ${fmtNum(r.err.worst.max_rel)}${r.err.worst.nan_inf_mismatches ? `, ${r.err.worst.nan_inf_mismatches} NaN/inf mismatches` : ''}${r.err.fused ? ' (the value of the call it runs in)' : ''}` : undefined}>
                {r.err ? (
                  <span className="err-cell">
                    <span className="swatch bar" style={{ background: errorColor(r.err) }} />
                    {r.err.ok ? fmtRatio(r.err.ratio) : <b style={{ color: ERROR_OVER }}>{r.err.ratio !== null ? fmtRatio(r.err.ratio) : 'fails'}</b>}
                    {r.err.first ? <span className="first-tag" title="The first op past the tolerance: the ops after it see its error too">1st</span> : null}
                  </span>
                ) : (
                  <span className="hint">–</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint op-table-foot" data-testid="op-table-summary" data-rows={rows.length} data-failing={compared ? failing : undefined}>
        {rows.length} op{rows.length === 1 ? '' : 's'} (those fused into another op's call are counted in its row). Time: each call's median inside a model run.
        {compared ? ` Error: max abs error as a share of the tolerance; ${comparison!.ops.length} calls compared, ${failing} past it.` : ' Error: compare each op with PyTorch (Colour by: error).'}
      </p>
    </div>
  );
}
