/**
 * Unit tests of common/stats/ks.ts with expected values written out by hand.
 *
 * Every expected value was computed once with scipy 1.17.1 / numpy 2.4.6 (the
 * versions pinned in scripts/setup/requirements-test.txt) by the call given in the
 * comment, and pasted here as a literal. The live comparison with scipy is
 * tests/external/ks-scipy.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ks2samp, ks2sampSorted, SortedSample } from '../../../../common/stats/ks.ts';
import type { KsAlternative, KsMethod, KsResult } from '../../../../common/stats/ks.ts';

const EXACT_REL = 1e-9;
const EXACT_ABS = 1e-12;
const ASYMP_ABS = 1e-6;
const STAT_ABS = 1e-12;

// prettier-ignore
const A = [0.61, 0.29, 0.06, 0.59, -1.73, -0.74, 0.51, -0.56, 0.39, 1.64, 0.05, -0.06, 0.64, -0.82, 0.37, 1.77, 1.09, -1.28, 2.36, 1.31, 1.05, -0.32, -0.4, 1.06, -2.47];
// prettier-ignore
const B = [0.81, 1.2, -0.2, 2.01, 0.35, 1.51, 0.96, -0.33, 1.48, 0.76, 0.29, 1.39, 0.41, 2.2, 1.03, 0.63, -0.05, 1.87, 0.92, 1.62, 0.58, 1.11, 0.15, 2.71, 0.87, 1.34, 0.5, -0.71, 1.45, 0.98];
const TIES1 = [1, 2, 2, 3, 3, 3, 4];
const TIES2 = [2, 3, 3, 4, 4, 5, 5, 5];
const EQ1 = Array.from({ length: 10 }, (_, i) => i);
const EQ2 = Array.from({ length: 10 }, (_, i) => i + 3.5);
// Deterministic "random-looking" data; the same formulas in Python give the same doubles.
/** [((i*7919) % 1009) / 1009 for i in range(300)] */
const FX = Array.from({ length: 300 }, (_, i) => ((i * 7919) % 1009) / 1009);
/** [((i*6007) % 1013) / 1013 * 1.1 - 0.05 for i in range(450)] */
const FY = Array.from({ length: 450 }, (_, i) => (((i * 6007) % 1013) / 1013) * 1.1 - 0.05);
/** [((i*7919) % 10007) / 10007 for i in range(12000)] */
const REF = Array.from({ length: 12000 }, (_, i) => ((i * 7919) % 10007) / 10007);
/** [((i*6007) % 1013) / 1013 * 0.9 + 0.02 for i in range(400)] */
const WIN = Array.from({ length: 400 }, (_, i) => (((i * 6007) % 1013) / 1013) * 0.9 + 0.02);
/** [((i*37) % 101) / 101 for i in range(40)], [((i*53) % 103) / 103 + 0.15 for i in range(60)] */
const P1 = Array.from({ length: 40 }, (_, i) => ((i * 37) % 101) / 101);
const P2 = Array.from({ length: 60 }, (_, i) => ((i * 53) % 103) / 103 + 0.15);
/** [((i*7919) % 1009) / 1009 for i in range(1200)], [((i*6007) % 1013) / 1013 + 0.01 for i in range(1300)] */
const F1 = Array.from({ length: 1200 }, (_, i) => ((i * 7919) % 1009) / 1009);
const F2 = Array.from({ length: 1300 }, (_, i) => ((i * 6007) % 1013) / 1013 + 0.01);

/** [((i*7919) % 46349) / 46349 for i in range(46341)], [((i*6007) % 46351) / 46351 * 1.02 for i in range(46342)] */
const L1 = Array.from({ length: 46341 }, (_, i) => ((i * 7919) % 46349) / 46349);
const L2 = Array.from({ length: 46342 }, (_, i) => (((i * 6007) % 46351) / 46351) * 1.02);

const DATA: Record<string, [number[], number[]]> = {
  AB: [A, B],
  ties: [TIES1, TIES2],
  equal: [EQ1, EQ2],
  formula: [FX, FY],
  big: [REF, WIN],
  '1v1': [[1.0], [2.0]],
  paths: [P1, P2],
  fallback: [F1, F2],
  int32: [L1, L2],
};

/** [data, alternative, method requested, statistic, pvalue, statistic_location, statistic_sign, method used] */
type Row = [string, KsAlternative, KsMethod, number, number, number, 1 | -1, 'exact' | 'asymp'];

