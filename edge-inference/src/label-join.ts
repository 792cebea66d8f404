/**
 * Joins delayed labels with the telemetry (and prediction) they belong to, on
 * machineId + seq, in a bounded buffer: when more than `maxPending` records wait
 * for their label, the oldest is evicted (counted) so memory stays bounded no
 * matter how many labels never arrive.
 *
 * A label may also arrive before its reading. MQTT orders messages only per
 * topic and publisher (MQTT 3.1.1 §4.6), and labels come on their own topic,
 * usually from another client (an inspection station); Kafka orders only per
 * partition of one topic. With `maxEarly` > 0 such a label is held (`early`)
 * until its reading is put, and joins then; it counts as a miss only when it
 * expires unjoined (older than `earlyMaxAgeMs`, or pushed out beyond `maxEarly`).
 */
export interface LabelJoinOptions {
  /** Records kept waiting for their label, at most. */
  maxPending: number;
  /** Labels kept waiting for their reading, at most; 0 (default): a label without its reading is a miss at once. */
  maxEarly?: number;
  /** A label waits this long for its reading before it counts as a miss, ms. Default: no age limit. */
  earlyMaxAgeMs?: number;
  /** Clock for `earlyMaxAgeMs`. Default `Date.now`. */
  now?: () => number;
  /** Called with each join outcome (metrics). */
  onOutcome?: (outcome: LabelJoinOutcome) => void;
}

/** `early`: a label held for its reading; it becomes a `hit` when the reading comes, else a `miss`. */
export type LabelJoinOutcome = 'hit' | 'miss' | 'evicted' | 'early';

export interface LabelJoinStats {
  /** Labels joined with their reading (including early ones, once their reading came). */
  hits: number;
  /** Labels that never found their reading. */
  misses: number;
  /** Readings pushed out before their label came. */
  evictions: number;
  /** Readings waiting for their label. */
  pending: number;
  /** Labels waiting for their reading now. */
  early: number;
  /** Of the hits, labels that arrived before their reading. */
  earlyJoined: number;
}

export class LabelJoin<V, L = never> {
  private readonly pending = new Map<string, V>();
  /** Insertion order is arrival order, so the oldest is first. */
  private readonly early = new Map<string, { label: L; at: number }>();
  private readonly maxEarly: number;
  private readonly earlyMaxAgeMs: number;
  private readonly now: () => number;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private earlyJoined = 0;

  constructor(private readonly options: LabelJoinOptions) {
    if (!Number.isInteger(options.maxPending) || options.maxPending < 1)
      throw new RangeError('maxPending must be an integer ≥ 1');
    this.maxEarly = options.maxEarly ?? 0;
    if (!Number.isInteger(this.maxEarly) || this.maxEarly < 0)
      throw new RangeError('maxEarly must be an integer ≥ 0');
    this.earlyMaxAgeMs = options.earlyMaxAgeMs ?? Number.POSITIVE_INFINITY;
    if (!(this.earlyMaxAgeMs > 0)) throw new RangeError('earlyMaxAgeMs must be > 0');
    this.now = options.now ?? Date.now;
  }

  /** Machine ids cannot contain control characters, so NUL separates the parts unambiguously. */
  private static key(machineId: string, seq: number): string {
    return `${machineId}\u0000${seq}`;
  }

  /**
   * Keeps `value` until the label for (machineId, seq) arrives; evicts the oldest beyond the bound.
   * Returns the label when it came first and was held (a hit): the record is complete.
   */
  put(machineId: string, seq: number, value: V): L | undefined {
    const key = LabelJoin.key(machineId, seq);
    this.expireEarly();
    const held = this.early.get(key);
    // A redelivered record replaces the earlier one and moves to the back.
    if (this.pending.has(key)) this.pending.delete(key);
    this.pending.set(key, value);
    if (held !== undefined) {
      this.early.delete(key);
      this.hits++;
      this.earlyJoined++;
      this.options.onOutcome?.('hit');
    }
    while (this.pending.size > this.options.maxPending) {
      const oldest = this.pending.keys().next().value as string;
      this.pending.delete(oldest);
      this.evictions++;
      this.options.onOutcome?.('evicted');
    }
    return held?.label;
  }

  /** The record waiting for this label (removed from the buffer), or undefined: a miss. */
  take(machineId: string, seq: number): V | undefined {
    const key = LabelJoin.key(machineId, seq);
    const value = this.pending.get(key);
    if (value === undefined) {
      this.miss();
      return undefined;
    }
    this.pending.delete(key);
    this.hit();
    return value;
  }

  /**
   * The record waiting for this label, left in the buffer (a hit). Without one, `label` is held for its
   * reading when `maxEarly` > 0 (`early`; {@link put} returns it), else it is a miss.
   */
  lookup(machineId: string, seq: number, label?: L): V | undefined {
    const key = LabelJoin.key(machineId, seq);
    const value = this.pending.get(key);
    if (value !== undefined) {
      this.hit();
      return value;
    }
    if (label === undefined || this.maxEarly === 0) {
      this.miss();
      return undefined;
    }
    this.expireEarly();
    this.early.delete(key);
    this.early.set(key, { label, at: this.now() });
    this.options.onOutcome?.('early');
    while (this.early.size > this.maxEarly) {
      this.early.delete(this.early.keys().next().value as string);
      this.miss();
    }
    return undefined;
  }

  /** The record for (machineId, seq), if still buffered; counts nothing. */
  peek(machineId: string, seq: number): V | undefined {
    return this.pending.get(LabelJoin.key(machineId, seq));
  }

  /** Drops the record for (machineId, seq); counts nothing. */
  delete(machineId: string, seq: number): boolean {
    return this.pending.delete(LabelJoin.key(machineId, seq));
  }

  /** Forgets every pending record and held label (not counted). */
  clear(): void {
    this.pending.clear();
    this.early.clear();
  }

  get stats(): LabelJoinStats {
    this.expireEarly();
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      pending: this.pending.size,
      early: this.early.size,
      earlyJoined: this.earlyJoined,
    };
  }

  private hit(): void {
    this.hits++;
    this.options.onOutcome?.('hit');
  }

  private miss(): void {
    this.misses++;
    this.options.onOutcome?.('miss');
  }

  /** Held labels older than `earlyMaxAgeMs` never found their reading: misses. */
  private expireEarly(): void {
    if (this.early.size === 0 || this.earlyMaxAgeMs === Number.POSITIVE_INFINITY) return;
    const cutoff = this.now() - this.earlyMaxAgeMs;
    for (const [key, { at }] of this.early) {
      if (at > cutoff) break;
      this.early.delete(key);
      this.miss();
    }
  }
}
