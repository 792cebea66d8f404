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
 * Known, deliberate differences (all far inside the documented tolerances):
 * scipy's `smirnov` sums in double-double arithmetic, this port in doubles with
 * exponent tracking in the log domain (relative error ~1e-11); numpy's
 * long-double rescaling in `_kolmogn_DMTW`/`_kolmogn_Pomeranz` and BLAS
 * summation order in `matmul` are replaced by plain doubles.
 */

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
    const ex = attemptExact2kssamp(n1, n2, g, d, alternative);
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

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** np.round / Python round on a float: round half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

// ---------------------------------------------------------------------------
// Exact distribution (scipy/stats/_stats_py.py, scipy/stats/_stats_pythran.py)
// ---------------------------------------------------------------------------

interface ExactAttempt {
  success: boolean;
  d: number;
  prob: number;
}

/** Port of `_attempt_exact_2kssamp(n1, n2, g, d, alternative)`. */
function attemptExact2kssamp(
  n1: number,
  n2: number,
  g: number,
  d: number,
  alternative: KsAlternative,
): ExactAttempt {
  const lcm = (n1 / g) * n2;
  const h = roundHalfEven(d * lcm);
  d = (h * 1.0) / lcm;
  if (h === 0) return { success: true, d, prob: 1.0 };
  let prob: number;
  if (alternative === 'two-sided') {
    prob = n1 === n2 ? computeProbOutsideSquare(n1, h) : computeOuterProbInsideMethod(n1, n2, g, h);
  } else if (n1 === n2) {
    // prob = binom(2n, n-h) / binom(2n, n), evaluated as a product
    prob = 1;
    for (let j = 0; j < h; j++) prob *= (n1 - j) / (n1 + j + 1.0);
  } else {
    const numPaths = countPathsOutsideMethod(n1, n2, g, h);
    const bin = binom(n1 + n2, n1);
    // scipy raises (errstate over/invalid='raise') or sees inf/NaN: treat as failure
    if (!Number.isFinite(numPaths) || numPaths > bin || !Number.isFinite(bin))
      return { success: false, d, prob: NaN };
    prob = numPaths / bin;
  }
  if (Number.isNaN(prob) || !Number.isFinite(prob)) return { success: false, d, prob: NaN };
  if (!(prob >= 0 && prob <= 1)) return { success: false, d, prob };
  return { success: true, d, prob };
}

/**
 * Port of `_compute_prob_outside_square(n, h)`: Pr(D_{n,n} >= h/n), the
 * proportion of paths that pass outside the lines x - y = +/-h.
 */
function computeProbOutsideSquare(n: number, h: number): number {
  let P = 0.0;
  let k = Math.floor(n / h);
  while (k >= 0) {
    let p1 = 1.0;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    P = p1 * (1.0 - P);
    k -= 1;
  }
  return 2 * P;
}

let outerScratch = new Float64Array(1024);

/**
 * Port of `_compute_outer_prob_inside_method(m, n, g, h)` (scipy/stats/_stats_pythran.py):
 * the proportion of lattice paths from (0, 0) to (m, n) that do not stay strictly
 * inside |x/m - y/n| < h/lcm(m, n), computed with Viehmann's recursion for 1 - p
 * over a sliding window of one column (O(m * window), no per-cell allocation).
 */
function computeOuterProbInsideMethod(m: number, n: number, g: number, h: number): number {
  if (m < n) {
    const t = m;
    m = n;
    n = t;
  }
  const mg = m / g;
  const ng = n / g;
  let minj = 0;
  let maxj = Math.min(Math.ceil(h / mg), n + 1);
  let curlen = maxj - minj;
  const lenA = Math.min(2 * maxj + 2, n + 1);
  if (outerScratch.length < lenA) outerScratch = new Float64Array(Math.max(lenA, 2 * outerScratch.length));
  const A = outerScratch;
  A.fill(1.0, 0, lenA);
  A.fill(0.0, minj, maxj);
  for (let i = 1; i <= m; i++) {
    const lastminj = minj;
    const lastlen = curlen;
    minj = Math.max(Math.floor((ng * i - h) / mg) + 1, 0);
    minj = Math.min(minj, n);
    maxj = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (maxj <= minj) return 1.0;
    let val = minj === 0 ? 0.0 : 1.0;
    const len = maxj - minj;
    const shift = minj - lastminj;
    for (let jj = 0; jj < len; jj++) {
      const j = jj + minj;
      val = (A[jj + shift]! * i + val * j) / (i + j);
      A[jj] = val;
    }
    curlen = len;
    if (lastlen > curlen) A.fill(1.0, len, Math.min(len + (lastlen - curlen), lenA));
  }
  return A[maxj - minj - 1]!;
}

