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
 * Memory is bounded and packed: the window is a ring of the last `maxEntries`
 * insertions in typed arrays (machine number, kind, seq, value) and an
 * open-addressing table of ring positions (linear probing, at most half full,
 * deletion by backward shift), so a message costs O(1) and allocates nothing;
 * machine ids are interned and forgotten with their last entry. At the
 * default 100,000 this holds ~3.2 MB in a handful of typed arrays; the
 * `Map` of string keys with an entry object and a queue object per key it
 * replaced held ~15 MB in ~400,000 small heap objects, promoted to the old
 * space and freed again at the message rate (BENCHMARKS.md, "What the edge's
 * memory is"). A key taken in again with another value is written to the ring
 * as the newest and its older copy goes stale, so until that copy leaves the
 * ring the window remembers one key fewer: at most `maxEntries` keys, fewer
 * only while changed values (restarted counters) are in it. (Before the
 * packing, a `Map` used as a FIFO cost 130–540 µs per message at its bound:
 * V8's `map.keys().next()` skips the deleted slots at the front of the table;
 * `npm run bench -- dedup`.) A repeat older than the window is not
 * recognised; the default (100,000) covers more than the broker's
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
const TELEMETRY = 0;
const LABEL = 1;
const EMPTY = -1;

export class RepeatFilter {
  // The ring: the last `maxEntries` insertions, oldest at `head` once it is full.
  private readonly ringMachine: Int32Array;
  private readonly ringKind: Uint8Array;
  private readonly ringSeq: Float64Array;
  private readonly ringValue: Float64Array;
  private head = 0;
  private filled = 0;
  /** Open addressing: slot → ring position of the key's current entry, or EMPTY. */
  private readonly table: Int32Array;
  private readonly mask: number;
  private live = 0;
  // Interned machine ids, with the number of ring entries (current or stale) naming each.
  private readonly machineIndex = new Map<string, number>();
  private machineIds: string[] = [];
  private machineRefs = new Int32Array(16);
  private readonly freeMachines: number[] = [];
  /** Label classes as numbers (the schema allows three; any string works). */
  private readonly classIndex = new Map<string, number>();

  constructor(private readonly maxEntries = 100_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1)
      throw new RangeError(`RepeatFilter: maxEntries must be an integer ≥ 1, got ${String(maxEntries)}`);
    this.ringMachine = new Int32Array(maxEntries);
    this.ringKind = new Uint8Array(maxEntries);
    this.ringSeq = new Float64Array(maxEntries);
    this.ringValue = new Float64Array(maxEntries);
    let slots = 8;
    while (slots < 2 * maxEntries) slots *= 2;
    this.table = new Int32Array(slots).fill(EMPTY);
    this.mask = slots - 1;
  }

  /** Entries remembered (current keys). */
  get size(): number {
    return this.live;
  }

  /** Machine ids interned (those with an entry, current or stale, in the window). */
  get machines(): number {
    return this.machineIndex.size;
  }

  /** True when this telemetry reading was taken in before (and is remembered); otherwise remembers it. */
  telemetryRepeat(machineId: string, seq: number, ts: number): boolean {
    return this.check(machineId, TELEMETRY, seq, ts);
  }

  /** True when this label was taken in before (and is remembered); otherwise remembers it. */
  labelRepeat(machineId: string, seq: number, efficiency: string): boolean {
    let c = this.classIndex.get(efficiency);
    if (c === undefined) {
      c = this.classIndex.size;
      this.classIndex.set(efficiency, c);
    }
    return this.check(machineId, LABEL, seq, c);
  }

  private check(machineId: string, kind: number, seq: number, value: number): boolean {
    const known = this.machineIndex.get(machineId);
    let slot = this.find(known ?? EMPTY, kind, seq);
    const at = slot >= 0 ? (this.table[slot] as number) : EMPTY;
    if (at !== EMPTY && this.ringValue[at] === value) return true;
    // New key, or a changed value (re-inserted as the newest; its old ring entry goes stale).
    const evicting = this.filled === this.maxEntries;
    if (evicting) this.evictOldest();
    // Without an eviction a known machine keeps its number: no second Map lookup.
    const m = evicting || known === undefined ? this.intern(machineId) : known;
    const pos = (this.head + this.filled) % this.maxEntries;
    this.filled++;
    this.ringMachine[pos] = m;
    this.ringKind[pos] = kind;
    this.ringSeq[pos] = seq;
    this.ringValue[pos] = value;
    this.machineRefs[m] = (this.machineRefs[m] as number) + 1;
    // An eviction may have moved or removed the key's slot, and a new machine had no lookup: look it up again.
    if (evicting || known === undefined) slot = this.find(m, kind, seq);
    if (slot >= 0 && this.table[slot] !== EMPTY) {
      this.table[slot] = pos;
    } else {
      this.table[-slot - 1] = pos;
      this.live++;
    }
    return false;
  }

  /**
   * The slot holding the key's ring position (≥ 0), or −(the empty slot where it would go) − 1.
   * `machine` EMPTY (an id never seen) finds nothing, at no cost.
   */
  private find(machine: number, kind: number, seq: number): number {
    if (machine === EMPTY) return -1;
    let i = this.home(machine, kind, seq);
    for (;;) {
      const at = this.table[i] as number;
      if (at === EMPTY) return -i - 1;
      if (this.ringSeq[at] === seq && this.ringMachine[at] === machine && this.ringKind[at] === kind)
        return i;
      i = (i + 1) & this.mask;
    }
  }

  private home(machine: number, kind: number, seq: number): number {
    const lo = seq >>> 0;
    const hi = (seq / 4294967296) >>> 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1);
    h ^= Math.imul(machine * 2 + kind + 1, 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 13;
    return h & this.mask;
  }

  /** Drops the ring's oldest entry; when it is its key's current one, the key is forgotten. */
  private evictOldest(): void {
    const pos = this.head;
    const m = this.ringMachine[pos] as number;
    const slot = this.find(m, this.ringKind[pos] as number, this.ringSeq[pos] as number);
    if (slot >= 0 && this.table[slot] === pos) {
      this.removeSlot(slot);
      this.live--;
    }
    this.head = (this.head + 1) % this.maxEntries;
    this.filled--;
    const refs = (this.machineRefs[m] as number) - 1;
    this.machineRefs[m] = refs;
    if (refs === 0) {
      this.machineIndex.delete(this.machineIds[m] as string);
      this.freeMachines.push(m);
    }
  }

  /** Linear-probing deletion by backward shift: no tombstones, so lookups stay short at the bound. */
  private removeSlot(slot: number): void {
    let hole = slot;
    let j = slot;
    for (;;) {
      j = (j + 1) & this.mask;
      const at = this.table[j] as number;
      if (at === EMPTY) break;
      const h = this.home(
        this.ringMachine[at] as number,
        this.ringKind[at] as number,
        this.ringSeq[at] as number,
      );
      // The entry at j may fill the hole when its home is not cyclically within (hole, j].
      if ((j > hole && (h <= hole || h > j)) || (j < hole && h <= hole && h > j)) {
        this.table[hole] = at;
        hole = j;
      }
    }
    this.table[hole] = EMPTY;
  }

  private intern(machineId: string): number {
    const known = this.machineIndex.get(machineId);
    if (known !== undefined) return known;
    let m = this.freeMachines.pop();
    if (m === undefined) {
      m = this.machineIds.length;
      this.machineIds.push(machineId);
      if (m >= this.machineRefs.length) {
        const grown = new Int32Array(this.machineRefs.length * 2);
        grown.set(this.machineRefs);
        this.machineRefs = grown;
      }
    } else {
      this.machineIds[m] = machineId;
    }
    this.machineIndex.set(machineId, m);
    return m;
  }
}
