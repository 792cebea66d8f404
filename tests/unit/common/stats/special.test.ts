/**
 * Unit tests of common/stats/special.ts: each expected value was computed once
 * with scipy 1.17.1 by the call given in the comment and pasted as a literal.
 */
import { describe, expect, it } from 'vitest';
import { binom, kstwoSf, smirnov } from '../../../../common/stats/special.ts';

describe('special functions ported from scipy', () => {
  // scipy.stats.kstwo.sf(x, n): one point in each branch of _kolmogn's choice
  // prettier-ignore
  const KSTWO: [number, number, number, string][] = [
    [10, 0.05, 1.0, 'x <= 0.5/n'],
    [10, 0.08, 0.9999978058034054, 'Ruben-Gambino t <= 1, n <= 140'],
    [10, 0.95, 1.9531250000000172e-13, 'Ruben-Gambino t >= n-1'],
    [10, 0.6, 0.0005681672000000003, 'x >= 0.5: 2*smirnov'],
    [100, 0.05, 0.9532159710635725, 'n <= 140: Durbin/MTW'],
    [100, 0.15, 0.019839242125643017, 'n <= 140: Pomeranz'],
    [100, 0.25, 5.408871776434847e-6, 'n <= 140: 2*smirnov'],
    [1000, 0.02, 0.8108971656895577, 'n > 140: Pelz-Good'],
    [1000, 0.01, 0.9999496745370611, 'n > 140: Durbin/MTW'],
    [1000, 0.06, 0.001428597887952891, 'n > 140: 2*smirnov'],
    [1000, 0.7, 0.0, 'n x^2 >= 370'],
    [200, 0.004, 1.0, 'Ruben-Gambino t <= 1, n > 140'],
    [5000, 0.012, 0.4639912166690192, 'Pelz-Good'],
    [10000, 0.013, 0.06750118848339082, '2*smirnov, long sum'],
  ];
  it.each(KSTWO)('kstwo(n=%s).sf(%s): %s', (n, x, expected) => {
    expect(Math.abs(kstwoSf(x, n) - expected)).toBeLessThanOrEqual(1e-12);
  });

  // scipy.special.smirnov(n, x)
  // prettier-ignore
  const SMIRNOV: [number, number, number][] = [
    [1, 0.3, 0.7],
    [5, 0.1, 0.85359],
    [20, 0.5, 1.893797620269516e-5],
    [20, 0.96, 1.0995116277760194e-28],
    [100, 0.05, 0.5871453380805337],
    [1000, 0.03, 0.16203171395455085],
    [10000, 0.001, 0.9795458647842514],
    [10000, 0.02, 0.00033084243196936547],
  ];
  it.each(SMIRNOV)('smirnov(%s, %s)', (n, x, expected) => {
    const got = smirnov(n, x);
    expect(Math.abs(got - expected)).toBeLessThanOrEqual(Math.max(1e-14, 1e-10 * expected));
  });

  // scipy.special.binom(n, k)
  // prettier-ignore
  const BINOM: [number, number, number][] = [
    [10, 3, 120.0],
    [50, 25, 126410606437752.03],
    [100, 19, 1.323415729392123e20],
    [100, 20, 5.359833704038096e20],
    [1000, 500, 2.7028824094560503e299],
    [1030, 515, Infinity],
    [40000, 39980, 4.49792257642019e73],
    [300, 150, 9.375970277281882e88],
  ];
  it.each(BINOM)('binom(%s, %s)', (n, k, expected) => {
    const got = binom(n, k);
    if (!Number.isFinite(expected)) expect(got).toBe(expected);
    else expect(Math.abs(got - expected) / expected).toBeLessThanOrEqual(1e-11);
  });
});
