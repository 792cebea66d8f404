import { exactTwoSidedPvalue, gcd } from '../stats/ks-exact.ts';

/**
 * Exact false-alarm arithmetic for KS drift tests against a fixed reference.
 *
 * - {@link criticalLattice}: the smallest lattice statistic h (D = h / lcm(n, w))
 *   whose exact two-sided p-value is at most alpha. Since the exact p-value is a
 *   non-increasing function of h, "p <= alpha" and "h >= critical h" are the
 *   same decision, and a detector can compare integers instead of computing
 *   p-values.
 * - {@link conditionalRejectionProbability}: the probability that a window of
 *   w i.i.d. draws from the reference's own distribution rejects at that
 *   critical h, *given* the reference sample. The reference is fixed for a
 *   champion's lifetime, so windows are independent only given it; this is the
 *   per-test false-alarm probability a deployed detector actually has. The
 *   test is distribution-free, so the reference is passed as its probability
 *   integral transform u_i = F(r_i) (sorted, in [0, 1]): for a simulated
 *   reference of a known F this is exact. Computed as a non-crossing
 *   probability: the window's empirical CDF must leave the band the
 *   reference's ECDF ± D sets; with the window poissonized (counts in
 *   disjoint intervals independent Poisson), a dynamic programme over the
 *   n + 1 reference intervals, conditioned on w points in total.
 *
 * Averaged over references, the conditional probability is the unconditional
 * one, which is exactly the permutation null of the two-sample test:
 * E_ref[conditionalRejectionProbability] = exactTwoSidedPvalue(n, w, h). The
 * unit tests check the DP against that identity and against simulation.
 */

const MAX_CACHED_PVALUES = 50_000;
const pvalueCaches = new Map<string, Map<number, number>>();

/**
 * The exact two-sided p-value of lattice statistic h for sizes n and w,
 * cached per (n, w, h): it is a pure function of the three, costs about a
 * millisecond to compute, and a stationary stream lands on a few hundred
 * distinct h. NaN when the exact method fails.
 */
export function cachedExactPvalue(n: number, w: number, h: number): number {
  const key = `${n}:${w}`;
  let c = pvalueCaches.get(key);
  if (!c) {
    if (pvalueCaches.size >= 32) pvalueCaches.clear();
    c = new Map();
    pvalueCaches.set(key, c);
  }
  const hit = c.get(h);
  if (hit !== undefined) return hit;
  const p = exactTwoSidedPvalue(n, w, h);
  if (c.size >= MAX_CACHED_PVALUES) c.clear();
  c.set(h, p);
  return p;
}

/** The critical value of an exact two-sided KS test at level alpha, on the statistic's lattice. */
export interface CriticalLattice {
  /** Reference size. */
  n: number;
  /** Window size. */
  w: number;
  /** lcm(n, w): D is always a multiple of 1 / lcm. */
  lcm: number;
  /** Smallest h with exact p(h / lcm) <= alpha; the test rejects when h >= this. */
  h: number;
  /** h / lcm: the smallest rejecting D. */
  statistic: number;
  /** Exact p-value at the critical h: the exact unconditional rejection probability, <= alpha. */
  pvalue: number;
  alpha: number;
}

const criticalCache = new Map<string, CriticalLattice>();

/**
 * Smallest lattice statistic h whose exact two-sided p-value for sizes n and w
 * is at most `alpha` (the exact p-value is non-increasing in h). The search
 * starts at the asymptotic critical value ({@link asymptoticCritical}), gallops
 * away from it in steps of 2 % (doubling) until the exact critical h is
 * bracketed, then bisects: about 10 exact p-values instead of the ~22 of a
 * bisection over 1..lcm, and none of them at the far, costly ends of the
 * lattice. Cached per (n, w, alpha). Throws when the exact p-value is not
 * available (scipy's exact method would fail, e.g. lcm beyond 2^31).
 */