/**
 * Port of `_count_paths_outside_method(m, n, g, h)`: the number of lattice paths
 * that go below m*y <= n*x - h*g at some point (Hodges). Returns a non-finite
 * value where scipy overflows (it then raises or propagates inf/NaN).
 */
function countPathsOutsideMethod(m: number, n: number, g: number, h: number): number {
  if (m < n) {
    const t = m;
    m = n;
    n = t;
  }
  const mg = m / g;
  const ng = n / g;
  // Not every x needs to be considered: wherever n*x/m + ng*h crosses an integer
  const lxj = n + Math.floor((mg - h) / mg);
  if (lxj === 0) return binom(m + n, n);
  const xj = new Float64Array(lxj);
  for (let j = 0; j < lxj; j++) xj[j] = Math.floor((h + mg * j + ng - 1) / ng);
  // B[j] == B(x_j, j)
  const B = new Float64Array(lxj);
  B[0] = 1;
  for (let j = 1; j < lxj; j++) {
    const xjj = xj[j]!;
    let Bj = binom(xjj + j, j);
    for (let i = 0; i < j; i++) {
      const bin = binom(xjj - xj[i]! + j - i, j - i);
      Bj -= bin * B[i]!;
    }
    if (!Number.isFinite(Bj)) return NaN;
    B[j] = Bj;
  }
  let numPaths = 0;
  for (let j = 0; j < lxj; j++) {
    const bin = binom(m - xj[j]! + (n - j), n - j);
    numPaths += B[j]! * bin;
  }
  return numPaths;
}

// ---------------------------------------------------------------------------
// scipy.special.binom for integer 0 <= k <= n (xsf binom.h, cephes beta.h/gamma.h)
// ---------------------------------------------------------------------------

// cephes/xsf constants and coefficients, written as the shortest literal of the same double.
const MAXGAM = 171.6243769563027;
const MAXLOG = 709.782712893384;
const MINLOG = -745.1332191019412;
const SQRT2PI = 2.5066282746310007;
const LS2PI = 0.9189385332046728;
const MAXSTIR = 143.01608;
const MAXLGM = 2.556348e305;
const BETA_ASYMP_FACTOR = 1e6;

const GAMMA_P = [
  0.00016011952247675185, 0.0011913514700658638, 0.010421379756176158, 0.04763678004571372,
  0.20744822764843598, 0.4942148268014971, 1.0,
];
const GAMMA_Q = [
  -2.3158187332412014e-5, 0.0005396055804933034, -0.004456419138517973, 0.011813978522206043,
  0.035823639860549865, -0.23459179571824335, 0.0714304917030273, 1.0,
];
const GAMMA_STIR = [
  0.0007873113957930937, -0.00022954996161337813, -0.0026813261780578124, 0.0034722222160545866,
  0.08333333333334822,
];
const GAMMA_A = [
  0.0008116141674705085, -0.0005950619042843014, 0.0007936503404577169, -0.002777777777300997,
  0.08333333333333319,
];
const GAMMA_B = [
  -1378.2515256912086, -38801.631513463784, -331612.9927388712, -1162370.974927623, -1721737.0082083966,
  -853555.6642457654,
];
const GAMMA_C = [
  -351.81570143652345, -17064.210665188115, -220528.59055385445, -1139334.4436798252, -2532523.0717758294,
  -2018891.4143353277,
];

/** cephes polevl: coef[0]*x^N + ... + coef[N]. */
function polevl(x: number, coef: readonly number[], N: number): number {
  let ans = coef[0]!;
  for (let i = 1; i <= N; i++) ans = ans * x + coef[i]!;
  return ans;
}

/** cephes p1evl: like polevl with an implicit leading coefficient 1. */
function p1evl(x: number, coef: readonly number[], N: number): number {
  let ans = x + coef[0]!;
  for (let i = 1; i < N; i++) ans = ans * x + coef[i]!;
  return ans;
}

/** cephes stirf: Gamma by Stirling's formula, 33 <= x <= 172. */
function stirf(x: number): number {
  if (x >= MAXGAM) return Infinity;
  let w = 1.0 / x;
  w = 1.0 + w * polevl(w, GAMMA_STIR, 4);
  let y = Math.exp(x);
  if (x > MAXSTIR) {
    const v = Math.pow(x, 0.5 * x - 0.25);
    y = v * (v / y);
  } else {
    y = Math.pow(x, x - 0.5) / y;
  }
  return SQRT2PI * y * w;
}

