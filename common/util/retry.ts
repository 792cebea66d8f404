import { isRetriable } from '../errors.ts';
import { sleep } from './sleep.ts';

/** Options for {@link retry}. */
export interface RetryOptions {
  /** Attempts in total, the first included. Default 5. */
  attempts?: number;
  /** Delay before the second attempt, in ms. Default 100. */
  initialDelayMs?: number;
  /** Upper bound of one delay, in ms. Default 5000. */
  maxDelayMs?: number;
  /** Multiplier between delays. Default 2. */
  factor?: number;
  /** Decides whether an error is worth another attempt. Default: the error's `retriable` flag. */
  shouldRetry?: (err: unknown) => boolean;
  /** Called before each wait; for logging. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Aborts the waiting between attempts. */
  signal?: AbortSignal;
}

/**
 * Runs `fn` until it succeeds, a non-retriable error is thrown, or the
 * attempts are used up; waits with exponential backoff and full jitter.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 5;
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  const factor = options.factor ?? 2;
  const shouldRetry = options.shouldRetry ?? isRetriable;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      lastError = err;
      if (attempt === attempts || !shouldRetry(err) || options.signal?.aborted) throw err;
      const ceiling = Math.min(max, initial * factor ** (attempt - 1));
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      options.onRetry?.(err, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
  throw lastError;
}
