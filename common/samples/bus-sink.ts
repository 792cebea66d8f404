import { ValidationError } from '../errors.ts';
import { BUS_TOPICS, type BusMessage, type EventBus, type Subscription } from '../bus/types.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { labelledSampleSchema, type LabelledSample, type LabelledSampleStore } from './types.ts';

/**
 * The labelled-sample sink: consumes `driftline.labelled-samples` from the
 * event bus (consumer group `retrainer-samples`) and appends every sample to a
 * {@link LabelledSampleStore}, so the retrainer has the training data even when
 * the edge that saw it is gone.
 *
 * A message value is one sample, an array of samples, or `{ samples: [...] }`.
 * Valid samples are appended; invalid ones are counted and logged. A message
 * with no valid sample at all is rejected with a non-retriable
 * `ValidationError` (the bus dead-letters it); a store failure is thrown as is
 * (retriable: the bus redelivers; duplicates are harmless, reads de-duplicate).
 * The message is acknowledged only after the append returned.
 */

/** Default consumer group of the sink. */
export const SAMPLE_SINK_GROUP = 'retrainer-samples';

/** Options of {@link startSampleBusSink}. */
export interface SampleBusSinkOptions {
  /** Bus to consume from. */
  bus: EventBus;
  /** Where samples go. */
  store: LabelledSampleStore;
  /** Logs invalid samples. Default silent. */
  logger?: Logger;
  /** Consumer group. Default `retrainer-samples`. */
  group?: string;
  /** Topic. Default `driftline.labelled-samples`. */
  topic?: string;
  /** Start from the earliest retained message when the group has no position. Default true. */
  fromBeginning?: boolean;
  /** Called after each append with the number of samples written; for metrics. */
  onAppend?: (appended: number, invalid: number) => void;
}

/** A running sink. */
export interface SampleBusSink {
  /** Samples appended so far. */
  readonly appended: number;
  /** Samples rejected as invalid so far. */
  readonly invalid: number;
  /** Stops consuming (the in-flight append finishes first). Does not close the store. */
  close(): Promise<void>;
}

/** Splits a message value into its candidate samples. */
export function samplesOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value === 'object' && value !== null && Array.isArray((value as { samples?: unknown }).samples))
    return (value as { samples: unknown[] }).samples;
  return [value];
}

/** Subscribes the sink; resolves once the subscription is in place. */
export async function startSampleBusSink(options: SampleBusSinkOptions): Promise<SampleBusSink> {
  const logger = options.logger ?? silentLogger();
  const topic = options.topic ?? BUS_TOPICS.labelledSamples;
  const counters = { appended: 0, invalid: 0 };

  const handler = async (message: BusMessage): Promise<void> => {
    const candidates = samplesOf(message.value);
    const valid: LabelledSample[] = [];
    let firstProblem: string | undefined;
    for (const c of candidates) {
      const parsed = labelledSampleSchema.safeParse(c);
      if (parsed.success) valid.push(parsed.data);
      else {
        const issue = parsed.error.issues[0];
        firstProblem ??= `${issue?.path.join('.') || 'sample'}: ${issue?.message ?? 'invalid'}`;
      }
    }
    const invalid = candidates.length - valid.length;
    if (invalid > 0) {
      counters.invalid += invalid;
      logger.warn('labelled samples rejected', {
        topic,
        offset: message.offset,
        invalid,
        reason: firstProblem,
      });
    }
    if (valid.length === 0)
      throw new ValidationError(
        'invalid_sample',
        `no valid labelled sample in message ${message.offset}: ${firstProblem ?? 'empty batch'}`,
      );
    await options.store.append(valid);
    counters.appended += valid.length;
    options.onAppend?.(valid.length, invalid);
  };

  const subscription: Subscription = await options.bus.subscribe(
    topic,
    { group: options.group ?? SAMPLE_SINK_GROUP, fromBeginning: options.fromBeginning ?? true },
    handler,
  );
  return {
    get appended() {
      return counters.appended;
    },
    get invalid() {
      return counters.invalid;
    },
    close: () => subscription.close(),
  };
}
