/**
 * Repeats recognised by machineId + seq within a bounded window. MQTT QoS 1 is
 * at least once: a device re-sends a message whose PUBACK it did not see (its
 * broker restarted, its connection dropped), the broker redelivers what the
 * worker had not acknowledged, and a retained message is replayed to every new
 * subscriber. Without this each repeat is predicted again and counted twice by
 * the drift windows and the accuracy monitor.
 *
 * A reading is a repeat when the same machine's same `seq` was taken in before
 * with the same `ts`: a redelivery carries the same payload. The same seq with
 * another `ts` is a device that restarted its counter (the simulator starts at
 * 0 on every run); it is taken in and replaces the remembered entry. A label
 * is a repeat when the same machine's same seq was labelled before with the
 * same class.
 *
 * Memory is bounded: at most `maxEntries` keys, the oldest forgotten first,
 * O(1) per message. The eviction order is kept in a queue beside the Map, not
 * read from the Map's own insertion order: V8's `map.keys().next()` skips the
 * deleted slots at the front of the table, so a Map used as a FIFO at its
 * bound costs O(deleted) per eviction — measured 130–540 µs per message at
 * 100,000 keys instead of ~4 µs (`npm run bench -- dedup`). A repeat older than the window
 * is not recognised; the default (100,000) covers more than the broker's
 * per-session queue (10,000) and a worker's in-flight messages many times.
 *
 * In memory only, on purpose: a restarted worker starts with an empty window.
 * Persisting it (or per-machine high-water marks) would not remove the
 * duplicates a crash makes — the worker dies between the broker acknowledging
 * a prediction and the worker writing its mark as easily as before the
 * PUBACK — so it could only narrow the window, at the cost of a disk write
 * (and an fsync, to mean anything) per batch on the hot path, state that
 * outlives the process in a pod without a volume, and high-water marks are
 * wrong here anyway: a device that restarts its counter reuses seqs (the
 * simulator starts at 0 every run), which only the (seq, ts) pairs tell
 * apart. And a filter that wrongly dropped a redelivered reading would turn
 * at-least-once into a loss. Instead the redelivery is recognisable
 * downstream: the broker marks it (MQTT DUP), the prediction made from it
 * carries `redelivered: true` (ingest.ts), and the new worker's fresh drift
 * windows count it once. The duplicates after a crash are bounded by what the
 * worker had published but not yet acknowledged.
 */
export class RepeatFilter {
  /** key → the remembered value and the generation of its latest insertion. */
  private readonly seen = new Map<string, { value: number | string; gen: number }>();
  /** Keys in insertion order with the generation they were inserted with (older copies are stale). */
  private order: { key: string; gen: number }[] = [];
  private head = 0;
  private gen = 0;

  constructor(private readonly maxEntries = 100_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1)
      throw new RangeError(`RepeatFilter: maxEntries must be an integer ≥ 1, got ${String(maxEntries)}`);
  }

  /** Entries remembered. */
  get size(): number {
    return this.seen.size;
  }

  /** True when this telemetry reading was taken in before (and is remembered); otherwise remembers it. */
  telemetryRepeat(machineId: string, seq: number, ts: number): boolean {
    return this.check(`t\u0000${machineId}\u0000${seq}`, ts);
  }

  /** True when this label was taken in before (and is remembered); otherwise remembers it. */
  labelRepeat(machineId: string, seq: number, efficiency: string): boolean {
    return this.check(`l\u0000${machineId}\u0000${seq}`, efficiency);
  }

  private check(key: string, value: number | string): boolean {
    const before = this.seen.get(key);
    if (before !== undefined && before.value === value) return true;
    const gen = ++this.gen;
    this.seen.set(key, { value, gen }); // a changed value is re-inserted as the newest
    this.order.push({ key, gen });
    while (this.seen.size > this.maxEntries) this.evictOldest();
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    // Re-inserted keys leave stale copies behind; with few evictions they would pile up: drop them.
    if (this.order.length - this.head > 2 * this.maxEntries + 1024) {
      this.order = this.order.slice(this.head).filter((e) => this.seen.get(e.key)?.gen === e.gen);
      this.head = 0;
    }
    return false;
  }

  /** Forgets the oldest key still current (stale queue entries of re-inserted keys are skipped). */
  private evictOldest(): void {
    for (;;) {
      const e = this.order[this.head++] as { key: string; gen: number };
      if (this.seen.get(e.key)?.gen === e.gen) {
        this.seen.delete(e.key);
        return;
      }
    }
  }
}
