// The live chart's downsampling (renderer/src/downsample.ts): what each function keeps is real
// data, bounded by the plot's pixels, and the points that shape the picture are never dropped.
import { describe, expect, it } from 'vitest';
import { extendStep, minMaxPerColumn, ScatterThinner, thinScatter } from '../../renderer/src/downsample.js';

/** A seeded PRNG (mulberry32): the same "random" data on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('extendStep', () => {
  const corners = (v: Array<number | null>) => {
    const c: number[] = [];
    const last = extendStep(c, -1, (i) => v[i], 0, v.length);
    return { c, last };
  };

  it('keeps the first value and every change, skipping nulls, and says where the last value is', () => {
    expect(corners([null, 5, 5, 4, 4, 4, null, 4, 3, 3, null])).toEqual({ c: [1, 3, 8], last: 9 });
    expect(corners([null, null])).toEqual({ c: [], last: -1 });
    expect(corners([7])).toEqual({ c: [0], last: 0 });
  });

  it('draws the same stepAfter line as every point, appended a batch at a time as all at once', () => {
    const r = rng(1);
    let best = Infinity;
    const v = Array.from({ length: 5000 }, () => (best = Math.min(best, r() * 100)));
    const { c: idx, last } = corners(v);
    expect(idx[0]).toBe(0);
    expect(last).toBe(v.length - 1);
    expect(idx.length).toBeLessThan(60); // a running minimum changes ~ln(n) times
    // The step line through the corners takes, at every point, the point's own value.
    let k = 0;
    for (let i = 0; i < v.length; i++) {
      while (k + 1 < idx.length && idx[k + 1] <= i) k++;
      expect(v[idx[k]]).toBe(v[i]);
    }
    const inBatches: number[] = [];
    let l = -1;
    for (let from = 0; from < v.length; from += 777) l = extendStep(inBatches, l, (i) => v[i], from, Math.min(v.length, from + 777));
    expect(inBatches).toEqual(idx);
    expect(l).toBe(last);
  });
});

describe('minMaxPerColumn', () => {
  const r = rng(2);
  const n = 50_000;
  const xs = Array.from({ length: n }, (_, i) => (i / n) * 800); // 800 px wide, ~62 points a column
  const ys = Array.from({ length: n }, () => r() * 300);
  const idx = xs.map((_, i) => i);
  const out = minMaxPerColumn(idx, (i) => xs[i], (i) => ys[i]);

  it('keeps at most four points a column, in input order, the first and the last among them', () => {
    expect(out.length).toBeLessThanOrEqual(4 * 800);
    expect(out[0]).toBe(0);
    expect(out[out.length - 1]).toBe(n - 1);
    for (let k = 1; k < out.length; k++) expect(out[k]).toBeGreaterThan(out[k - 1]);
  });

  it("keeps each column's lowest and highest point", () => {
    const lo = new Map<number, number>();
    const hi = new Map<number, number>();
    for (const i of idx) {
      const c = Math.floor(xs[i]);
      if (!lo.has(c) || ys[i] < ys[lo.get(c)!]) lo.set(c, i);
      if (!hi.has(c) || ys[i] > ys[hi.get(c)!]) hi.set(c, i);
    }
    const kept = new Set(out);
    for (const i of [...lo.values(), ...hi.values()]) expect(kept.has(i)).toBe(true);
  });

  it('keeps everything when each column has few points', () => {
    const few = [0, 1, 2, 3, 4];
    expect(minMaxPerColumn(few, (i) => i * 10, (i) => i)).toEqual(few);
  });
});

describe('thinScatter', () => {
  const W = 1000;
  const H = 300;
  const CELL = 2;
  function data(n: number, seed: number) {
    const r = rng(seed);
    const x = Array.from({ length: n }, (_, i) => (i / n) * W);
    const y = Array.from({ length: n }, () => r() * H);
    const g = Array.from({ length: n }, (_, i) => i % 4);
    // A failed trial (not drawn) and a far outlier.
    y[n - 10] = NaN;
    y[n >> 1] = 0.1;
    return { x, y, g };
  }

  it('keeps a bounded number of points however many there are', () => {
    for (const n of [5_000, 50_000, 500_000]) {
      const { x, y, g } = data(n, 3);
      const out = thinScatter(x, y, g, W, H, CELL);
      // groups × (cells + 2 × columns × height) + the last point
      expect(out.length).toBeLessThanOrEqual(4 * ((W / CELL) * (H / CELL) + 2 * (W / CELL) * H) + 1);
    }
    // A dense cloud (50,000 points in 20 × 20 px): a dot per cell and group, a few extremes, the last.
    const r = rng(6);
    const n = 50_000;
    const x = Array.from({ length: n }, () => 100 + r() * 20);
    const y = Array.from({ length: n }, () => 100 + r() * 20);
    const g = Array.from({ length: n }, (_, i) => i % 4);
    expect(thinScatter(x, y, g, W, H, CELL).length).toBeLessThan(4 * (11 * 11) * 2);
  });

  it('keeps the last point and outliers, draws each column’s extremes per group to the pixel, never a point that is not drawn', () => {
    const n = 50_000;
    const { x, y, g } = data(n, 4);
    const out = thinScatter(x, y, g, W, H, CELL);
    const kept = new Set(out);
    expect(kept.has(n - 1)).toBe(true);
    expect(kept.has(n >> 1)).toBe(true);
    expect(kept.has(n - 10)).toBe(false);
    for (let k = 1; k < out.length; k++) expect(out[k]).toBeGreaterThan(out[k - 1]);
    const lo = new Map<string, number>();
    const hi = new Map<string, number>();
    const keptLo = new Map<string, number>();
    const keptHi = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(y[i])) continue;
      const c = `${g[i]}:${Math.floor(x[i] / CELL)}`;
      lo.set(c, Math.min(lo.get(c) ?? Infinity, y[i]));
      hi.set(c, Math.max(hi.get(c) ?? -Infinity, y[i]));
      if (kept.has(i)) {
        keptLo.set(c, Math.min(keptLo.get(c) ?? Infinity, y[i]));
        keptHi.set(c, Math.max(keptHi.get(c) ?? -Infinity, y[i]));
      }
    }
    for (const [c, v] of lo) expect(keptLo.get(c)! - v).toBeLessThan(1);
    for (const [c, v] of hi) expect(v - keptHi.get(c)!).toBeLessThan(1);
  });

  it('thins points added a batch at a time as it thins them all at once', () => {
    const n = 20_000;
    const { x, y, g } = data(n, 7);
    const all = new ScatterThinner(W, H, CELL);
    const once = x.map((_, i) => all.add(x[i], y[i], g[i]));
    const inBatches = new ScatterThinner(W, H, CELL);
    const batched: boolean[] = [];
    for (let start = 0; start < n; start += 1234) for (let i = start; i < Math.min(n, start + 1234); i++) batched.push(inBatches.add(x[i], y[i], g[i]));
    expect(batched).toEqual(once);
    // Any group ids, not only small ones.
    const t = new ScatterThinner(W, H, CELL);
    expect([t.add(5, 5, -3), t.add(5, 5, 1e9), t.add(5, 5, -3), t.add(5, 5, 0.5)]).toEqual([true, true, false, true]);
  });

  it('leaves every dropped point within a cell of a kept point of its group', () => {
    const n = 20_000;
    const { x, y, g } = data(n, 5);
    const out = thinScatter(x, y, g, W, H, CELL);
    const cells = new Set(out.map((i) => `${g[i]}:${Math.floor(x[i] / CELL)}:${Math.floor(y[i] / CELL)}`));
    for (let i = 0; i < n; i++) {
      if (Number.isFinite(y[i])) expect(cells.has(`${g[i]}:${Math.floor(x[i] / CELL)}:${Math.floor(y[i] / CELL)}`)).toBe(true);
    }
  });

  it('keeps every point of a sparse plot', () => {
    const xs = [10, 50, 90, 130];
    const out = thinScatter(xs, [100, 100, 100, 100], [0, 0, 0, 0], W, H, CELL);
    expect(out).toEqual([0, 1, 2, 3]);
  });
});
