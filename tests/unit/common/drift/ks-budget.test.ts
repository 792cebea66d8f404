import { describe, expect, it } from 'vitest';
import {
  criticalLowerBound,
  ReferenceIndex,
  cachedExactPvalue,
  conditionalRejectionProbability,
  criticalLattice,
} from '../../../../common/drift/ks-budget.ts';
import { exactTwoSidedPvalue, latticeStatistic } from '../../../../common/stats/ks-exact.ts';
import { Rng } from '../../../../common/util/rng.ts';

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

describe('exact KS arithmetic for the false-alarm budget', () => {
  it.each([
    [5_000, 400, 6.944e-7],
    [5_000, 2_000, 3.472e-6],
    [5_000, 500, 1.111e-4],
    [1_500, 500, 1.85e-7],
  ])('criticalLattice(%i, %i, %f): the smallest h whose exact p-value is <= alpha', (n, w, alpha) => {
    const c = criticalLattice(n, w, alpha);
    expect(c.lcm).toBe((n / gcd(n, w)) * w);
    expect(c.pvalue).toBe(exactTwoSidedPvalue(n, w, c.h));
    expect(c.pvalue).toBeLessThanOrEqual(alpha);
    expect(exactTwoSidedPvalue(n, w, c.h - 1)).toBeGreaterThan(alpha);
    expect(c.statistic).toBe(c.h / c.lcm);
  });

  it('criticalLattice finds the definition on 60 random sizes and levels, tiny samples included (no h rejects: lcm + 1)', () => {
    const rng = new Rng(41);
    const levels = [0.2, 0.05, 1e-3, 1e-5, 1e-8];
    for (let i = 0; i < 60; i++) {
      const n = i < 6 ? 1 + i : 1 + Math.floor(rng.uniform(0, 2_000));
      const w = i < 6 ? 1 + (i % 3) : 1 + Math.floor(rng.uniform(0, 400));
      const alpha = levels[i % levels.length] as number;
      const c = criticalLattice(n, w, alpha);
      const p = (h: number): number => (h > c.lcm ? 0 : exactTwoSidedPvalue(n, w, h));
      expect(p(c.h), `${n}, ${w}, ${alpha}`).toBeLessThanOrEqual(alpha);
      if (c.h > 1) expect(p(c.h - 1), `${n}, ${w}, ${alpha}`).toBeGreaterThan(alpha);
    }
  });

  it('the current default window test rejects at D >= 0.1036 (exact p 1.076e-4), as its module comment says', () => {
    const c = criticalLattice(5_000, 500, 1e-3 / 9);
    expect(c.statistic).toBe(0.1036);
    expect(c.pvalue).toBeCloseTo(1.0759e-4, 7);
  });

  it('cachedExactPvalue returns the exact p-value', () => {
    expect(cachedExactPvalue(5_000, 400, 900)).toBe(exactTwoSidedPvalue(5_000, 400, 900));
    expect(cachedExactPvalue(5_000, 400, 900)).toBe(exactTwoSidedPvalue(5_000, 400, 900));
  });

  it('the conditional rejection probability matches simulation given one reference', () => {
    const rng = new Rng(5);
    const n = 200;
    const w = 50;
    const c = criticalLattice(n, w, 0.05);
    const u = Float64Array.from({ length: n }, () => rng.uniform(0, 1)).sort();
    const p = conditionalRejectionProbability(u, w, c.h);
    let rejections = 0;
    const M = 40_000;
    const win = new Float64Array(w);
    for (let m = 0; m < M; m++) {
      for (let i = 0; i < w; i++) win[i] = rng.uniform(0, 1);
      win.sort();
      if (latticeStatistic(u, win, c.lcm / n, c.lcm / w) >= c.h) rejections++;
    }
    const se = Math.sqrt((p * (1 - p)) / M);
    expect(Math.abs(rejections / M - p)).toBeLessThan(4 * se);
  });

  it('averaged over references it is the exact unconditional rejection probability', () => {
    const rng = new Rng(6);
    const n = 100;
    const w = 40;
    const c = criticalLattice(n, w, 0.05);
    let sum = 0;
    const R = 3_000;
    const ps: number[] = [];
    for (let r = 0; r < R; r++) {
      const u = Float64Array.from({ length: n }, () => rng.uniform(0, 1)).sort();
      const p = conditionalRejectionProbability(u, w, c.h);
      ps.push(p);
      sum += p;
    }
    const mean = sum / R;
    const sd = Math.sqrt(ps.reduce((a, p) => a + (p - mean) ** 2, 0) / (R - 1));
    expect(Math.abs(mean - c.pvalue)).toBeLessThan((4 * sd) / Math.sqrt(R));
  });

  it('ReferenceIndex.latticeStatistic equals the merge, ties included', () => {
    const rng = new Rng(9);
    for (let t = 0; t < 600; t++) {
      const n = 1 + Math.floor(rng.uniform(0, 300));
      const w = 1 + Math.floor(rng.uniform(0, 100));
      const grid = t % 3 === 0 ? 10 : t % 3 === 1 ? 1_000 : 0;
      const shift = t % 2 === 0 ? 0 : rng.uniform(-0.3, 0.3);
      const draw = (s: number): number => {
        const v = rng.uniform(0, 1) + s;
        return grid ? Math.round(v * grid) / grid : v;
      };
      const ref = Float64Array.from({ length: n }, () => draw(0)).sort();
      const win = Float64Array.from({ length: w }, () => draw(shift)).sort();
      const lcm = (n / gcd(n, w)) * w;
      expect(new ReferenceIndex(ref).latticeStatistic(win, lcm / n, lcm / w)).toBe(
        latticeStatistic(ref, win, lcm / n, lcm / w),
      );
    }
  });
});

describe('criticalLowerBound', () => {
  it('is below the critical h, its exact p-value above alpha, and close enough to skip most tests', () => {
    for (const [n, w, alpha] of [
      [1900, 100, 1e-6],
      [1880, 120, 3e-8],
      [5000, 400, 1e-7],
      [95, 5, 1e-3],
      [40, 40, 0.01],
    ] as const) {
      const crit = criticalLattice(n, w, alpha).h;
      const lb = criticalLowerBound(n, w, alpha);
      expect(lb).toBeLessThan(crit);
      if (lb > 0) expect(exactTwoSidedPvalue(n, w, lb)).toBeGreaterThan(alpha);
      if (n >= 100) expect(lb).toBeGreaterThan(0.5 * crit);
    }
  });

  it('a test at or below the bound does not reject (the decision the data-quality check skips)', () => {
    const [n, w, alpha] = [1700, 300, 2e-7];
    const lb = criticalLowerBound(n, w, alpha);
    const crit = criticalLattice(n, w, alpha).h;
    expect(lb).toBeGreaterThan(0);
    for (const h of [1, Math.floor(lb / 2), lb]) expect(h >= crit).toBe(false);
  });
});
