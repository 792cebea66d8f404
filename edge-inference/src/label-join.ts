/**
 * Joins delayed labels with the telemetry (and prediction) they belong to, on
 * machineId + seq, in a bounded buffer: when more than `maxPending` records wait
 * for their label, the oldest is evicted (counted) so memory stays bounded no
 * matter how many labels never arrive.
 */
export interface LabelJoinOptions {
  /** Records kept waiting for their label, at most. */
  maxPending: number;
  /** Called with each join outcome (metrics). */
  onOutcome?: (outcome: 'hit' | 'miss' | 'evicted') => void;
}

export interface LabelJoinStats {
  hits: number;
  misses: number;
  evictions: number;
  pending: number;
}

export class LabelJoin<V> {
  private readonly pending = new Map<string, V>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(private readonly options: LabelJoinOptions) {
    if (!Number.isInteger(options.maxPending) || options.maxPending < 1)
      throw new RangeError('maxPending must be an integer ≥ 1');
  }

  /** Machine ids cannot contain control characters, so NUL separates the parts unambiguously. */
  private static key(machineId: string, seq: number): string {
    return `${machineId}\u0000${seq}`;
  }

  /** Keeps `value` until the label for (machineId, seq) arrives; evicts the oldest beyond the bound. */
  put(machineId: string, seq: number, value: V): void {
    const key = LabelJoin.key(machineId, seq);
    // A redelivered record replaces the earlier one and moves to the back.
    if (this.pending.has(key)) this.pending.delete(key);
    this.pending.set(key, value);
    while (this.pending.size > this.options.maxPending) {
      const oldest = this.pending.keys().next().value as string;
      this.pending.delete(oldest);
      this.evictions++;
      this.options.onOutcome?.('evicted');
    }
  }

  /** The record waiting for this label (removed from the buffer), or undefined: a miss. */
  take(machineId: string, seq: number): V | undefined {
    const key = LabelJoin.key(machineId, seq);
    const value = this.pending.get(key);
    if (value === undefined) {
      this.misses++;
      this.options.onOutcome?.('miss');
      return undefined;
    }
    this.pending.delete(key);
    this.hits++;
    this.options.onOutcome?.('hit');
    return value;
  }

  /** The record waiting for this label, left in the buffer; counts a hit or a miss. */
  lookup(machineId: string, seq: number): V | undefined {
    const value = this.pending.get(LabelJoin.key(machineId, seq));
    if (value === undefined) {
      this.misses++;
      this.options.onOutcome?.('miss');
    } else {
      this.hits++;
      this.options.onOutcome?.('hit');
    }
    return value;
  }

  /** The record for (machineId, seq), if still buffered; counts nothing. */
  peek(machineId: string, seq: number): V | undefined {
    return this.pending.get(LabelJoin.key(machineId, seq));
  }

  /** Drops the record for (machineId, seq); counts nothing. */
  delete(machineId: string, seq: number): boolean {
    return this.pending.delete(LabelJoin.key(machineId, seq));
  }

  /** Forgets every pending record (not counted as evictions). */
  clear(): void {
    this.pending.clear();
  }

  get stats(): LabelJoinStats {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, pending: this.pending.size };
  }
}
