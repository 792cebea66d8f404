import type { DriftInput, FeatureDriftStatus } from '../../common/drift/feature-drift.ts';
import { EFFICIENCY_CLASSES, FEATURES, type Efficiency } from '../../common/schema/features.ts';
import type { Histogram } from '../../common/schema/status.ts';

/**
 * Building blocks of the status messages the edge worker publishes for
 * observers (`common/schema/status.ts`): the histograms of a tested drift
 * window, the recent window values they are drawn from, latency percentiles
 * and the predicted-class mix. Everything a message is fed from on the hot path
 * is preallocated: adding a sample writes into typed arrays and allocates
 * nothing; the work happens when a window is tested or a status is due.
 */

/** Bins of a drift window histogram (the schema allows up to 100). */
export const DEFAULT_HISTOGRAM_BINS = 20;
export const MAX_HISTOGRAM_BINS = 100;

const NF = FEATURES.length;

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
      // Agree with the published edges where rounding puts a value on the other side of one: edges[b] <= v < edges[b + 1].
      while (b > 0 && v < (edges[b] as number)) b--;
      while (b < bins - 1 && v >= (edges[b + 1] as number)) b++;
      c[b] = (c[b] as number) + 1;
    }
    return c;
  };
  return { edges, reference: count(reference), current: count(current) };
}

/** Where {@link RecentWindows} takes its shape from: the drift detector's config (`FeatureDriftDetector.config`). */
export interface WindowShape {
  readonly windowSize: number;
  readonly groupBy: 'all' | 'machine';
  /** Groups kept at once (the least recently written is dropped beyond it). Default 256. */
  readonly maxGroups?: number;
}

class Ring {
  /** Feature-major: values[f * w + i]. */
  readonly values: Float64Array;
  pos = 0;
  filled = 0;
  lastSeen = 0;
  constructor(w: number) {
    this.values = new Float64Array(NF * w);
  }
}

/**
 * The latest `windowSize` rows of each drift group, per feature, kept beside
 * the detector (which does not expose its windows): when the detector tests a
 * window, the window is exactly these rows (tumbling or hopping: both test the
 * group's last `windowSize` rows), so the histograms show what was tested.
 * Rows with a non-finite feature are skipped, as the detector skips them.
 */
export class RecentWindows {
  readonly windowSize: number;
  readonly groupBy: 'all' | 'machine';
  readonly maxGroups: number;
  private readonly rings = new Map<string, Ring>();
  private all: Ring | undefined;
  private clock = 0;

  constructor(shape: WindowShape) {
    if (!Number.isInteger(shape.windowSize) || shape.windowSize < 1)
      throw new RangeError(`windowSize must be a positive integer, got ${String(shape.windowSize)}`);
    this.windowSize = shape.windowSize;
    this.groupBy = shape.groupBy;
    this.maxGroups = Math.max(1, shape.maxGroups ?? 256);
  }

  /** Records one row (what the detector's `update(row, machineId)` gets). Allocates only for a new group. */
  push(row: DriftInput, machineId: string): void {
    // Named loads (a keyed load of a double field boxes it), FEATURES order.
    const x0 = row.temperatureC;
    const x1 = row.vibrationHz;
    const x2 = row.powerKw;
    const x3 = row.networkLatencyMs;
    const x4 = row.packetLossPct;
    const x5 = row.defectRatePct;
    const x6 = row.productionSpeedUph;
    const x7 = row.maintenanceScore;
    const x8 = row.errorRatePct;
    if (
      !Number.isFinite(x0) ||
      !Number.isFinite(x1) ||
      !Number.isFinite(x2) ||
      !Number.isFinite(x3) ||
      !Number.isFinite(x4) ||
      !Number.isFinite(x5) ||
      !Number.isFinite(x6) ||
      !Number.isFinite(x7) ||
      !Number.isFinite(x8)
    )
      return;
    const r =
      this.groupBy === 'all'
        ? (this.all ??= this.ring('all'))
        : (this.rings.get(machineId) ?? this.ring(machineId));
    const w = this.windowSize;
    const pos = r.pos;
    const v = r.values;
    v[pos] = x0;
    v[w + pos] = x1;
    v[2 * w + pos] = x2;
    v[3 * w + pos] = x3;
    v[4 * w + pos] = x4;
    v[5 * w + pos] = x5;
    v[6 * w + pos] = x6;
    v[7 * w + pos] = x7;
    v[8 * w + pos] = x8;
    r.pos = pos + 1 === w ? 0 : pos + 1;
    if (r.filled < w) r.filled++;
    r.lastSeen = this.clock++;
  }

  /**
   * The last `windowSize` values of feature `f` (FEATURES index) in `groupKey`
   * (a view, in ring order: fine for histograms), or undefined until that many were seen.
   */
  values(groupKey: string, f: number): Float64Array | undefined {
    const r = this.groupBy === 'all' ? this.all : this.rings.get(groupKey);
    if (!r || r.filled < this.windowSize || f < 0 || f >= NF) return undefined;
    return r.values.subarray(f * this.windowSize, (f + 1) * this.windowSize);
  }

