/**
 * Cost of one two-sample KS test (common/stats/ks.ts) at the drift detector's
 * window sizes, in microseconds per test (mean over many repetitions):
 *
 * - a pre-sorted reference of 5000 against windows of 500, 1000 and 2000 drawn
 *   from the same distribution (the usual no-drift case), method 'exact' and
 *   'auto' (which is exact up to 10000), plus a drifted window and a one-sided
 *   exact test (which falls back to asymp like scipy once binom overflows);
 * - 20000 against 20000 with the asymptotic p-value;
 * - the pre-sorted reference path (`ks2sampSorted`) against sorting the
 *   reference every time (`ks2samp`).
 *
 * Run through `npm run bench -- ks` (bench/run.ts prints the returned figures).
 */
import { ks2samp, ks2sampSorted, SortedSample } from '../common/stats/ks.ts';
import type { KsOptions } from '../common/stats/ks.ts';
import { Rng } from '../common/util/rng.ts';

const WINDOWS_PER_SIZE = 16;

function normals(rng: Rng, n: number, mean = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal(mean, 1);
  return out;
}

let sink = 0;

/**
 * Mean microseconds per call of `fn(i)`, after a warm-up, repeating until both
 * `minReps` calls and `minMs` milliseconds are reached.
 */
function timePerCall(fn: (i: number) => number, minReps: number, minMs: number): number {
  for (let i = 0; i < Math.min(minReps, 20); i++) sink += fn(i);
  let reps = 0;
  const started = performance.now();
  let elapsed = 0;
  while (reps < minReps || elapsed < minMs) {
    sink += fn(reps);
    reps++;
    elapsed = performance.now() - started;
  }
  return round((elapsed * 1000) / reps);
}

function round(us: number): number {
  return us >= 100 ? Math.round(us) : Math.round(us * 100) / 100;
}

/** The figures printed by bench/run.ts. */
export async function run(): Promise<Record<string, unknown>> {
  const rng = new Rng(42);
  const refValues = normals(rng, 5000);
  const reference = new SortedSample(refValues);

  const perWindow: Record<string, Record<string, number>> = {};
  for (const size of [500, 1000, 2000]) {
    const windows = Array.from({ length: WINDOWS_PER_SIZE }, () => normals(rng, size));
    const drifted = Array.from({ length: WINDOWS_PER_SIZE }, () => normals(rng, size, 0.5));
    const test = (ws: Float64Array[], options: KsOptions) => (i: number) =>
      ks2sampSorted(reference, ws[i % ws.length] as Float64Array, options).pvalue;
    perWindow[`window${size}`] = {
      exact: timePerCall(test(windows, { method: 'exact' }), 50, 300),
      auto: timePerCall(test(windows, { method: 'auto' }), 50, 300),
      asymp: timePerCall(test(windows, { method: 'asymp' }), 50, 300),
      exactDrifted: timePerCall(test(drifted, { method: 'exact' }), 20, 300),
      greaterExactFallsBackToAsymp: timePerCall(
        test(windows, { method: 'exact', alternative: 'greater' }),
        20,
        300,
      ),
    };
    await Promise.resolve();
  }

  const big1 = normals(rng, 20000);
  const big2 = Array.from({ length: 4 }, () => normals(rng, 20000));
  const bigRef = new SortedSample(big1);
  const big = timePerCall(
    (i) => ks2sampSorted(bigRef, big2[i % big2.length] as Float64Array, { method: 'asymp' }).pvalue,
    20,
    500,
  );

  // Pre-sorted reference against sorting the reference in every test.
  const w500 = Array.from({ length: WINDOWS_PER_SIZE }, () => normals(rng, 500));
  const presorted = {
    ref5000_window500_asymp: {
      presorted: timePerCall(
        (i) => ks2sampSorted(reference, w500[i % w500.length] as Float64Array, { method: 'asymp' }).pvalue,
        100,
        300,
      ),
      sortEachTime: timePerCall(
        (i) => ks2samp(refValues, w500[i % w500.length] as Float64Array, { method: 'asymp' }).pvalue,
        100,
        300,
      ),
    },
    ref5000_window500_exact: {
      presorted: timePerCall(
        (i) => ks2sampSorted(reference, w500[i % w500.length] as Float64Array, { method: 'exact' }).pvalue,
        100,
        300,
      ),
      sortEachTime: timePerCall(
        (i) => ks2samp(refValues, w500[i % w500.length] as Float64Array, { method: 'exact' }).pvalue,
        100,
        300,
      ),
    },
    ref20000_window20000_asymp: {
      presorted: big,
      sortEachTime: timePerCall(
        (i) => ks2samp(big1, big2[i % big2.length] as Float64Array, { method: 'asymp' }).pvalue,
        20,
        500,
      ),
    },
  };

  return {
    unit: 'microseconds per test (mean), two-sided unless named',
    reference5000: perWindow,
    reference20000_window20000_asymp: big,
    presortedReference: presorted,
    checksum: Math.round(sink * 1000) / 1000,
  };
}