/** cephes Gamma for x >= 1 (the only arguments binom uses here). */
function gammaPositive(x: number): number {
  if (x > 33.0) return stirf(x);
  let z = 1.0;
  while (x >= 3.0) {
    x -= 1.0;
    z *= x;
  }
  while (x < 2.0) {
    if (x < 1e-9) return z / ((1.0 + 0.5772156649015329 * x) * x);
    z /= x;
    x += 1.0;
  }
  if (x === 2.0) return z;
  x -= 2.0;
  return (z * polevl(x, GAMMA_P, 6)) / polevl(x, GAMMA_Q, 7);
}

/** cephes lgam_sgn for x > 0. */
function lgamPositive(x: number): number {
  if (x < 13.0) {
    let z = 1.0;
    let p = 0.0;
    let u = x;
    while (u >= 3.0) {
      p -= 1.0;
      u = x + p;
      z *= u;
    }
    while (u < 2.0) {
      z /= u;
      p += 1.0;
      u = x + p;
    }
    if (z < 0.0) z = -z;
    if (u === 2.0) return Math.log(z);
    p -= 2.0;
    x = x + p;
    p = (x * polevl(x, GAMMA_B, 5)) / p1evl(x, GAMMA_C, 6);
    return Math.log(z) + p;
  }
  if (x > MAXLGM) return Infinity;
  if (x >= 1000.0) {
    // lgam_large_x
    const q = (x - 0.5) * Math.log(x) - x + LS2PI;
    if (x > 1.0e8) return q;
    let p = 1.0 / (x * x);
    p = ((0.0007936507936507937 * p - 0.002777777777777778) * p + 0.08333333333333333) / x;
    return q + p;
  }
  const q = (x - 0.5) * Math.log(x) - x + LS2PI;
  const p = 1.0 / (x * x);
  return q + polevl(p, GAMMA_A, 4) / x;
}

/** cephes beta(a, b) for a, b >= 1. */
function betaPositive(a: number, b: number): number {
  if (Math.abs(a) < Math.abs(b)) {
    const t = a;
    a = b;
    b = t;
  }
  if (Math.abs(a) > BETA_ASYMP_FACTOR * Math.abs(b) && a > BETA_ASYMP_FACTOR) {
    // lbeta_asymp: avoid loss of precision in lgam(a + b) - lgam(a)
    let r = lgamPositive(b);
    r -= b * Math.log(a);
    r += (b * (1 - b)) / (2 * a);
    r += (b * (1 - b) * (1 - 2 * b)) / (12 * a * a);
    r += (-b * b * (1 - b) * (1 - b)) / (12 * a * a * a);
    return Math.exp(r);
  }
  let y = a + b;
  if (Math.abs(y) > MAXGAM || Math.abs(a) > MAXGAM || Math.abs(b) > MAXGAM) {
    y = lgamPositive(y);
    y = lgamPositive(b) - y;
    y = lgamPositive(a) + y;
    if (y > MAXLOG) return Infinity;
    return Math.exp(y);
  }
  // rgamma(y) is 1/Gamma(y) for |y| > 4; binom only calls beta with a + b >= 22.
  y = 1.0 / gammaPositive(y);
  const ga = gammaPositive(a);
  const gb = gammaPositive(b);
  if (!Number.isFinite(y)) return Infinity;
  if (Math.abs(Math.abs(ga * y) - 1.0) > Math.abs(Math.abs(gb * y) - 1.0)) {
    y = gb * y;
    y *= ga;
  } else {
    y = ga * y;
    y *= gb;
  }
  return y;
}

/** `scipy.special.binom(n, k)` (xsf binom.h) for integers 0 <= k <= n. */
function binom(n: number, k: number): number {
  let kx = k;
  if (kx > n / 2 && n > 0) kx = n - kx; // reduce by symmetry
  if (kx >= 0 && kx < 20) {
    let num = 1.0;
    let den = 1.0;
    for (let i = 1; i < 1 + kx; i++) {
      num *= i + n - kx;
      den *= i;
      if (Math.abs(num) > 1e50) {
        num /= den;
        den = 1.0;
      }
    }
    return num / den;
  }
  // general case (the n >= 1e10 * k and k > 1e8 * |n| branches cannot occur for 0 <= k <= n < 1e10)
  return 1 / (n + 1) / betaPositive(1 + n - k, 1 + k);
}

// ---------------------------------------------------------------------------
// kstwo.sf: scipy/stats/_continuous_distns.py (kstwo_gen) and scipy/stats/_ksstats.py
// ---------------------------------------------------------------------------

