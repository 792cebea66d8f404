import { DriftlineError } from '../errors.ts';

/**
 * Bounds how many expensive jobs (password hashes) run at once and how many
 * may wait, and serves the waiting ones round-robin by lane (the client
 * address): one busy address cannot push every other address to the back of
 * the queue. A job beyond the queue bound is refused at once with
 * {@link GateFullError} (retriable: the caller should answer "try later").
 */

/** The gate's queue is full; nothing was run. */
export class GateFullError extends DriftlineError {
  constructor(message: string) {
    super(message, { code: 'OVERLOADED', retriable: true });
  }
}

export interface FairGateOptions {
  /** Jobs running at once. */
  maxConcurrent: number;
  /** Jobs waiting at once (all lanes); beyond, {@link FairGate.run} rejects with {@link GateFullError}. */
  maxQueued: number;
}

interface Waiting {
  start: () => void;
}

export class FairGate {
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private running = 0;
  private queued = 0;
  /** Waiting jobs by lane; the Map's order is the round-robin order. */
  private readonly lanes = new Map<string, Waiting[]>();
  /** Jobs started since creation (tests count them). */
  started = 0;
  /** Jobs refused because the queue was full. */
  refused = 0;

  constructor(options: FairGateOptions) {
    if (!(options.maxConcurrent >= 1)) throw new RangeError('maxConcurrent must be at least 1');
    if (!(options.maxQueued >= 0)) throw new RangeError('maxQueued must be at least 0');
    this.maxConcurrent = options.maxConcurrent;
    this.maxQueued = options.maxQueued;
  }

  /** Jobs running now. */
  get active(): number {
    return this.running;
  }

  /** Jobs waiting now. */
  get waiting(): number {
    return this.queued;
  }

  /** Runs `job` when a slot is free (its lane's turn); rejects with {@link GateFullError} when the queue is full. */
  run<T>(lane: string, job: () => Promise<T>): Promise<T> {
    if (this.running < this.maxConcurrent && this.queued === 0) return this.exec(job);
    if (this.queued >= this.maxQueued) {
      this.refused++;
      return Promise.reject(
        new GateFullError(
          `too many password checks pending (${this.queued} waiting, ${this.running} running)`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const list = this.lanes.get(lane);
      const waiting: Waiting = { start: () => this.exec(job).then(resolve, reject) };
      if (list === undefined) this.lanes.set(lane, [waiting]);
      else list.push(waiting);
      this.queued++;
    });
  }

  private exec<T>(job: () => Promise<T>): Promise<T> {
    this.running++;
    this.started++;
    let p: Promise<T>;
    try {
      p = job();
    } catch (err) {
      p = Promise.reject(err);
    }
    return p.finally(() => {
      this.running--;
      this.next();
    });
  }

  /** Starts the next waiting job: the first lane's oldest, then that lane moves to the back. */
  private next(): void {
    while (this.running < this.maxConcurrent && this.queued > 0) {
      const first = this.lanes.entries().next();
      if (first.done === true) return;
      const [lane, list] = first.value;
      const job = list.shift() as Waiting;
      this.lanes.delete(lane);
      if (list.length > 0) this.lanes.set(lane, list);
      this.queued--;
      job.start();
    }
  }
}
