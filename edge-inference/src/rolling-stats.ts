import { EFFICIENCY_CLASSES, type Efficiency } from '../../common/schema/features.ts';

/**
 * What the worker status is fed on the hot path: per-interval latency
 * percentiles and the mix of recently predicted classes. Adding a sample writes
 * into preallocated typed arrays and allocates nothing; the work happens when
 * a status is due.
 */

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