const E128 = 128;
const EP128 = 2 ** 128;
const EM128 = 2 ** -128;
const LOG_2PI = Math.log(2 * Math.PI);
const SQRT2PI_NP = Math.sqrt(2 * Math.PI);
const MIN_LOG = -708;
const SQRT3 = Math.sqrt(3);
const PI_SQUARED = Math.PI ** 2;
const PI_FOUR = Math.PI ** 4;
const PI_SIX = Math.PI ** 6;
const STIRLING_COEFFS = [
  -0.029550653594771242, 0.00641025641025641, -0.0019175269175269176, 0.0008417508417508417,
  -0.0005952380952380953, 0.0007936507936507937, -0.002777777777777778, 0.08333333333333333,
];

/**
 * `scipy.stats.kstwo.sf(x, n)`: the rv_continuous wrapper (NaN for an invalid n,
 * 1 at or below the support's lower end 0.5/n, 0 at or above 1) around
 * `_kolmogn(n, x, cdf=False)`.
 */
function kstwoSf(x: number, n: number): number {
  if (!(n >= 1 && n === Math.round(n))) return NaN;
  if (Number.isNaN(x)) return NaN;
  if (x <= 0.5 / n) return 1.0;
  if (!(x < 1.0)) return 0.0;
  return kolmogn(n, x, false);
}

function clipProb(p: number): number {
  return p < 0 ? 0 : p > 1 ? 1 : p;
}

function selectAndClip(cdfprob: number, sfprob: number, cdf: boolean): number {
  return clipProb(cdf ? cdfprob : sfprob);
}

/** `_log_nfactorial_div_n_pow_n(n)`: log(n!/n^n) by Stirling with n*log(n) removed. */
function logNfactorialDivNPowN(n: number): number {
  const rn = 1.0 / n;
  return Math.log(n) / 2 - n + LOG_2PI / 2 + rn * polevl(rn / n, STIRLING_COEFFS, STIRLING_COEFFS.length - 1);
}

/** ldexp without intermediate overflow/underflow of 2**e. */
function ldexp(x: number, e: number): number {
  while (e > 1000) {
    x *= 2 ** 1000;
    e -= 1000;
  }
  while (e < -1000) {
    x *= 2 ** -1000;
    e += 1000;
  }
  return x * 2 ** e;
}

/**
 * `_kolmogn(n, x, cdf)` (Simard & L'Ecuyer 2011): CDF or SF of the two-sided
 * one-sample KS statistic D_n, choosing between the exact and approximate methods
 * exactly as scipy does.
 */
function kolmogn(n: number, x: number, cdf: boolean): number {
  if (Number.isNaN(n)) return n;
  if (Math.trunc(n) !== n || n <= 0) return NaN;
  if (x >= 1.0) return selectAndClip(1.0, 0.0, cdf);
  if (x <= 0.0) return selectAndClip(0.0, 1.0, cdf);
  const t = n * x;
  if (t <= 1.0) {
    // Ruben-Gambino: 1/2n <= x <= 1/n
    if (t <= 0.5) return selectAndClip(0.0, 1.0, cdf);
    let prob: number;
    if (n <= 140) {
      prob = 1;
      const c = 2 * t - 1;
      for (let i = 1; i <= n; i++) prob *= i * (1.0 / n) * c;
    } else {
      prob = Math.exp(logNfactorialDivNPowN(n) + n * Math.log(2 * t - 1));
    }
    return selectAndClip(prob, 1.0 - prob, cdf);
  }
  if (t >= n - 1) {
    // Ruben-Gambino
    const prob = 2 * Math.pow(1.0 - x, n);
    return selectAndClip(1 - prob, prob, cdf);
  }
  if (x >= 0.5) {
    // Exact: 2 * smirnov
    const prob = 2 * smirnovSf(n, x);
    return selectAndClip(1.0 - prob, prob, cdf);
  }
  const nxsquared = t * x;
  if (n <= 140) {
    if (nxsquared <= 0.754693) {
      const prob = kolmognDMTW(n, x);
      return selectAndClip(prob, 1.0 - prob, cdf);
    }
    if (nxsquared <= 4) {
      const prob = kolmognPomeranz(n, x);
      return selectAndClip(prob, 1.0 - prob, cdf);
    }
    // Miller approximation of 2*smirnov
    const prob = 2 * smirnovSf(n, x);
    return selectAndClip(1.0 - prob, prob, cdf);
  }
  // Split CDF and SF as they have different cutoffs on nxsquared.
  if (!cdf) {
    if (nxsquared >= 370.0) return 0.0;
    if (nxsquared >= 2.2) return clipProb(2 * smirnovSf(n, x));
    // Fall through and compute the SF as 1.0-CDF
  }
  let cdfprob: number;
  if (nxsquared >= 18.0) cdfprob = 1.0;
  else if (n <= 100000 && n * Math.pow(x, 1.5) <= 1.4) cdfprob = kolmognDMTW(n, x);
  else cdfprob = kolmognPelzGood(n, x);
  return selectAndClip(cdfprob, 1.0 - cdfprob, cdf);
}

