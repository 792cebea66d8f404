/**
 * Two-sample Kolmogorov–Smirnov test, a port of `scipy.stats.ks_2samp`
 * (scipy 1.17.1, the version pinned in `scripts/setup/requirements-test.txt`).
 *
 * Everything below follows scipy's definitions step by step so that the
 * statistic, the p-value, the statistic location/sign and the method actually
 * used agree with scipy (checked against real scipy by
 * `tests/external/ks-scipy.test.ts`):
 *
 * - statistic: `scipy/stats/_stats_py.py::ks_2samp` — ECDF differences evaluated
 *   at every point of the concatenated data (`np.searchsorted(..., side='right')`,
 *   so ties are handled as scipy does), first arg-max / arg-min in concatenation
 *   order for the location.
 * - method choice: 'auto' is exact when `max(n1, n2) <= 10000` (`MAX_AUTO_N`),
 *   'exact' switches to 'asymp' when `n1/g >= INT32_MAX / (n2/g)`, and a failed
 *   exact computation (overflow, NaN, probability outside [0, 1]) falls back to
 *   'asymp' exactly where `_attempt_exact_2kssamp` does.
 * - exact p-values: `_attempt_exact_2kssamp`, `_compute_prob_outside_square`,
 *   `_count_paths_outside_method` (with a port of `scipy.special.binom` from
 *   xsf `binom.h` / cephes `beta.h`, `gamma.h`) and
 *   `_compute_outer_prob_inside_method` (`scipy/stats/_stats_pythran.py`).
 * - asymptotic p-values: two-sided is `kstwo.sf(d, round(m*n/(m+n)))`, i.e.
 *   `scipy/stats/_ksstats.py::_kolmogn` (Simard & L'Ecuyer's choice between the
 *   Ruben–Gambino closed forms, Durbin's matrix algorithm in the
 *   Marsaglia–Tsang–Wang form, Pomeranz's recursion, the Pelz–Good
 *   approximation and `2 * scipy.special.smirnov`, the latter ported from xsf
 *   `cephes/kolmogorov.h`); one-sided is Hodges' eqn 5.3 as in `ks_2samp`.
 *
 * Three modules: this one is the test (statistic, method choice, asymptotic
 * p-values); `ks-exact.ts` the exact two-sample distribution (lattice path
 * counting); `special.ts` the special functions both use (`binom`, `kstwo.sf`,
 * `smirnov`).
 *
 * Known, deliberate differences (all far inside the documented tolerances):
 * scipy's `smirnov` sums in double-double arithmetic, this port in doubles with
 * exponent tracking in the log domain (relative error ~1e-11); numpy's
 * long-double rescaling in `_kolmogn_DMTW`/`_kolmogn_Pomeranz` and BLAS
 * summation order in `matmul` are replaced by plain doubles.
 */

import { exactTwoSample, gcd } from './ks-exact.ts';
import { kstwoSf, roundHalfEven } from './special.ts';

/** Which alternative hypothesis to test, as scipy's `alternative`. */
export type KsAlternative = 'two-sided' | 'less' | 'greater';
/** How to compute the p-value, as scipy's `method`. */
export type KsMethod = 'auto' | 'exact' | 'asymp';

/** Options of {@link ks2samp} and {@link ks2sampSorted}. */
export interface KsOptions {
  /** Default 'two-sided'. */
  alternative?: KsAlternative;
  /** Default 'auto': exact when both sizes are at most 10000, asymptotic otherwise. */
  method?: KsMethod;
}

/** The result of a two-sample KS test, field for field scipy's `KstestResult`. */
export interface KsResult {
  /**
   * The KS statistic (for the exact method, scipy's `round(d * lcm) / lcm`). A zero
   * statistic is always +0 (scipy's asymptotic path can return -0.0 via `np.clip`).
   */
  statistic: number;
  /**
   * The p-value, clipped to [0, 1]. NaN in the one case scipy returns NaN:
   * two-sided 'asymp' with `round(n1*n2/(n1+n2)) == 0`, i.e. two samples of size 1.
   */
  pvalue: number;
  /** the method actually used, after 'auto' and any exact->asymp fallback scipy does */
  method: 'exact' | 'asymp';
  /** the statistic location and sign like scipy's statistic_location/statistic_sign */
  statisticLocation: number;
  /** +1 when the ECDF of the first sample exceeds the second's at `statisticLocation`, else -1. */
  statisticSign: 1 | -1;
}

/**
 * A sample sorted once (ascending) and validated, reused across many tests:
 * the drift detector's reference window is wrapped once and never re-sorted.
 */
export class SortedSample {
  /** The values, sorted ascending. Treat as read-only. */
  readonly values: Float64Array;
  /** Number of values. */
  readonly size: number;

  /**
   * Copies and sorts `values`.
   * @throws RangeError when `values` is empty or contains NaN; TypeError for a non-number.
   */
  constructor(values: ArrayLike<number>, name = 'sample') {
    const n = values.length;
    if (n === 0) throw new RangeError(`ks2samp: ${name} is empty; both samples need at least one value`);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'number') throw new TypeError(`ks2samp: ${name}[${i}] is not a number (${typeof v})`);
      if (Number.isNaN(v)) throw new RangeError(`ks2samp: ${name}[${i}] is NaN; NaN values are not accepted`);
      out[i] = v;
    }
    out.sort();
    this.values = out;
    this.size = n;
  }
}

/**
 * Two-sample Kolmogorov–Smirnov test of `x` against `y`: `scipy.stats.ks_2samp(x, y,
 * alternative, method)` (scipy/stats/_stats_py.py).
 *
 * @throws RangeError for an empty sample or a NaN value; TypeError for an unknown option.
 */
