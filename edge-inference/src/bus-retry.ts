import type { EventBus } from '../../common/bus/types.ts';
import { ValidationError, describeError } from '../../common/errors.ts';
import type { Logger } from '../../common/logging/logger.ts';
import { sleep } from '../../common/util/sleep.ts';

/**
 * What the edge owes the bus is never dropped silently. A retrain request or a
 * batch of labelled samples whose publish fails (Kafka down, a leader election,
 * a timeout) is published again with exponential backoff until it goes through;
 * the labelled-sample queue in front of it is bounded (the worker's outbox), so
 * while Kafka is away the queue fills and the intake stops acknowledging (the
 * broker keeps the rest in the worker's persistent session). Only two things
 * end the retrying: a value the bus can never encode (`ValidationError`), and
 * the worker's stop after its grace period. Both are counted
 * (`driftline_edge_bus_publish_dropped_total{topic}`) and logged at `error`.
 */

/** How {@link publishUntilDelivered} retries. */
export interface BusRetryOptions {
  /** Aborted when the worker gives up (stop after the grace period): one last attempt, then false. */
  signal: AbortSignal;
  logger: Logger;
  /** Called before each wait (counts `driftline_edge_bus_publish_retries_total`). */
  onRetry?: (err: unknown, attempt: number) => void;
  /** First wait, ms. Default 250. */
  initialDelayMs?: number;
  /** Longest wait, ms. Default 5000. */
  maxDelayMs?: number;
}

/**
 * Publishes `value` until the bus accepts it. Resolves true when delivered, false when given up (see the
 * module comment); never rejects.
 */
export async function publishUntilDelivered(
  bus: EventBus,
  topic: string,
  key: string,
  value: unknown,
  options: BusRetryOptions,
): Promise<boolean> {
  const initial = options.initialDelayMs ?? 250;
  const max = options.maxDelayMs ?? 5000;
  for (let attempt = 1; ; attempt++) {
    try {
      await bus.publish(topic, key, value);
      if (attempt > 1)
        options.logger.info(`published to ${topic} after ${attempt} attempts`, {
          action: 'bus-publish',
          outcome: 'success',
          topic,
          attempts: attempt,
        });
      return true;
    } catch (err) {
      if (err instanceof ValidationError || options.signal.aborted) {
        options.logger.error(`giving up a publish to ${topic}: ${describeError(err)}`, {
          action: 'bus-publish',
          outcome: 'failure',
          topic,
          attempts: attempt,
        });
        return false;
      }
      options.onRetry?.(err, attempt);
      const delay = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
      if (attempt === 1 || attempt % 10 === 0)
        options.logger.warn(`publish to ${topic} failed (${describeError(err)}); retrying in ${delay} ms`, {
          action: 'bus-publish',
          outcome: 'retry',
          topic,
          attempt,
        });
      await sleep(delay, options.signal).catch(() => undefined);
    }
  }
}