// r = scipy.stats.ks_2samp(x, y, alternative=alt, method=method) for the data sets above;
// columns: r.statistic, r.pvalue, r.statistic_location, r.statistic_sign.
// prettier-ignore
const ROWS: Row[] = [
  ['AB', 'two-sided', 'auto', 0.35333333333333333, 0.05094031045787594, 0.64, 1, 'exact'],
  ['AB', 'two-sided', 'exact', 0.35333333333333333, 0.05094031045787594, 0.64, 1, 'exact'],
  ['AB', 'two-sided', 'asymp', 0.35333333333333333, 0.0455074952042851, 0.64, 1, 'asymp'],
  ['AB', 'less', 'auto', 0.006666666666666667, 0.9809590952279051, 2.2, -1, 'exact'],
  ['AB', 'less', 'exact', 0.006666666666666667, 0.9809590952279051, 2.2, -1, 'exact'],
  ['AB', 'less', 'asymp', 0.00666666666666671, 0.9923526234465161, 2.2, -1, 'asymp'],
  ['AB', 'greater', 'auto', 0.35333333333333333, 0.02547028818912975, 0.64, 1, 'exact'],
  ['AB', 'greater', 'exact', 0.35333333333333333, 0.02547028818912975, 0.64, 1, 'exact'],
  ['AB', 'greater', 'asymp', 0.35333333333333333, 0.02357720915143942, 0.64, 1, 'asymp'],
  // ties: the ECDFs are compared at every data value with searchsorted(side='right')
  ['ties', 'two-sided', 'exact', 0.48214285714285715, 0.2522144522144522, 3.0, 1, 'exact'],
  ['ties', 'two-sided', 'asymp', 0.4821428571428571, 0.21977333663057064, 3.0, 1, 'asymp'],
  ['ties', 'less', 'exact', 0.0, 1.0, 5.0, -1, 'exact'],
  ['ties', 'less', 'asymp', 0.0, 1.0, 5.0, -1, 'asymp'], // scipy returns -0.0 here
  ['ties', 'greater', 'exact', 0.48214285714285715, 0.1261849261849262, 3.0, 1, 'exact'],
  ['ties', 'greater', 'asymp', 0.4821428571428571, 0.11001452712433128, 3.0, 1, 'asymp'],
  // n1 == n2: _compute_prob_outside_square and the one-sided product
  ['equal', 'two-sided', 'exact', 0.4, 0.41752365281777043, 3.0, 1, 'exact'],
  ['equal', 'less', 'exact', 0.0, 1.0, 12.5, -1, 'exact'],
  ['equal', 'greater', 'exact', 0.4, 0.2097902097902098, 3.0, 1, 'exact'],
  // n1 != n2: _compute_outer_prob_inside_method and _count_paths_outside_method
  ['formula', 'two-sided', 'exact', 0.04888888888888889, 0.7697355834305873, 0.9682854311199207, 1, 'exact'],
  ['formula', 'two-sided', 'asymp', 0.04888888888888898, 0.7638857365683385, 0.9682854311199207, 1, 'asymp'],
  ['formula', 'less', 'exact', 0.04888888888888889, 0.4136844862540186, -0.0022211253701875586, -1, 'exact'],
  ['formula', 'less', 'asymp', 0.04888888888888889, 0.4041076104156935, -0.0022211253701875586, -1, 'asymp'],
  ['formula', 'greater', 'exact', 0.04888888888888889, 0.4136844862540186, 0.9682854311199207, 1, 'exact'],
  ['formula', 'greater', 'asymp', 0.04888888888888898, 0.40410761041569215, 0.9682854311199207, 1, 'asymp'],
  // max(n1, n2) > 10000: 'auto' is asymp
  ['big', 'two-sided', 'auto', 0.08258333333333334, 0.009602971891476597, 0.9173346495557749, -1, 'asymp'],
  ['big', 'less', 'auto', 0.08258333333333334, 0.0048110644615876295, 0.9173346495557749, -1, 'asymp'],
  ['big', 'greater', 'auto', 0.02, 0.7236547534434047, 0.0199860097931448, 1, 'asymp'],
  // kstwo.sf(1.0, round(0.5) = 0) is NaN in scipy
  ['1v1', 'two-sided', 'asymp', 1.0, NaN, 1.0, 1, 'asymp'],
  ['1v1', 'two-sided', 'exact', 1.0, 1.0, 1.0, 1, 'exact'],
  ['1v1', 'less', 'asymp', 0.0, 1.0, 2.0, -1, 'asymp'], // scipy returns -0.0 here
  ['paths', 'less', 'exact', 0.0, 1.0, 1.1305825242718446, -1, 'exact'],
  ['paths', 'greater', 'exact', 0.15833333333333333, 0.280492383884961, 0.15841584158415842, 1, 'exact'],
  // binom overflows in _count_paths_outside_method: scipy warns
  // "ks_2samp: Exact calculation unsuccessful. Switching to method=asymp."
  ['fallback', 'greater', 'exact', 0.012115384615384615, 0.8227207349905279, 0.7254707631318137, 1, 'asymp'],
  // n1/g >= INT32_MAX / (n2/g): scipy warns "Exact ks_2samp calculation not possible with samples
  // sizes 46341 and 46342. Switching to 'asymp'." (and the statistic is not rounded to h/lcm)
  ['int32', 'two-sided', 'exact', 0.019615036036424893, 3.558461094727148e-8, 0.9999784245614792, 1, 'asymp'],
  ['int32', 'greater', 'exact', 0.019615036036424893, 1.7703732467869407e-8, 0.9999784245614792, 1, 'asymp'],
];