export function criticalLattice(n: number, w: number, alpha: number): CriticalLattice {
  if (!Number.isInteger(n) || !Number.isInteger(w) || n < 1 || w < 1)
    throw new RangeError(`criticalLattice: sizes must be positive integers, got ${n}, ${w}`);
  if (!(alpha > 0 && alpha < 1))
    throw new RangeError(`criticalLattice: alpha must be in (0, 1), got ${alpha}`);
  const key = `${n}:${w}:${alpha}`;
  const hit = criticalCache.get(key);
  if (hit) return hit;
  const lcm = (n / gcd(n, w)) * w;
  const rejects = (h: number): boolean => {
    const v = exactTwoSidedPvalue(n, w, h);
    if (Number.isNaN(v)) throw new RangeError(`criticalLattice: no exact p-value for n=${n}, w=${w}`);
    return v <= alpha;
  };
  // Invariant: h < lo does not reject, h >= hi rejects (hi = lcm + 1: even D = 1 does not, tiny samples).
  let lo = 1;
  let hi = lcm + 1;
  const guess = Math.min(lcm, Math.max(1, Math.round(asymptoticCritical(n, w, alpha) * lcm)));
  let step = Math.max(1, Math.round(0.02 * guess));
  if (rejects(guess)) {
    hi = guess;
    for (let g = hi - step; g >= lo; g = hi - step) {
      if (!rejects(g)) {
        lo = g + 1;
        break;
      }
      hi = g;
      step *= 2;
    }
  } else {
    lo = guess + 1;
    for (let g = lo - 1 + step; g < hi; g = lo - 1 + step) {
      if (rejects(g)) {
        hi = g;
        break;
      }
      lo = g + 1;
      step *= 2;
    }
  }
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (rejects(mid)) hi = mid;
    else lo = mid + 1;
  }
  const h = lo;
  const result: CriticalLattice = Object.freeze({
    n,
    w,
    lcm,
    h,
    statistic: h / lcm,
    pvalue: h > lcm ? 0 : exactTwoSidedPvalue(n, w, h),
    alpha,
  });
  if (criticalCache.size > 4096) criticalCache.clear();
  criticalCache.set(key, result);
  return result;
}

/**
 * The asymptotic two-sided critical statistic sqrt(ln(2 / alpha) / 2 · (n + w) / (n · w))
 * (the first term of Kolmogorov's series): where the exact searches start.
 */
export function asymptoticCritical(n: number, w: number, alpha: number): number {
  return Math.sqrt((Math.log(2 / alpha) / 2) * ((n + w) / (n * w)));
}

const lowerBoundCache = new Map<string, number>();

/**
 * A lattice statistic h_lb below the critical h of {@link criticalLattice}
 * (exact p(h_lb) > alpha, so the test cannot reject at h <= h_lb), at the cost
 * of one exact p-value instead of the critical value's binary search (~18).
 * A caller with many distinct sizes, each tested a few times (per-machine
 * blocks), skips the search for the tests that are nowhere near rejecting.
 * Guessed at 0.8 of the asymptotic critical statistic
 * (sqrt(ln(2 / alpha) / 2 · (n + w) / (n · w))), then verified exactly; 0 when
 * the guess fails the check twice (then every test computes the critical h).
 * Cached per (n, w, alpha).
 */
export function criticalLowerBound(n: number, w: number, alpha: number): number {
  const key = `${n}:${w}:${alpha}`;
  const hit = lowerBoundCache.get(key) ?? criticalCache.get(key)?.h;
  if (hit !== undefined) return lowerBoundCache.has(key) ? hit : hit - 1;
  const lcm = (n / gcd(n, w)) * w;
  const dAsym = asymptoticCritical(n, w, alpha);
  let lb = 0;
  for (const factor of [0.8, 0.5]) {
    const h = Math.floor(factor * dAsym * lcm);
    if (h < 1 || h > lcm) continue;
    const p = exactTwoSidedPvalue(n, w, h);
    if (p > alpha) {
      lb = h;
      break;
    }
  }
  if (lowerBoundCache.size > 4096) lowerBoundCache.clear();
  lowerBoundCache.set(key, lb);
  return lb;
}

/**
 * P(a window of w i.i.d. draws rejects | the reference), exactly (see the
 * module comment). `u` holds the reference's probability integral transforms,
 * sorted ascending in [0, 1]; the window rejects when
 * max |N(x)·a − F_n(x)·n·b| >= h, N(x) the window count at or below x,
 * a = lcm / w, b = lcm / n. Costs O(n · w · k), k the Poisson terms per
 * interval (about 10 for w / n <= 1).
 */
