/**
 * Per-machine message rates, measured over the last completed window (or since
 * the start before the first window completes).
 */
export class RateMeter {
  private readonly counts: number[];
  private snapshot: number[];
  private snapshotAt: number;
  private rates: number[] | undefined;

  constructor(
    readonly machineIds: readonly string[],
    private readonly now: () => number = () => performance.now(),
  ) {
    this.counts = machineIds.map(() => 0);
    this.snapshot = machineIds.map(() => 0);
    this.snapshotAt = this.now();
  }

  /** Counts one message of machine index `machine`. */
  add(machine: number): void {
    this.counts[machine] = (this.counts[machine] ?? 0) + 1;
  }

  /** Closes the current window: later {@link perMachine} calls report the rates measured in it. */
  roll(): void {
    const now = this.now();
    const seconds = (now - this.snapshotAt) / 1000;
    if (seconds <= 0) return;
    this.rates = this.counts.map((c, i) => (c - (this.snapshot[i] ?? 0)) / seconds);
    this.snapshot = [...this.counts];
    this.snapshotAt = now;
  }

  /** Messages per second per machine index. */
  perMachine(): number[] {
    if (this.rates) return this.rates;
    const seconds = (this.now() - this.snapshotAt) / 1000;
    return this.counts.map((c) => (seconds > 0 ? c / seconds : 0));
  }

  /** Messages per second keyed by machine id, rounded to 0.1. */
  byMachineId(): Record<string, number> {
    const rates = this.perMachine();
    return Object.fromEntries(this.machineIds.map((id, i) => [id, Math.round((rates[i] ?? 0) * 10) / 10]));
  }
}

/** A first-in first-out queue with O(1) push and shift. */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