function matmul(A: Float64Array, B: Float64Array, m: number): Float64Array {
  const C = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    const ri = i * m;
    for (let k = 0; k < m; k++) {
      const aik = A[ri + k]!;
      if (aik === 0) continue;
      const rk = k * m;
      for (let j = 0; j < m; j++) C[ri + j]! += aik * B[rk + j]!;
    }
  }
  return C;
}

/**
 * `_kolmogn_DMTW(n, d, cdf=True)`: Pr(D_n <= d) by Durbin's matrix algorithm in
 * the Marsaglia–Tsang–Wang form (k-th row of (n!/n^n) * H^n, with rescaling).
 */
function kolmognDMTW(n: number, d: number): number {
  if (d >= 1.0) return 1.0;
  const nd = n * d;
  if (nd <= 0.5) return 0.0;
  const k = Math.ceil(nd);
  const h = k - nd;
  const m = 2 * k - 1;
  let H: Float64Array = new Float64Array(m * m);
  const v = new Float64Array(m);
  const w = new Float64Array(m);
  let fac = 1.0;
  for (let j = 1; j <= m; j++) {
    v[j - 1] = 1.0 - Math.pow(h, j);
    w[j - 1] = fac;
    fac /= j;
    v[j - 1]! *= fac;
  }
  const tt = Math.pow(Math.max(2 * h - 1.0, 0), m) - 2 * Math.pow(h, m);
  v[m - 1] = (1.0 + tt) * fac;
  for (let i = 1; i < m; i++) {
    for (let r = i - 1; r < m; r++) H[r * m + i] = w[r - (i - 1)]!;
  }
  for (let r = 0; r < m; r++) H[r * m] = v[r]!;
  for (let c = 0; c < m; c++) H[(m - 1) * m + c] = v[m - 1 - c]!;

  let Hpwr: Float64Array = new Float64Array(m * m);
  for (let i = 0; i < m; i++) Hpwr[i * m + i] = 1;
  let nn = n;
  let expnt = 0;
  let Hexpnt = 0;
  const kk = (k - 1) * m + (k - 1);
  while (nn > 0) {
    if (nn % 2) {
      Hpwr = matmul(Hpwr, H, m);
      expnt += Hexpnt;
    }
    H = matmul(H, H, m);
    Hexpnt *= 2;
    if (Math.abs(H[kk]!) > EP128) {
      for (let i = 0; i < H.length; i++) H[i]! /= EP128;
      Hexpnt += E128;
    }
    nn = Math.floor(nn / 2);
  }
  let p = Hpwr[kk]!;
  // Multiply by n!/n^n
  for (let i = 1; i <= n; i++) {
    p = (i * p) / n;
    if (Math.abs(p) < EM128) {
      p *= EP128;
      expnt -= E128;
    }
  }
  if (expnt !== 0) p = ldexp(p, expnt);
  return clipProb(p);
}

/** `_pomeranz_compute_j1j2(i, n, ll, ceilf, roundf)`: the interval endpoints for row i. */
function pomeranzJ1J2(i: number, n: number, ll: number, ceilf: number, roundf: number): [number, number] {
  let j1: number;
  let j2: number;
  if (i === 0) {
    j1 = -ll - ceilf - 1;
    j2 = ll + ceilf - 1;
  } else {
    const ip1div2 = Math.floor((i + 1) / 2);
    const ip1mod2 = (i + 1) % 2;
    if (ip1mod2 === 0) {
      if (ip1div2 === n + 1) {
        j1 = n - ll - ceilf - 1;
        j2 = n + ll + ceilf - 1;
      } else {
        j1 = ip1div2 - 1 - ll - roundf - 1;
        j2 = ip1div2 + ll - 1 + ceilf - 1;
      }
    } else {
      j1 = ip1div2 - 1 - ll - 1;
      j2 = ip1div2 + ll + roundf - 1;
    }
  }
  return [Math.max(j1 + 2, 0), Math.min(j2, n)];
}

/** Python slice bounds: returns [start, stop) clipped to [0, len]. */
function pySlice(len: number, start: number, stop: number): [number, number] {
  if (start < 0) start = Math.max(start + len, 0);
  if (stop < 0) stop = Math.max(stop + len, 0);
  start = Math.min(start, len);
  stop = Math.min(stop, len);
  return [start, Math.max(start, stop)];
}

