import { Counter, type Registry } from 'prom-client';
import type { Logger } from './logging/logger.ts';
import { TOPICS } from './schema/telemetry.ts';

/** One rejected message, as written to the dead-letter topic. */
export interface DeadLetterRecord {
  /** Service that rejected it, e.g. `edge-inference`. */
  source: string;
  /** Topic (MQTT) or bus topic the message arrived on. */
  topic: string;
  /** Stable reason code, e.g. `out_of_range`. */
  reason: string;
  /** Readable explanation. */
  detail: string;
  /** Epoch ms when it was rejected. */
  rejectedAt: number;
  /** The first bytes of the payload as UTF-8 text (at most 1 KiB). */
  payload: string;
  /** Full payload size in bytes. */
  payloadBytes: number;
}

/** Publishes a dead-letter record somewhere durable; the MQTT or Kafka adapter implements it. */
export type DeadLetterPublisher = (topic: string, record: DeadLetterRecord) => Promise<void> | void;

export interface DeadLetterSinkOptions {
  source: string;
  logger: Logger;
  /** Where records go besides the log; omitted: log and counters only. */
  publish?: DeadLetterPublisher;
  /** Prometheus registry for `driftline_dead_letters_total{reason}`. */
  registry?: Registry;
  /** Topic records are published to; default `driftline/dead-letter`. */
  topic?: string;
}

const PAYLOAD_PREVIEW_BYTES = 1024;

/**
 * The dead-letter sink: every rejected message is counted by reason, logged and
 * published. Publishing failures are logged and counted, never thrown, so a
 * rejection can never take the service down.
 */
export class DeadLetterSink {
  private readonly counts = new Map<string, number>();
  private readonly counter: Counter<'reason'> | undefined;
  private publishFailures = 0;

  constructor(private readonly options: DeadLetterSinkOptions) {
    this.counter = options.registry
      ? new Counter({
          name: 'driftline_dead_letters_total',
          help: 'Messages rejected and dead-lettered, by reason',
          labelNames: ['reason'],
          registers: [options.registry],
        })
      : undefined;
  }

  /** Records one rejection. Never throws. */
  async reject(
    topic: string,
    payload: Uint8Array | string,
    reason: string,
    detail: string,
  ): Promise<DeadLetterRecord> {
    const bytes =
      typeof payload === 'string'
        ? Buffer.from(payload)
        : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const record: DeadLetterRecord = {
      source: this.options.source,
      topic,
      reason,
      detail,
      rejectedAt: Date.now(),
      payload: bytes.subarray(0, PAYLOAD_PREVIEW_BYTES).toString('utf8'),
      payloadBytes: bytes.byteLength,
    };
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.counter?.inc({ reason });
    this.options.logger.warn('message dead-lettered', { action: 'dead-letter', reason, topic, detail });
    if (this.options.publish) {
      try {
        await this.options.publish(this.options.topic ?? TOPICS.deadLetter, record);
      } catch (err) {
        this.publishFailures++;
        this.options.logger.error('dead-letter publish failed; record kept in the log only', {
          reason,
          topic,
          err,
        });
      }
    }
    return record;
  }

  /** Rejections so far, by reason. */
  countsByReason(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** Total rejections so far. */
  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** Publishes to the dead-letter topic that failed (the record still went to the log). */
  get failedPublishes(): number {
    return this.publishFailures;
  }
}