export function conditionalRejectionProbability(u: ArrayLike<number>, w: number, h: number): number {
  const n = u.length;
  if (n < 1 || !Number.isInteger(w) || w < 1)
    throw new RangeError('conditionalRejectionProbability: bad sizes');
  const lcm = (n / gcd(n, w)) * w;
  const a = lcm / w;
  const b = lcm / n;
  let q = new Float64Array(w + 1);
  let next = new Float64Array(w + 1);
  q[0] = 1;
  const pmf = new Float64Array(w + 1);
  let prev = 0;
  // hiN: states N with N·a >= i·b + h are crossings (upper band); loN: N·a <= i·b − h (lower band).
  let top = 0; // highest state with non-zero mass
  for (let i = 0; i <= n; i++) {
    const edge = i < n ? (u[i] as number) : 1;
    if (i < n && (!(edge >= prev) || edge > 1))
      throw new RangeError('conditionalRejectionProbability: u must be sorted in [0, 1]');
    const length = edge - prev;
    prev = edge;
    // Lower band at the reference jump to i / n (checked with the count so far).
    const lowLimit = i * b - h; // zero N with N·a <= lowLimit
    if (lowLimit >= 0) {
      const maxBad = Math.floor(lowLimit / a);
      for (let N = 0; N <= Math.min(maxBad, w); N++) q[N] = 0;
    }
    // Poisson(w · length) increments.
    const mu = w * length;
    let terms = 0;
    if (mu === 0) {
      pmf[0] = 1;
      terms = 1;
    } else {
      let t = Math.exp(-mu);
      let cum = 0;
      for (let k = 0; k <= w; k++) {
        if (k > 0) t *= mu / k;
        pmf[k] = t;
        cum += t;
        terms = k + 1;
        if (k > mu && (t < 1e-300 || 1 - cum < 1e-18)) break;
      }
    }
    next.fill(0, 0, Math.min(w, top + terms - 1) + 1);
    for (let N = 0; N <= top; N++) {
      const v = q[N] as number;
      if (v === 0) continue;
      const kmax = Math.min(terms - 1, w - N);
      for (let k = 0; k <= kmax; k++) next[N + k] = (next[N + k] as number) + v * (pmf[k] as number);
    }
    top = Math.min(w, top + terms - 1);
    // Upper band inside interval i (the count at its end is the largest).
    const highLimit = i * b + h; // zero N with N·a >= highLimit
    const minBad = Math.ceil(highLimit / a);
    for (let N = Math.max(0, minBad); N <= top; N++) next[N] = 0;
    if (minBad - 1 < top) top = Math.max(0, minBad - 1);
    const t = q;
    q = next;
    next = t;
  }
  // P(Poisson(w) = w), in log space.
  let logFact = 0;
  for (let k = 2; k <= w; k++) logFact += Math.log(k);
  const pw = Math.exp(w * Math.log(w) - w - logFact);
  const inside = top >= w ? (q[w] as number) / pw : 0;
  return Math.min(1, Math.max(0, 1 - inside));
}

/**
 * A sorted reference sample with a bucket index, so that the rank of a value
 * (how many reference values lie below it) costs O(1) on average instead of a
 * merge through the whole reference: the lattice KS statistic of a sorted
 * window of w values then costs O(w), not O(n + w).
 */
export class ReferenceIndex {
  readonly size: number;
  private readonly start: Int32Array;
  private readonly lo: number;
  private readonly scale: number;
  private readonly buckets: number;

  constructor(readonly values: Float64Array) {
    const n = values.length;
    this.size = n;
    this.buckets = Math.max(1, Math.min(1 << 16, 2 * n));
    this.lo = n > 0 ? (values[0] as number) : 0;
    const hi = n > 0 ? (values[n - 1] as number) : 0;
    this.scale = hi > this.lo ? this.buckets / (hi - this.lo) : 0;
    this.start = new Int32Array(this.buckets + 1);
    // start[k] = number of reference values whose bucket is < k (values are sorted, so bucket is non-decreasing).
    let r = 0;
    for (let k = 0; k <= this.buckets; k++) {
      while (r < n && this.bucketOf(values[r] as number) < k) r++;
      this.start[k] = r;
    }
  }

  private bucketOf(x: number): number {
    const k = Math.floor((x - this.lo) * this.scale);
    return k < 0 ? 0 : k >= this.buckets ? this.buckets - 1 : k;
  }

  /** Number of reference values < x. */
  rankLt(x: number): number {
    const v = this.values;
    const k = this.bucketOf(x);
    let r = this.start[k] as number;
    while (r > 0 && (v[r - 1] as number) >= x) r--;
    while (r < this.size && (v[r] as number) < x) r++;
    return r;
  }

  /** Number of reference values <= x. */
  rankLe(x: number): number {
    const v = this.values;
    let r = this.rankLt(x);
    while (r < this.size && (v[r] as number) <= x) r++;
    return r;
  }

  /**
   * round(D · lcm) for the two-sided KS statistic D between this reference
   * (n values, weight a = lcm / n) and a sorted window (w values, weight
   * b = lcm / w); equal to `latticeStatistic(reference, window, a, b)`
   * (`feature-drift.ts`), ties included. Between two distinct window values
   * the window's ECDF is constant and the reference's increases, so the
   * extremes sit at a window value (ranks <=) and just below the next one
   * (ranks <); before the first window value the window's ECDF is 0.
   */
  latticeStatistic(window: Float64Array, a: number, b: number): number {
    const w = window.length;
    if (w === 0) return 0;
    let h = this.rankLt(window[0] as number) * a; // x < first window value: |F_ref · lcm − 0|
    let j = 0;
    while (j < w) {
      const x = window[j] as number;
      let end = j + 1;
      while (end < w && (window[end] as number) === x) end++;
      // At x: window ECDF = end / w.
      const wb = end * b;
      let d = this.rankLe(x) * a - wb;
      if (d < 0) d = -d;
      if (d > h) h = d;
      // Just below the next distinct window value (or +inf: both ECDFs end at 1, difference 0 there).
      if (end < w) {
        d = this.rankLt(window[end] as number) * a - wb;
        if (d < 0) d = -d;
        if (d > h) h = d;
      }
      j = end;
    }
    return h;
  }
}
