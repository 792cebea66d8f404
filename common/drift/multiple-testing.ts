/**
 * Multiple-testing corrections for the nine per-feature KS tests of one window.
 *
 * Both functions write into caller-owned arrays (the detector preallocates
 * them per group) and allocate nothing for up to {@link MAX_TESTS} p-values.
 */

export type Correction = 'bonferroni' | 'benjamini-hochberg';
export const CORRECTIONS: readonly Correction[] = ['bonferroni', 'benjamini-hochberg'];

/** Largest number of simultaneous tests the scratch buffers hold without allocating. */
export const MAX_TESTS = 64;
const order = new Int32Array(MAX_TESTS);

/**
 * Bonferroni: reject H0_i when p_i <= alpha / m. Controls the family-wise error
 * rate (probability of any false rejection) at alpha for any dependence.
 * Writes 1/0 into `rejected[i]` and returns the per-test p-value threshold.
 */
export function bonferroni(pvalues: ArrayLike<number>, alpha: number, rejected: Uint8Array): number {
  const m = pvalues.length;
  const threshold = m > 0 ? alpha / m : alpha;
  for (let i = 0; i < m; i++) rejected[i] = (pvalues[i] as number) <= threshold ? 1 : 0;
  return threshold;
}

/**
 * Benjamini–Hochberg step-up: sort p ascending, find the largest k with
 * p_(k) <= k·alpha/m, reject the k smallest. Controls the false discovery rate
 * at alpha for independent (or positively dependent) tests; under the complete
 * null (a stationary stream) FDR equals the family-wise error rate, so the
 * false-alarm budget is the same as Bonferroni's while power for several
 * simultaneously drifting features is higher.
 *
 * Writes 1/0 into `rejected[i]` and returns the p-value threshold actually used:
 * k·alpha/m when k > 0, else alpha/m (the bar the smallest p-value missed).
 * NaN p-values are never rejected and sort last.
 */
export function benjaminiHochberg(pvalues: ArrayLike<number>, alpha: number, rejected: Uint8Array): number {
  const m = pvalues.length;
  if (m === 0) return alpha;
  const idx = m <= MAX_TESTS ? order : new Int32Array(m);
  sortIndexByValue(pvalues, idx, m);
  let k = 0;
  for (let r = m; r >= 1; r--) {
    const p = pvalues[idx[r - 1] as number] as number;
    if (p <= (r * alpha) / m) {
      k = r;
      break;
    }
  }
  const threshold = k > 0 ? (k * alpha) / m : alpha / m;
  for (let i = 0; i < m; i++) rejected[i] = 0;
  for (let r = 0; r < k; r++) rejected[idx[r] as number] = 1;
  return threshold;
}

/**
 * Benjamini–Hochberg adjusted p-values (q-values, as R's `p.adjust(p, "BH")`):
 * q_(i) = min_{j >= i} min(1, m·p_(j)/j). H0_i is rejected at FDR alpha exactly
 * when q_i <= alpha. For reports and tests; allocates its result.
 */
export function adjustBenjaminiHochberg(pvalues: ArrayLike<number>): number[] {
  const m = pvalues.length;
  const idx = new Int32Array(m);
  sortIndexByValue(pvalues, idx, m);
  const out = new Array<number>(m).fill(Number.NaN);
  let running = 1;
  for (let r = m; r >= 1; r--) {
    const i = idx[r - 1] as number;
    const p = pvalues[i] as number;
    if (Number.isNaN(p)) continue;
    running = Math.min(running, (m * p) / r);
    out[i] = Math.min(1, running);
  }
  return out;
}

/** Insertion sort of indices 0..m-1 by value ascending (stable, NaN last); m is small. */
function sortIndexByValue(values: ArrayLike<number>, idx: Int32Array, m: number): void {
  for (let i = 0; i < m; i++) idx[i] = i;
  for (let i = 1; i < m; i++) {
    const cur = idx[i] as number;
    const v = values[cur] as number;
    let j = i - 1;
    while (j >= 0 && greater(values[idx[j] as number] as number, v)) {
      idx[j + 1] = idx[j] as number;
      j--;
    }
    idx[j + 1] = cur;
  }
}

function greater(a: number, b: number): boolean {
  if (Number.isNaN(a)) return !Number.isNaN(b);
  if (Number.isNaN(b)) return false;
  return a > b;
}
