/**
 * Rate pacing. A timer ticks every few milliseconds and, each tick, asks for
 * the number of messages due since the start (rate × elapsed time − already
 * sent), so the long-run rate is exact whatever the timer jitter; one timer
 * serves any rate, instead of one setTimeout per message. In `max` mode it
 * sends whenever the sender has room (after each acknowledgement).
 */

/** Publishes up to `max` messages now; returns how many it published (0 when blocked or finished). */
export type Sender = (max: number) => number;

export interface PacerOptions {
  /** Messages per second in total, or `max`: as fast as the sender accepts. */
  ratePerSecond: number | 'max';
  /** Timer period in paced mode, ms. Default 10. */
  tickMs?: number;
  /** A backlog older than this (the sender was blocked) is dropped instead of sent in one burst, ms. Default 1000. */
  maxBacklogMs?: number;
  /** Largest batch per call to the sender in `max` mode. Default 256. */
  maxBatch?: number;
  /** Clock, for tests. Default `performance.now()`. */
  now?: () => number;
}

/** Messages due at `elapsedMs` after the start at `ratePerSecond` (the first is due at once), minus those `sent`. */
export function dueMessages(elapsedMs: number, ratePerSecond: number, sent: number): number {
  return Math.max(0, Math.floor((elapsedMs * ratePerSecond) / 1000) + 1 - sent);
}

export class Pacer {
  private readonly tickMs: number;
  private readonly maxBacklogMs: number;
  private readonly maxBatch: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private running = false;
  private startedAt = 0;
  /** Messages accounted for by the schedule: sent, or skipped as stale backlog. */
  private accounted = 0;
  private sent = 0;

  constructor(
    private readonly options: PacerOptions,
    private readonly send: Sender,
  ) {
    if (
      options.ratePerSecond !== 'max' &&
      !(options.ratePerSecond > 0 && Number.isFinite(options.ratePerSecond))
    ) {
      throw new RangeError(`rate must be a positive number or 'max', got ${options.ratePerSecond}`);
    }
    this.tickMs = options.tickMs ?? 10;
    this.maxBacklogMs = options.maxBacklogMs ?? 1000;
    this.maxBatch = options.maxBatch ?? 256;
    this.now = options.now ?? (() => performance.now());
  }

  /** Messages handed to the sender so far. */
  get total(): number {
    return this.sent;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startedAt = this.now();
    this.accounted = 0;
    if (this.options.ratePerSecond === 'max') this.wake();
    else {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.tick();
    }
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  /** The sender has room again: in `max` mode, send more on the next turn of the event loop. */
  wake(): void {
    if (!this.running || this.options.ratePerSecond !== 'max' || this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump();
    });
  }

  /** One paced tick: send what is due. */
  tick(): void {
    const rate = this.options.ratePerSecond;
    if (!this.running || rate === 'max') return;
    const elapsed = this.now() - this.startedAt;
    let due = dueMessages(elapsed, rate, this.accounted);
    const maxBacklog = Math.max(1, Math.ceil((rate * this.maxBacklogMs) / 1000));
    if (due > maxBacklog) {
      // Blocked for a while: forget the excess rather than burst it.
      this.accounted += due - maxBacklog;
      due = maxBacklog;
    }
    if (due === 0) return;
    const n = this.send(due);
    this.accounted += n;
    this.sent += n;
  }

  private pump(): void {
    // Send batches until the sender is blocked; yield to I/O every few batches.
    for (let batch = 0; batch < 16 && this.running; batch++) {
      const n = this.send(this.maxBatch);
      this.sent += n;
      if (n === 0) return;
    }
    this.wake();
  }
}