/** `_kolmogn_Pomeranz(n, x, cdf=True)`: Pr(D_n <= x) by Pomeranz's recursion (1974). */
function kolmognPomeranz(n: number, x: number): number {
  const t = n * x;
  const ll = Math.floor(t);
  const f = 1.0 * (t - ll);
  const g = Math.min(f, 1.0 - f);
  const ceilf = f > 0 ? 1 : 0;
  const roundf = f > 0.5 ? 1 : 0;
  const npwrs = 2 * (ll + 1);
  const gpower = new Float64Array(npwrs);
  const twogpower = new Float64Array(npwrs);
  const onem2gpower = new Float64Array(npwrs);
  gpower[0] = 1.0;
  twogpower[0] = 1.0;
  onem2gpower[0] = 1.0;
  let expnt = 0;
  const gOverN = g / n;
  const twoGOverN = (2 * g) / n;
  const oneMinusTwoGOverN = (1 - 2 * g) / n;
  for (let m = 1; m < npwrs; m++) {
    gpower[m] = (gpower[m - 1]! * gOverN) / m;
    twogpower[m] = (twogpower[m - 1]! * twoGOverN) / m;
    onem2gpower[m] = (onem2gpower[m - 1]! * oneMinusTwoGOverN) / m;
  }
  let V0 = new Float64Array(npwrs);
  let V1 = new Float64Array(npwrs);
  V1[0] = 1;
  let V0s = 0;
  let V1s = 0;
  const conv = new Float64Array(2 * npwrs);
  let [j1, j2] = pomeranzJ1J2(0, n, ll, ceilf, roundf);
  for (let i = 1; i < 2 * n + 2; i++) {
    const k1 = j1;
    const tmp = V0;
    V0 = V1;
    V1 = tmp;
    const tmps = V0s;
    V0s = V1s;
    V1s = tmps;
    V1.fill(0.0);
    [j1, j2] = pomeranzJ1J2(i, n, ll, ceilf, roundf);
    const pwrs = i === 1 || i === 2 * n + 1 ? gpower : i % 2 ? twogpower : onem2gpower;
    const ln2 = j2 - k1 + 1;
    if (ln2 > 0) {
      // conv = np.convolve(V0[k1 - V0s:k1 - V0s + ln2], pwrs[:ln2])
      const [a0, a1] = pySlice(npwrs, k1 - V0s, k1 - V0s + ln2);
      const [, b1] = pySlice(npwrs, 0, ln2);
      const la = a1 - a0;
      const lb = b1;
      const lc = la + lb - 1;
      conv.fill(0, 0, Math.max(lc, 0));
      for (let p = 0; p < la; p++) {
        const ap = V0[a0 + p]!;
        if (ap === 0) continue;
        for (let q = 0; q < lb; q++) conv[p + q]! += ap * pwrs[q]!;
      }
      const convStart = j1 - k1;
      const convLen = j2 - j1 + 1;
      const [c0, c1] = pySlice(Math.max(lc, 0), convStart, convStart + convLen);
      for (let p = 0; p < c1 - c0; p++) V1[p] = conv[c0 + p]!;
      // Scale to avoid underflow.
      let vmax = -Infinity;
      for (let p = 0; p < npwrs; p++) if (V1[p]! > vmax) vmax = V1[p]!;
      if (vmax > 0 && vmax < EM128) {
        for (let p = 0; p < npwrs; p++) V1[p]! *= EP128;
        expnt -= E128;
      }
      V1s = V0s + j1 - k1;
    }
  }
  // multiply by n!
  const idx = n - V1s;
  let ans = V1[idx < 0 ? idx + npwrs : idx]!;
  for (let m = 1; m <= n; m++) {
    if (Math.abs(ans) > EP128) {
      ans *= EM128;
      expnt += E128;
    }
    ans *= m;
  }
  if (expnt !== 0) ans = ldexp(ans, expnt);
  return clipProb(ans);
}

/**
 * `_kolmogn_PelzGood(n, x, cdf=True)`: the Pelz–Good (1976) approximation to
 * Pr(D_n <= x), the Li-Chien/Korolyuk expansion transformed for small z.
 */