export function ks2samp(x: ArrayLike<number>, y: ArrayLike<number>, options?: KsOptions): KsResult {
  return ksSorted(new SortedSample(x, 'x'), new SortedSample(y, 'y'), options);
}

/**
 * The same test with a pre-sorted reference as the first sample (`data1` in scipy):
 * only `y` is sorted (unless it is already a {@link SortedSample}), and the
 * statistic is computed by merging the two sorted arrays in O(n1 + n2).
 */
export function ks2sampSorted(
  reference: SortedSample,
  y: ArrayLike<number> | SortedSample,
  options?: KsOptions,
): KsResult {
  const window = y instanceof SortedSample ? y : new SortedSample(y, 'y');
  return ksSorted(reference, window, options);
}

const MAX_AUTO_N = 10000;
const INT32_MAX = 2147483647;

function ksSorted(s1: SortedSample, s2: SortedSample, options?: KsOptions): KsResult {
  const alternative = options?.alternative ?? 'two-sided';
  let mode: KsMethod = options?.method ?? 'auto';
  if (mode !== 'auto' && mode !== 'exact' && mode !== 'asymp') {
    throw new TypeError(`ks2samp: invalid method ${String(mode)}; expected 'auto', 'exact' or 'asymp'`);
  }
  if (alternative !== 'two-sided' && alternative !== 'less' && alternative !== 'greater') {
    throw new TypeError(
      `ks2samp: invalid alternative ${String(alternative)}; expected 'two-sided', 'less' or 'greater'`,
    );
  }
  const n1 = s1.size;
  const n2 = s2.size;
  const st = ecdfExtremes(s1.values, s2.values);
  // scipy: minS = np.clip(-cddiffs[argminS], 0, 1); maxS = cddiffs[argmaxS]
  const minS = Math.min(Math.max(-st.minDiff, 0), 1);
  const maxS = st.maxDiff;
  let d: number;
  let location: number;
  let sign: 1 | -1;
  if (alternative === 'less' || (alternative === 'two-sided' && minS > maxS)) {
    d = minS;
    location = st.minLocation;
    sign = -1;
  } else {
    d = maxS;
    location = st.maxLocation;
    sign = 1;
  }

  const g = gcd(n1, n2);
  const n1g = n1 / g;
  const n2g = n2 / g;
  let prob = -Infinity;
  if (mode === 'auto') {
    mode = Math.max(n1, n2) <= MAX_AUTO_N ? 'exact' : 'asymp';
  } else if (mode === 'exact') {
    // If lcm(n1, n2) is too big, switch from exact to asymp (scipy warns).
    if (n1g >= INT32_MAX / n2g) mode = 'asymp';
  }
  if (mode === 'exact') {
    const ex = exactTwoSample(n1, n2, g, d, alternative === 'two-sided');
    d = ex.d;
    prob = ex.prob;
    if (!ex.success) mode = 'asymp';
  }
  if (mode === 'asymp') {
    // sorted because the one-sided formula is not symmetric in n1, n2
    const m = Math.max(n1, n2);
    const n = Math.min(n1, n2);
    const en = (m * n) / (m + n);
    if (alternative === 'two-sided') {
      prob = kstwoSf(d, roundHalfEven(en));
    } else {
      const z = Math.sqrt(en) * d;
      // Hodges' suggested approximation Eqn 5.3; requires m to be the larger of (n1, n2)
      const expt = -2 * (z * z) - (2 * z * (m + 2 * n)) / Math.sqrt(m * n * (m + n)) / 3.0;
      prob = Math.exp(expt);
    }
  }
  // np.clip keeps NaN
  if (prob < 0) prob = 0;
  else if (prob > 1) prob = 1;
  return { statistic: d, pvalue: prob, method: mode, statisticLocation: location, statisticSign: sign };
}

interface EcdfExtremes {
  maxDiff: number;
  maxLocation: number;
  minDiff: number;
  minLocation: number;
}

/**
 * max and min of `cdf1 - cdf2` over the concatenated data `[a, b]` with
 * `cdf_k = searchsorted(data_k, v, 'right') / n_k`, and the value at the first
 * arg-max / arg-min in concatenation order (np.argmax / np.argmin semantics),
 * computed by merging the two sorted arrays.
 */
function ecdfExtremes(a: Float64Array, b: Float64Array): EcdfExtremes {
  const n1 = a.length;
  const n2 = b.length;
  let maxDiff = -Infinity;
  let minDiff = Infinity;
  let maxLocation = NaN;
  let minLocation = NaN;
  // points of data1, in order
  let p1 = 0;
  let p2 = 0;
  for (let i = 0; i < n1; i++) {
    const v = a[i]!;
    if (p1 <= i) {
      p1 = i + 1;
      while (p1 < n1 && a[p1]! <= v) p1++;
    }
    while (p2 < n2 && b[p2]! <= v) p2++;
    const diff = p1 / n1 - p2 / n2;
    if (diff > maxDiff) {
      maxDiff = diff;
      maxLocation = v;
    }
    if (diff < minDiff) {
      minDiff = diff;
      minLocation = v;
    }
  }
  // then the points of data2
  p1 = 0;
  p2 = 0;
  for (let i = 0; i < n2; i++) {
    const v = b[i]!;
    if (p2 <= i) {
      p2 = i + 1;
      while (p2 < n2 && b[p2]! <= v) p2++;
    }
    while (p1 < n1 && a[p1]! <= v) p1++;
    const diff = p1 / n1 - p2 / n2;
    if (diff > maxDiff) {
      maxDiff = diff;
      maxLocation = v;
    }
    if (diff < minDiff) {
      minDiff = diff;
      minLocation = v;
    }
  }
  return { maxDiff, maxLocation, minDiff, minLocation };
}
