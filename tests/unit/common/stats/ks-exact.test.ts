import { describe, expect, it } from 'vitest';
import { exactTwoSidedPvalue, gcd, latticeStatistic } from '../../../../common/stats/ks-exact.ts';
import { ks2samp } from '../../../../common/stats/ks.ts';
import { Rng } from '../../../../common/util/rng.ts';

describe('exact two-sample KS on the lattice', () => {
  it('exactTwoSidedPvalue is ks2samp’s exact p-value at the lattice statistic', () => {
    const rng = new Rng(1);
    for (let t = 0; t < 20; t++) {
      const x = Array.from({ length: 30 + t }, () => rng.uniform(0, 1));
      const y = Array.from({ length: 17 + 2 * t }, () => rng.uniform(0.1, 1.1));
      const r = ks2samp(x, y, { method: 'exact' });
      const lcm = (x.length / gcd(x.length, y.length)) * y.length;
      expect(exactTwoSidedPvalue(x.length, y.length, Math.round(r.statistic * lcm))).toBe(r.pvalue);
    }
    expect(() => exactTwoSidedPvalue(10, 0, 1)).toThrow(RangeError);
  });

  it('latticeStatistic is D times lcm(n1, n2), ties included', () => {
    const rng = new Rng(3);
    for (let t = 0; t < 50; t++) {
      const x = Float64Array.from({ length: 20 + t }, () => Math.round(rng.uniform(0, 1) * 20) / 20).sort();
      const y = Float64Array.from(
        { length: 13 + t },
        () => Math.round(rng.uniform(0.1, 1.1) * 20) / 20,
      ).sort();
      const lcm = (x.length / gcd(x.length, y.length)) * y.length;
      const h = latticeStatistic(x, y, lcm / x.length, lcm / y.length);
      expect(h).toBe(Math.round(ks2samp(x, y, { method: 'exact' }).statistic * lcm));
    }
  });
});