  get groups(): number {
    return this.groupBy === 'all' ? (this.all ? 1 : 0) : this.rings.size;
  }

  private ring(key: string): Ring {
    if (this.groupBy === 'all') return new Ring(this.windowSize);
    if (this.rings.size >= this.maxGroups) {
      let oldestKey: string | undefined;
      let oldest = Number.POSITIVE_INFINITY;
      for (const [k, g] of this.rings) {
        if (g.lastSeen < oldest) {
          oldest = g.lastSeen;
          oldestKey = k;
        }
      }
      if (oldestKey !== undefined) this.rings.delete(oldestKey);
    }
    const r = new Ring(this.windowSize);
    this.rings.set(key, r);
    return r;
  }
}

/** Percentiles of the latencies of one status interval. */
export interface LatencyPercentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/**
 * A bounded uniform sample (reservoir, algorithm R) of the latencies of one
 * interval: exact percentiles while an interval has at most `capacity`
 * predictions, a uniform sample of them beyond. `add` allocates nothing.
 */
export class LatencyReservoir {
  private readonly sample: Float64Array;
  private seen = 0;

  constructor(
    readonly capacity = 4096,
    private readonly random: () => number = Math.random,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be a positive integer, got ${String(capacity)}`);
    this.sample = new Float64Array(capacity);
  }

  /** Values seen since the last {@link drain}. */
  get count(): number {
    return this.seen;
  }

  add(ms: number): void {
    if (!Number.isFinite(ms)) return;
    const n = this.seen++;
    if (n < this.capacity) this.sample[n] = ms;
    else {
      const j = Math.floor(this.random() * (n + 1));
      if (j < this.capacity) this.sample[j] = ms;
    }
  }

  /** Nearest-rank p50/p95/p99 of the interval (null when it had none), and starts the next interval. */
  drain(): LatencyPercentiles {
    const n = Math.min(this.seen, this.capacity);
    this.seen = 0;
    if (n === 0) return { p50: null, p95: null, p99: null };
    const s = this.sample.subarray(0, n).sort();
    const at = (q: number): number => s[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
  }
}

/** Share of each class among the last `size` predictions (a ring of class indices; `add` allocates nothing). */
export class ClassMix {
  private readonly ring: Uint8Array;
  private readonly counts = new Int32Array(EFFICIENCY_CLASSES.length);
  private head = 0;
  private filled = 0;

  constructor(readonly size = 1000) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`size must be a positive integer, got ${String(size)}`);
    this.ring = new Uint8Array(size);
  }

  add(c: Efficiency): void {
    const i = EFFICIENCY_CLASSES.indexOf(c);
    if (i < 0) return;
    if (this.filled === this.size) {
      const old = this.ring[this.head] as number;
      this.counts[old] = (this.counts[old] as number) - 1;
    } else this.filled++;
    this.ring[this.head] = i;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.head = this.head + 1 === this.size ? 0 : this.head + 1;
  }

  /** Forgets every prediction (a new champion). */
  clear(): void {
    this.head = 0;
    this.filled = 0;
    this.counts.fill(0);
  }

  /** Shares (0 each when empty). */
  shares(): Record<Efficiency, number> {
    const n = this.filled;
    return Object.fromEntries(
      EFFICIENCY_CLASSES.map((c, i) => [c, n === 0 ? 0 : (this.counts[i] as number) / n]),
    ) as Record<Efficiency, number>;
  }
}

/** A finite number, or null (NaN and ±Infinity do not survive JSON and fail the schemas). */
export function finiteOrNull(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The per-feature part of a drift window message. */
export function windowFeatureStatus(s: FeatureDriftStatus): {
  feature: FeatureDriftStatus['feature'];
  statistic: number | null;
  pvalue: number | null;
  threshold: number;
  criticalStatistic: number | null;
  drifted: boolean;
} {
  return {
    feature: s.feature,
    statistic: finiteOrNull(s.statistic),
    pvalue: finiteOrNull(s.pvalue),
    threshold: Number.isFinite(s.threshold) ? s.threshold : 0,
    criticalStatistic: finiteOrNull(s.criticalStatistic),
    drifted: s.drifted,
  };
}

/** Topic levels may not contain `/`, `+`, `#` or NUL; the schema caps the id at 128 characters. */
export function checkWorkerId(id: string): string {
  if (
    typeof id !== 'string' ||
    id.length === 0 ||
    id.length > 128 ||
    /[/+#]/.test(id) ||
    id.includes('\u0000')
  ) {
    throw new RangeError(
      `workerId must be 1-128 characters without / + # or NUL (it is a topic level), got ${JSON.stringify(id)}`,
    );
  }
  return id;
}
