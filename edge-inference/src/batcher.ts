import { describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';

/**
 * Micro-batching with a bounded queue.
 *
 * Items are collected into batches of at most `maxBatchSize`; a batch is handed
 * to `process` as soon as it is full, or `maxWaitMs` after its oldest item
 * arrived, whichever comes first. Batches run one at a time, in arrival order.
 *
 * Backpressure policy (nothing is ever dropped): `push` always enqueues the
 * item. When the queue then holds `maxQueue` items or more, `push` returns a
 * promise that resolves once a batch has been taken and the queue is below the
 * limit again. The MQTT intake waits for that promise before acknowledging the
 * message and reading the next one, so a slow worker stops reading its socket:
 * TCP pushes back on the broker, which keeps the rest queued in the worker's
 * persistent session (QoS 1, `clean: false`). Each pause is counted
 * (`onBackpressure`). Memory is bounded by `maxQueue` + one batch in flight.
 */
/** The edge's default batch wait, ms (`EDGE_BATCH_MAX_WAIT_MS`; BENCHMARKS.md, thirteenth session). */
export const DEFAULT_BATCH_MAX_WAIT_MS = 10;

export interface BatcherOptions<T> {
  /** Flush when this many items are queued. */
  maxBatchSize: number;
  /** Flush this long after the oldest queued item arrived, ms (0: on the next timer tick). */
  maxWaitMs: number;
  /** Queue length at which `push` starts pushing back; at least `maxBatchSize`. */
  maxQueue: number;
  /** Handles one batch; the next batch starts after it settles. Errors are logged and counted, never rethrown. */
  process: (batch: T[], info: BatchInfo) => Promise<void> | void;
  logger?: Logger;
  /** Called when the intake pauses because the queue is full. */
  onBackpressure?: (queued: number) => void;
  /** Called with the queue length after it changes. */
  onDepth?: (queued: number) => void;
  /** Called when `process` threw. */
  onError?: (err: unknown, batch: T[]) => void;
}

/** Describes one batch to `process`. */
export interface BatchInfo {
  /** 1, 2, 3… in processing order. */
  id: number;
  /** Why it was flushed. */
  trigger: 'size' | 'time' | 'drain';
}

interface Entry<T> {
  item: T;
  at: number;
}

export class MicroBatcher<T> {
  private queue: Entry<T>[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private draining = 0;
  private closed = false;
  private batchId = 0;
  private spaceWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private readonly logger: Logger;

  constructor(private readonly options: BatcherOptions<T>) {
    if (!Number.isInteger(options.maxBatchSize) || options.maxBatchSize < 1)
      throw new RangeError('maxBatchSize must be an integer ≥ 1');
    if (!(options.maxWaitMs >= 0)) throw new RangeError('maxWaitMs must be ≥ 0');
    if (!(options.maxQueue >= options.maxBatchSize)) throw new RangeError('maxQueue must be ≥ maxBatchSize');
    this.logger = options.logger ?? silentLogger();
  }

  /** Items waiting for a batch. */
  get size(): number {
    return this.queue.length - this.head;
  }

  /** True while the intake is asked to wait. */
  get paused(): boolean {
    return this.spaceWaiters.length > 0;
  }

  /** True while a batch is being processed. */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Enqueues `item` (never drops it). Returns undefined when there is room for
   * more, or a promise to await before pushing the next item (backpressure).
   * Throws after {@link close}.
   */
  push(item: T): Promise<void> | undefined {
    if (this.closed) throw new Error('batcher is closed');
    this.queue.push({ item, at: Date.now() });
    this.options.onDepth?.(this.size);
    this.kick();
    if (this.size < this.options.maxQueue) return undefined;
    if (this.spaceWaiters.length === 0) {
      this.options.onBackpressure?.(this.size);
      this.logger.warn('batch queue full: pausing intake until the worker catches up', {
        queued: this.size,
        maxQueue: this.options.maxQueue,
        action: 'backpressure',
      });
    }
    return new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Processes everything queued now, without waiting for timers; resolves when idle. */
  async flush(): Promise<void> {
    this.draining++;
    try {
      this.kick();
      await this.idle();
    } finally {
      this.draining--;
    }
  }

  /** Resolves when the queue is empty and no batch is running. */
  idle(): Promise<void> {
    if (this.size === 0 && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new items, processes the queued ones, then resolves. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private kick(): void {
    if (this.running) return;
    const queued = this.size;
    if (queued === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    if (queued >= this.options.maxBatchSize || this.draining > 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      void this.run(queued >= this.options.maxBatchSize ? 'size' : 'drain');
      return;
    }
    if (!this.timer) {
      const oldest = (this.queue[this.head] as Entry<T>).at;
      const delay = Math.max(0, oldest + this.options.maxWaitMs - Date.now());
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.running && this.size > 0) void this.run('time');
      }, delay);
    }
  }

  private take(): T[] {
    const n = Math.min(this.options.maxBatchSize, this.size);
    const batch: T[] = new Array<T>(n);
    for (let i = 0; i < n; i++) batch[i] = (this.queue[this.head + i] as Entry<T>).item;
    this.head += n;
    // Compact now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    } else if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    return batch;
  }

  private async run(trigger: BatchInfo['trigger']): Promise<void> {
    this.running = true;
    const batch = this.take();
    this.options.onDepth?.(this.size);
    if (this.size < this.options.maxQueue) for (const w of this.spaceWaiters.splice(0)) w();
    const info: BatchInfo = { id: ++this.batchId, trigger };
    try {
      await this.options.process(batch, info);
    } catch (err) {
      this.logger.error('batch processing failed', {
        batchId: info.id,
        size: batch.length,
        err: describeError(err),
      });
      try {
        this.options.onError?.(err, batch);
      } catch {
        // an error callback must not wedge the batcher
      }
    } finally {
      this.running = false;
      this.kick();
    }
  }
}