function kolmognPelzGood(n: number, x: number): number {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const z = Math.sqrt(n) * x;
  const zsquared = z ** 2;
  const zthree = z ** 3;
  const zfour = z ** 4;
  const zsix = z ** 6;
  const qlog = -PI_SQUARED / 8 / zsquared;
  if (qlog < MIN_LOG) return 0.0;
  let q = Math.exp(qlog);

  const k1a = -zsquared;
  const k1b = PI_SQUARED / 4;
  const k2a = 6 * zsix + 2 * zfour;
  const k2b = ((2 * zfour - 5 * zsquared) * PI_SQUARED) / 4;
  const k2c = (PI_FOUR * (1 - 2 * zsquared)) / 16;
  const k3d = (PI_SIX * (5 - 30 * zsquared)) / 64;
  const k3c = (PI_FOUR * (-60 * zsquared + 212 * zfour)) / 16;
  const k3b = (PI_SQUARED * (135 * zfour - 96 * zsix)) / 4;
  const k3a = -30 * zsix - 90 * z ** 8;

  let K0 = 0;
  let K1 = 0;
  let K2 = 0;
  let K3 = 0;
  // Horner scheme for sum c_i q^(i^2), reduced to a sum over odd integers
  const maxk = Math.ceil((16 * z) / Math.PI);
  for (let k = maxk; k > 0; k--) {
    const m = 2 * k - 1;
    const msquared = m ** 2;
    const mfour = m ** 4;
    const msix = m ** 6;
    const qpower = Math.pow(q, 8 * k);
    K0 = K0 * qpower + 1.0;
    K1 = K1 * qpower + (k1a + k1b * msquared);
    K2 = K2 * qpower + (k2a + k2b * msquared + k2c * mfour);
    K3 = K3 * qpower + (k3a + k3b * msquared + k3c * mfour + k3d * msix);
  }
  K0 = (K0 * q * SQRT2PI_NP) / z;
  K1 = (K1 * q * SQRT2PI_NP) / (6 * zfour);
  K2 = (K2 * q * SQRT2PI_NP) / (72 * z ** 7);
  K3 = (K3 * q * SQRT2PI_NP) / (6480 * z ** 10);

  // The other sum over all integers k
  q = Math.exp(-PI_SQUARED / 2 / zsquared);
  const sqrt3z = SQRT3 * z;
  let s2 = 0;
  let s3 = 0;
  for (let k = maxk; k > 0; k--) {
    const ksq = k ** 2;
    const kspi = Math.PI * k;
    const qp = Math.pow(q, ksq);
    s2 += ksq * qp;
    s3 += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
  }
  K2 += s2 * ((PI_SQUARED * SQRT2PI_NP) / (-36 * zthree));
  K3 += s3 * ((PI_SQUARED * SQRT2PI_NP) / (216 * zsix));
  K1 /= Math.pow(n, 0.5);
  K2 /= Math.pow(n, 1.0);
  K3 /= Math.pow(n, 1.5);
  return 0 + K0 + K1 + K2 + K3;
}

// ---------------------------------------------------------------------------
// scipy.special.smirnov (xsf cephes/kolmogorov.h, _smirnov)
// ---------------------------------------------------------------------------

const SMIRNOV_MAX_COMPUTE_N = 1000000;
const SM_UPPER_MAX_TERMS = 3;
const SM_UPPERSUM_MIN_N = 10;
const EPS = Number.EPSILON;

/** Veltkamp split constant for Dekker's exact product. */
const SPLITTER = 134217729; // 2^27 + 1

/** n*x = nxfl + alpha with 0 <= alpha < 1, computed exactly (modNX). */
function modNX(n: number, x: number): { nxfl: number; alpha: number; nx: number } {
  const hi = n * x;
  // Dekker two-product error term
  const ca = SPLITTER * n;
  const ah = ca - (ca - n);
  const al = n - ah;
  const cb = SPLITTER * x;
  const bh = cb - (cb - x);
  const bl = x - bh;
  const lo = ah * bh - hi + ah * bl + al * bh + al * bl;
  let nxfl = Math.floor(hi);
  let alpha = hi - nxfl + lo;
  if (alpha < 0) {
    nxfl -= 1;
    alpha += 1;
  }
  if (alpha >= 1) {
    nxfl += 1;
    alpha -= 1;
  }
  return { nxfl, alpha, nx: hi + lo };
}

/**
 * `scipy.special.smirnov(n, x)`: Pr(D_n^+ >= x), the one-sided one-sample KS survival
 * function, by the Birnbaum–Tingey/Smirnov sums (lower or upper, as xsf `_smirnov`
 * chooses), with the same special cases and early termination. Terms are computed in
 * the log domain rather than double-double arithmetic.
 */
