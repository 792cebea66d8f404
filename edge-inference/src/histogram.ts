import type { Histogram } from '../../common/schema/status.ts';

/**
 * The reference vs window histograms of a drift window message
 * (`common/schema/status.ts`): both samples counted on the same bins.
 */

/** Bins of a drift window histogram (the schema allows up to 100). */
export const DEFAULT_HISTOGRAM_BINS = 20;
export const MAX_HISTOGRAM_BINS = 100;

/**
 * Counts of `reference` and `current` on `bins` equal-width bins sharing their
 * edges, which span min..max of both samples together (a degenerate range is
 * widened by 0.5 on either side). Each value falls in exactly one bin (the last
 * bin is closed), so the counts sum to the sample sizes; non-finite values are skipped.
 */
export function sharedHistogram(
  reference: ArrayLike<number>,
  current: ArrayLike<number>,
  bins = DEFAULT_HISTOGRAM_BINS,
): Histogram {
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_HISTOGRAM_BINS)
    throw new RangeError(`bins must be an integer in [1, ${MAX_HISTOGRAM_BINS}], got ${String(bins)}`);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const xs of [reference, current]) {
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i] as number;
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo > hi) {
    // no finite value at all
    lo = 0;
    hi = 1;
  } else if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = hi - lo;
  const edges = new Array<number>(bins + 1);
  for (let i = 0; i < bins; i++) edges[i] = lo + (width * i) / bins;
  edges[bins] = hi;
  const count = (xs: ArrayLike<number>): number[] => {
    const c = new Array<number>(bins).fill(0);
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i] as number;
      if (!Number.isFinite(v)) continue;
      let b = Math.min(bins - 1, Math.max(0, Math.floor(((v - lo) / width) * bins)));
      // Agree with the published edges where rounding puts a value on the other side of one: edges[b] <= v <
      // edges[b + 1].
      while (b > 0 && v < (edges[b] as number)) b--;
      while (b < bins - 1 && v >= (edges[b + 1] as number)) b++;
      c[b] = (c[b] as number) + 1;
    }
    return c;
  };
  return { edges, reference: count(reference), current: count(current) };
}
