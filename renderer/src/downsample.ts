// Downsampling for charts that must redraw within a frame however many points arrive: each
// function keeps what a chart of a given pixel size can show, in O(n), and returns the indices of
// the points it keeps (in input order), so the caller draws real data points, never averages.

/**
 * The corners of a step series (a "best so far" value changes only at some points), kept up to
 * date as values are appended: appends to `corners` the index of each value in [from, to) that
 * differs from the one before it (the first value is such a value), and returns the index of the
 * last value (`last` when there is none in the range). A stepAfter line through the corners and
 * the last point is the line through every point. Values that are null or not finite are skipped.
 */
export function extendStep(corners: number[], last: number, value: (i: number) => number | null, from: number, to: number): number {
  let prev = last >= 0 ? value(last) : null;
  for (let i = from; i < to; i++) {
    const v = value(i);
    if (v === null || !Number.isFinite(v)) continue;
    if (v !== prev) corners.push(i);
    prev = v;
    last = i;
  }
  return last;
}

/**
 * Min/max per pixel column (M4) for a line: of the points `idx` (in x order), keeps per column of
 * `column` pixels the first, the lowest, the highest and the last, so the line through what is
 * kept covers the same pixels as the line through all. At most 4 per column.
 * `x` and `y` give a point's position in pixels.
 */
export function minMaxPerColumn(idx: readonly number[], x: (i: number) => number, y: (i: number) => number, column = 1): number[] {
  const out: number[] = [];
  let col = NaN;
  let first = -1;
  let lo = -1;
  let hi = -1;
  let last = -1;
  const flush = () => {
    if (first < 0) return;
    // In input order, each once.
    for (const i of [first, lo, hi, last].sort((a, b) => a - b)) if (out[out.length - 1] !== i) out.push(i);
  };
  for (const i of idx) {
    const c = Math.floor(x(i) / column);
    const v = y(i);
    if (c !== col) {
      flush();
      col = c;
      first = lo = hi = last = i;
      continue;
    }
    if (v < y(lo)) lo = i;
    if (v > y(hi)) hi = i;
    last = i;
  }
  flush();
  return out;
}

interface GroupCells {
  /** Cells this group has a dot in. */
  taken: Uint8Array;
  /** Per column, the lowest and the highest y drawn. */
  lo: Float64Array;
  hi: Float64Array;
}

/**
 * Thins a scatter plot to what its dots can show, one point at a time (so that a plot that
 * gains points thins only those). Points are grouped (a group is drawn in one colour, e.g. a
 * tuning task), and per group a point is drawn when
 *  - it is the first in its cell of `cell` × `cell` pixels (a dot drawn there covers the others
 *    within a cell's width), or
 *  - it lies a pixel or more beyond the lowest or the highest drawn so far in its column `cell`
 *    pixels wide, so that the extremes of every column (outliers, the envelope) are drawn to the
 *    pixel whatever the cell.
 * Positions are in pixels from the plot's top-left corner; outside `width` × `height` they count
 * in the nearest edge cell. At most groups × (cells + 2 × columns × height) points are drawn,
 * however many there are (the second term is a bound on how often a column's extremes can move
 * by a pixel; on real data they move a few times).
 */
export class ScatterThinner {
  readonly cols: number;
  readonly rows: number;
  private readonly groups = new Map<number, GroupCells>();
  /** Groups 0..255 (task ids) by index, the others in `groups`. */
  private readonly small: Array<GroupCells | undefined> = [];

  constructor(
    readonly width: number,
    readonly height: number,
    readonly cell = 2,
  ) {
    this.cols = Math.max(1, Math.ceil(width / cell));
    this.rows = Math.max(1, Math.ceil(height / cell));
  }

  /** Whether the point at (x, y) of `group` is drawn (false for a position that is not finite). */
  add(x: number, y: number, group: number): boolean {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
    let c = Math.floor(x / this.cell);
    c = c < 0 ? 0 : c >= this.cols ? this.cols - 1 : c;
    let r = Math.floor(y / this.cell);
    r = r < 0 ? 0 : r >= this.rows ? this.rows - 1 : r;
    const isSmall = group >= 0 && group < 256 && group === (group | 0);
    let g = isSmall ? this.small[group] : this.groups.get(group);
    if (!g) {
      g = { taken: new Uint8Array(this.cols * this.rows), lo: new Float64Array(this.cols).fill(Infinity), hi: new Float64Array(this.cols).fill(-Infinity) };
      if (isSmall) this.small[group] = g;
      else this.groups.set(group, g);
    }
    let keep = false;
    const at = c * this.rows + r;
    if (!g.taken[at]) {
      g.taken[at] = 1;
      keep = true;
    }
    if (y <= g.lo[c] - 1 || g.lo[c] === Infinity) {
      g.lo[c] = y;
      keep = true;
    }
    if (y >= g.hi[c] + 1 || g.hi[c] === -Infinity) {
      g.hi[c] = y;
      keep = true;
    }
    // The extremes drawn, whichever rule drew the point.
    if (keep) {
      if (y < g.lo[c]) g.lo[c] = y;
      if (y > g.hi[c]) g.hi[c] = y;
    }
    return keep;
  }
}

/**
 * ScatterThinner over a whole plot, and the last point is always drawn. `x` and `y` are the
 * points' positions (y NaN: not drawn, e.g. a failed trial). Returns the drawn indices in input
 * order.
 */
export function thinScatter(x: ArrayLike<number>, y: ArrayLike<number>, group: ArrayLike<number>, width: number, height: number, cell = 2): number[] {
  const t = new ScatterThinner(width, height, cell);
  const out: number[] = [];
  let last = -1;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
    last = i;
    if (t.add(x[i], y[i], group[i])) out.push(i);
  }
  if (last >= 0 && out[out.length - 1] !== last) out.push(last);
  return out;
}