function expectPvalue(actual: number, expected: number, method: 'exact' | 'asymp'): void {
  if (Number.isNaN(expected)) {
    expect(actual).toBeNaN();
    return;
  }
  const tol = method === 'exact' ? Math.max(EXACT_ABS, EXACT_REL * Math.abs(expected)) : ASYMP_ABS;
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tol);
}

function expectRow(r: KsResult, row: Row): void {
  const [, , , statistic, pvalue, location, sign, used] = row;
  expect(r.method).toBe(used);
  expect(Math.abs(r.statistic - statistic)).toBeLessThanOrEqual(STAT_ABS);
  expectPvalue(r.pvalue, pvalue, used);
  expect(r.statisticLocation).toBe(location);
  expect(r.statisticSign).toBe(sign);
}

describe('ks2samp matches scipy.stats.ks_2samp', () => {
  it.each(ROWS)('%s %s %s', (...row) => {
    const [name, alternative, method] = row;
    const [x, y] = DATA[name] as [number[], number[]];
    expectRow(ks2samp(x, y, { alternative, method }), row);
  });

  it.each(ROWS)('ks2sampSorted %s %s %s', (...row) => {
    const [name, alternative, method] = row;
    const [x, y] = DATA[name] as [number[], number[]];
    const reference = new SortedSample(x);
    expectRow(ks2sampSorted(reference, y, { alternative, method }), row);
    expectRow(ks2sampSorted(reference, new SortedSample(y), { alternative, method }), row);
  });

  it('defaults to two-sided and auto', () => {
    const r = ks2samp(A, B);
    expect(r).toEqual(ks2samp(A, B, { alternative: 'two-sided', method: 'auto' }));
    expect(r.method).toBe('exact');
  });

  it('the exact statistic is the rounded h/lcm, the asymptotic one the raw ECDF difference', () => {
    // see the 'formula' rows: 0.04888888888888889 (= 22/450) exact, 0.04888888888888898 asymp
    const exact = ks2samp(FX, FY, { method: 'exact' });
    const asymp = ks2samp(FX, FY, { method: 'asymp' });
    expect(exact.statistic).toBe(22 / 450);
    expect(asymp.statistic).not.toBe(exact.statistic);
  });

  it('less for (x, y) is greater for (y, x)', () => {
    const a = ks2samp(FX, FY, { alternative: 'less', method: 'exact' });
    const b = ks2samp(FY, FX, { alternative: 'greater', method: 'exact' });
    expect(a.statistic).toBe(b.statistic);
    expect(a.pvalue).toBeCloseTo(b.pvalue, 12);
  });

  it('identical samples give statistic 0 and p-value 1', () => {
    for (const method of ['exact', 'asymp'] as const) {
      const r = ks2samp(FX, FX.slice().reverse(), { method });
      expect(r.statistic).toBe(0);
      expect(r.pvalue).toBe(1);
    }
  });

  it('accepts typed arrays and infinities', () => {
    // scipy.stats.ks_2samp([-inf, 0, 1, 2], [0.5, 1.5, inf]) -> statistic 0.5, pvalue 0.6571428571428571,
    // statistic_location 0.0, statistic_sign 1
    const r = ks2samp(new Float64Array([-Infinity, 0, 1, 2]), new Float32Array([0.5, 1.5, Infinity]));
    expect(r.statistic).toBe(0.5);
    expectPvalue(r.pvalue, 0.6571428571428571, 'exact');
    expect(r.statisticLocation).toBe(0);
    expect(r.statisticSign).toBe(1);
  });
});

describe('SortedSample', () => {
  it('copies and sorts without touching the input', () => {
    const input = [3, -1, 2, 2, 0];
    const s = new SortedSample(input);
    expect(Array.from(s.values)).toEqual([-1, 0, 2, 2, 3]);
    expect(s.size).toBe(5);
    expect(input).toEqual([3, -1, 2, 2, 0]);
  });
});

describe('input validation', () => {
  it('rejects NaN with a RangeError that says so', () => {
    expect(() => ks2samp([1, NaN, 3], [1, 2])).toThrow(RangeError);
    expect(() => ks2samp([1, NaN, 3], [1, 2])).toThrow(/NaN/);
    expect(() => ks2samp([1, 2], [NaN])).toThrow(/NaN/);
    expect(() => new SortedSample([0, NaN])).toThrow(/NaN/);
    expect(() => ks2sampSorted(new SortedSample([1, 2]), [Number.NaN])).toThrow(/NaN/);
  });

  it('rejects empty samples', () => {
    expect(() => ks2samp([], [1, 2])).toThrow(RangeError);
    expect(() => ks2samp([1, 2], [])).toThrow(/empty/);
    expect(() => new SortedSample([])).toThrow(/empty/);
  });

  it('rejects unknown options', () => {
    expect(() => ks2samp([1], [2], { method: 'fast' as KsMethod })).toThrow(TypeError);
    expect(() => ks2samp([1], [2], { alternative: 'both' as KsAlternative })).toThrow(TypeError);
  });
});