function smirnovSf(n: number, x: number): number {
  if (!(n > 0 && x >= 0.0 && x <= 1.0)) return NaN;
  if (n === 1) return 1 - x;
  if (x === 0.0) return 1.0;
  if (x === 1.0) return 0.0;
  const { nxfl, alpha } = modNX(n, x);
  let n1mxfl = n - nxfl - (alpha === 0 ? 0 : 1);
  let n1mxceil = n - nxfl;
  // If alpha is 0, don't include the last term in either the lower or upper summations.
  if (alpha === 0) {
    n1mxfl -= 1;
    n1mxceil += 1;
  }
  // Special case: x <= 1/n
  if (nxfl === 0 || (nxfl === 1 && alpha === 0)) {
    const t = Math.exp((n - 1) * Math.log1p(x));
    return 1 - x * t;
  }
  // Special case: x is so big, the sf underflows double64
  if (-2 * n * x * x < MINLOG) return 0;
  // Special case: x >= 1 - 1/n
  if (nxfl >= n - 1) return Math.exp(n * Math.log1p(-x));
  // Special case: n is so big, take too long to compute
  if (n > SMIRNOV_MAX_COMPUTE_N) {
    const logp = -Math.pow(6.0 * n * x + 1, 2) / 18.0 / n;
    if (logp < -Math.LN2) return Math.exp(logp);
    return 1 - -Math.expm1(logp);
  }
  const nUpperTerms = n - n1mxceil + 1;
  const useUpperSum =
    (nUpperTerms <= 1 && x < 0.5) ||
    (n >= SM_UPPERSUM_MIN_N && nUpperTerms <= SM_UPPER_MAX_TERMS && x <= 0.5 / Math.sqrt(n));

  let start = 0;
  let step = 1;
  let nTerms = n1mxfl + 1;
  const vmid = Math.floor(n / 2);
  let ajSum: number;
  if (useUpperSum) {
    start = n;
    step = -1;
    nTerms = n - n1mxceil + 1;
    ajSum = Math.exp((n - 1) * Math.log1p(x)); // (1 + x)^(n - 1)
  } else {
    ajSum = Math.exp(n * Math.log1p(-x)) / x; // (1 - x)^n / x
  }
  // Binomial coefficient C(n, j) = cman * 2^cexp, updated like xsf updateBinomial.
  let cman = n; // C(n, 1)
  let cexp = 0;
  for (let j = 1; j < nTerms; j++) {
    const v = start + j * step;
    // A_v = C(n, v) * (1 - x - v/n)^(n - v) * (x + v/n)^(v - 1), with n*x = nxfl + alpha
    const logC = Math.log(cman) + cexp * Math.LN2;
    const t2x = (n - v - nxfl - alpha) / n;
    const t1x = (v + nxfl + alpha) / n;
    let aj: number;
    if (t2x === 0) {
      aj = n - v === 0 ? Math.exp(logC + (v - 1) * Math.log(t1x)) : 0;
    } else {
      const logAbs = logC + (n - v) * Math.log(Math.abs(t2x)) + (v - 1) * Math.log(t1x);
      aj = Math.exp(logAbs);
      if (t2x < 0 && (n - v) % 2 === 1) aj = -aj;
    }
    if (Number.isFinite(aj) && aj !== 0) ajSum += aj;
    // Safe to terminate early?
    if (aj !== 0) {
      if (4 * (nTerms - j) * Math.abs(aj) < EPS * ajSum && j !== nTerms - 1) break;
    } else if (j > vmid) {
      break;
    }
    cman *= (n - j) / (j + 1);
    if (cman > 2 ** 600) {
      cman *= 2 ** -600;
      cexp += 600;
    } else if (cman < 2 ** -600) {
      cman *= 2 ** 600;
      cexp -= 600;
    }
  }
  const prob = x * ajSum;
  const sf = step < 0 ? 1 - prob : prob;
  return clipProb(sf);
}

/**
 * Internals exposed for unit tests only (not part of the supported API):
 * `kstwoSf(x, n)` is `scipy.stats.kstwo.sf(x, n)`, `smirnov(n, x)` is
 * `scipy.special.smirnov(n, x)`, `binom(n, k)` is `scipy.special.binom(n, k)` for
 * integers 0 <= k <= n.
 */
export const ksInternals = {
  kstwoSf,
  smirnov: smirnovSf,
  binom,
} as const;

/**
 * Exact two-sided two-sample p-value P(D_{n1,n2} >= h / lcm(n1, n2)) under H0
 * for a lattice statistic h (an integer): scipy's `_attempt_exact_2kssamp`
 * at d = h / lcm. NaN where scipy's exact method fails (it would fall back to
 * the asymptotic p-value). For detectors that compare lattice statistics with
 * a precomputed critical h and cache p-values by h.
 */
export function exactTwoSidedPvalue(n1: number, n2: number, h: number): number {
  if (!Number.isInteger(n1) || !Number.isInteger(n2) || n1 < 1 || n2 < 1 || !Number.isInteger(h) || h < 0)
    throw new RangeError(`exactTwoSidedPvalue: sizes must be positive integers and h a non-negative integer`);
  const g = gcd(n1, n2);
  const lcm = (n1 / g) * n2;
  const r = attemptExact2kssamp(n1, n2, g, h / lcm, 'two-sided');
  return r.success ? Math.min(1, Math.max(0, r.prob)) : Number.NaN;
}
