import { Partitioners, type Admin, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import { BUS_TOPICS } from '../bus/types.ts';
import {
  createKafkaClient,
  encodeValue,
  ensureTopics,
  ephemeralGroupId,
  kafkaError,
  messageHeaders,
  resolveKafkaBusOptions,
  type KafkaConnectionOptions,
} from '../bus/kafka.ts';
import { ValidationError, describeError } from '../errors.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { samplesOf } from './bus-sink.ts';
import { SampleStoreError } from './file-store.ts';
import {
  labelledSampleSchema,
  matchesWindow,
  sampleKey,
  type LabelledSample,
  type LabelledSampleStore,
  type SampleStoreStats,
  type SampleWindowQuery,
} from './types.ts';

/**
 * The labelled-sample store on Kafka: the topic `driftline.labelled-samples`
 * itself is the store, so the training data lives in the cluster (replicated,
 * retained by `retention.ms`) and survives the edge worker that saw it.
 *
 * - `append` publishes the samples keyed by `machineId` (one message per
 *   machine and chunk: `{ samples: [...] }`) with an idempotent producer.
 *   The edge worker's own batches on the same topic (published through the
 *   bus) are read the same way: a message value is one sample, an array of
 *   samples or `{ samples }`.
 * - `readWindow` seeks by time: `fetchTopicOffsetsByTimestamp(fromTs − seekSlackMs)`
 *   gives each partition's first offset published at or after that time (a
 *   sample is published after it was read, so nothing inside the window lies
 *   before; the slack absorbs clock skew between edge and broker); the end
 *   offsets are captured at query time. A short-lived consumer (its own
 *   throw-away group, nothing committed) reads each partition from its start
 *   to its end offset, the samples are validated, filtered by the query and
 *   de-duplicated, and returned oldest first (publish time, then partition
 *   and offset). Without `fromTs` the whole retained topic is read.
 * - `stats` reads the whole retained topic (it is meant for start-up logs and
 *   tools, not hot paths).
 */

/** Options of {@link openKafkaSampleStore}. */
export interface KafkaSampleStoreOptions extends KafkaConnectionOptions {
  /** Prepended to the topic name (as the Kafka bus does). Default ''. */
  topicPrefix?: string;
  /** Logical topic. Default `driftline.labelled-samples`. */
  topic?: string;
  /** Partitions when the store creates the topic. Default 3. */
  partitions?: number;
  /** `retention.ms` when the store creates the topic. Default 7 days. */
  retentionMs?: number;
  /** How far before `fromTs` the timestamp seek starts, ms. Default 60000. */
  seekSlackMs?: number;
  /** A read that has not reached the end offsets by then fails (retriable), ms. Default 60000. */
  readTimeoutMs?: number;
  /** Samples per published message at most. Default 500. */
  samplesPerMessage?: number;
}

/** What the last read did (for logs and tests). */
export interface KafkaReadInfo {
  /** Epoch ms the seek started from; undefined when the whole topic was read. */
  seekFromTs?: number;
  /** Messages read (inside the captured offset ranges). */
  messages: number;
  /** Per partition: [start, end) offsets read. */
  ranges: Record<number, [string, string]>;
  /** Wall time of the read, ms. */
  durationMs: number;
}

interface Entry {
  ts: number;
  partition: number;
  offset: bigint;
  index: number;
  sample: LabelledSample;
}

/** Connects, creates the topic when missing, and returns the store. */
export async function openKafkaSampleStore(options: KafkaSampleStoreOptions): Promise<KafkaSampleStore> {
  const store = new KafkaSampleStore(options);
  await store.open();
  return store;
}

/** See the module comment. Create with {@link openKafkaSampleStore}. */
export class KafkaSampleStore implements LabelledSampleStore {
  readonly kind: string;
  /** Physical topic name. */
  readonly topic: string;
  private readonly logger: Logger;
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly clientId: string;
  private readonly partitions: number;
  private readonly retentionMs: number;
  private readonly seekSlackMs: number;
  private readonly readTimeoutMs: number;
  private readonly samplesPerMessage: number;
  private skipped = 0;
  private closed = false;
  private opened = false;
  /** What the last read did. */
  lastRead: KafkaReadInfo | undefined;

  constructor(options: KafkaSampleStoreOptions) {
    // The bus's validation covers the connection, the prefix, partitions and retention.
    const resolved = resolveKafkaBusOptions({
      ...options,
      ...(options.partitions !== undefined ? { partitions: options.partitions } : {}),
      ...(options.retentionMs !== undefined ? { retentionMs: options.retentionMs } : {}),
    });
    this.logger = options.logger ?? silentLogger();
    this.clientId = resolved.clientId;
    this.partitions = resolved.partitions;
    this.retentionMs = resolved.retentionMs;
    this.topic = `${resolved.topicPrefix}${options.topic ?? BUS_TOPICS.labelledSamples}`;
    this.seekSlackMs = nonNegative('seekSlackMs', options.seekSlackMs ?? 60_000);
    this.readTimeoutMs = nonNegative('readTimeoutMs', options.readTimeoutMs ?? 60_000);
    this.samplesPerMessage = Math.max(
      1,
      Math.floor(nonNegative('samplesPerMessage', options.samplesPerMessage ?? 500)),
    );
    this.kafka = createKafkaClient({ ...options, logger: this.logger });
    this.admin = this.kafka.admin();
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    this.kind = `kafka ${resolved.brokers.join(',')} ${this.topic}`;
  }

  /** Connects the admin client and the producer; creates the topic when missing. */
  async open(): Promise<void> {
    if (this.opened) return;
    try {
      await this.admin.connect();
      await this.producer.connect();
      await ensureTopics(
        this.admin,
        [{ topic: this.topic, partitions: this.partitions, retentionMs: this.retentionMs }],
        this.logger,
      );
      this.opened = true;
    } catch (err) {
      await this.producer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      throw kafkaError(`kafka sample store: cannot open ${this.topic}`, err);
    }
  }

  async append(samples: readonly LabelledSample[]): Promise<void> {
    if (this.closed) throw new SampleStoreError(`sample store ${this.topic} is closed`, { retriable: false });
    if (samples.length === 0) return;
    const byMachine = new Map<string, LabelledSample[]>();
    for (let i = 0; i < samples.length; i++) {
      const parsed = labelledSampleSchema.safeParse(samples[i]);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ValidationError(
          'invalid_sample',
          `labelled sample ${i}: ${issue?.path.join('.') || 'sample'}: ${issue?.message ?? 'invalid'}`,
        );
      }
      const s = parsed.data as LabelledSample;
      const list = byMachine.get(s.machineId);
      if (list) list.push(s);
      else byMachine.set(s.machineId, [s]);
    }
    const messages: { key: string; value: string; headers: ReturnType<typeof messageHeaders> }[] = [];
    for (const [machineId, list] of byMachine) {
      for (let i = 0; i < list.length; i += this.samplesPerMessage) {
        messages.push({
          key: machineId,
          value: encodeValue({ samples: list.slice(i, i + this.samplesPerMessage) }),
          headers: messageHeaders(),
        });
      }
    }
    try {
      await this.producer.send({ topic: this.topic, acks: -1, messages });
    } catch (err) {
      const e = kafkaError(`kafka sample store: append to ${this.topic} failed`, err);
      throw new SampleStoreError(e.message, { retriable: e.retriable, cause: err });
    }
  }

  async readWindow(query: SampleWindowQuery = {}): Promise<LabelledSample[]> {
    const limit = query.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return [];
    const machines = query.machineIds ? new Set(query.machineIds) : undefined;
    const entries: Entry[] = [];
    const seekFromTs = query.fromTs === undefined ? undefined : Math.max(0, query.fromTs - this.seekSlackMs);
    await this.scan(seekFromTs, (partition, message) => {
      const ts = Number(message.timestamp);
      let index = 0;
      for (const s of this.samplesIn(message)) {
        if (matchesWindow(s, query, machines))
          entries.push({ ts, partition, offset: BigInt(message.offset), index, sample: s });
        index++;
      }
    });
    entries.sort(compareEntries);
    // A redelivered duplicate keeps the place of its first copy; `limit` keeps the newest samples.
    const seen = new Set<string>();
    const picked: LabelledSample[] = [];
    for (const { sample } of entries) {
      const key = sampleKey(sample);
      if (seen.has(key)) continue;
      seen.add(key);
      picked.push(sample);
    }
    return picked.length > limit ? picked.slice(picked.length - limit) : picked;
  }

  async stats(): Promise<SampleStoreStats> {
    const out: SampleStoreStats = { samples: 0, segments: 0, bytes: 0, skippedLines: 0 };
    const skippedBefore = this.skipped;
    const partitions = await this.scan(undefined, (_partition, message) => {
      out.bytes += message.value?.length ?? 0;
      for (const s of this.samplesIn(message)) {
        out.samples++;
        out.oldestTs = Math.min(out.oldestTs ?? s.ts, s.ts);
        out.newestTs = Math.max(out.newestTs ?? s.ts, s.ts);
        if (s.sampleIndex !== undefined) {
          out.minSampleIndex = Math.min(out.minSampleIndex ?? s.sampleIndex, s.sampleIndex);
          out.maxSampleIndex = Math.max(out.maxSampleIndex ?? s.sampleIndex, s.sampleIndex);
        }
      }
    });
    out.segments = partitions;
    out.skippedLines = this.skipped - skippedBefore;
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.producer
      .disconnect()
      .catch((err: unknown) =>
        this.logger.warn('kafka sample store: producer disconnect failed', { err: describeError(err) }),
      );
    await this.admin.disconnect().catch(() => undefined);
  }

  /** The valid samples of one message; counts what is skipped. */
  private samplesIn(message: KafkaMessage): LabelledSample[] {
    if (!message.value) {
      this.skipped++;
      return [];
    }
    let value: unknown;
    try {
      value = JSON.parse(message.value.toString('utf8'));
    } catch {
      this.skipped++;
      return [];
    }
    const out: LabelledSample[] = [];
    for (const candidate of samplesOf(value)) {
      const parsed = labelledSampleSchema.safeParse(candidate);
      if (parsed.success) out.push(parsed.data as LabelledSample);
      else this.skipped++;
    }
    return out;
  }

  /**
   * Reads every partition from the offset of `fromTs` (or the earliest
   * retained offset) to the end offset as of now; returns the partition count.
   */
  private async scan(
    fromTs: number | undefined,
    onMessage: (partition: number, message: KafkaMessage) => void,
  ): Promise<number> {
    if (this.closed) throw new SampleStoreError(`sample store ${this.topic} is closed`, { retriable: false });
    const started = performance.now();
    let ends: Map<number, bigint>;
    let starts: Map<number, bigint>;
    try {
      const offsets = await this.admin.fetchTopicOffsets(this.topic);
      ends = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
      const lows = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
      starts = lows;
      if (fromTs !== undefined) {
        const byTs = await this.admin.fetchTopicOffsetsByTimestamp(this.topic, fromTs);
        starts = new Map(
          byTs.map((o) => [o.partition, maxBig(BigInt(o.offset), lows.get(o.partition) ?? 0n)]),
        );
      }
    } catch (err) {
      const e = kafkaError(`kafka sample store: offsets of ${this.topic}`, err);
      throw new SampleStoreError(e.message, { retriable: e.retriable, cause: err });
    }
    const ranges: Record<number, [string, string]> = {};
    const next = new Map<number, bigint>();
    for (const [p, end] of ends) {
      const start = starts.get(p) ?? end;
      ranges[p] = [start.toString(), end.toString()];
      if (start < end) next.set(p, start);
    }
    const info: KafkaReadInfo = {
      ...(fromTs !== undefined ? { seekFromTs: fromTs } : {}),
      messages: 0,
      ranges,
      durationMs: 0,
    };
    if (next.size > 0)
      await this.readRanges(next, ends, (partition, message) => {
        info.messages++;
        onMessage(partition, message);
      });
    info.durationMs = Math.round(performance.now() - started);
    this.lastRead = info;
    this.logger.debug('kafka sample store: read', { topic: this.topic, ...info });
    return ends.size;
  }

  /** A throw-away consumer reads [next, end) of every partition in `next`. */
  private async readRanges(
    next: Map<number, bigint>,
    ends: Map<number, bigint>,
    onMessage: (partition: number, message: KafkaMessage) => void,
  ): Promise<void> {
    const starts = new Map(next);
    const groupId = ephemeralGroupId(this.clientId, 'sample-reader');
    const consumer = this.kafka.consumer({
      groupId,
      maxWaitTimeInMs: 250,
      allowAutoTopicCreation: false,
      retry: { retries: 3, restartOnFailure: async () => false },
    });
    let finish!: () => void;
    let fail!: (err: unknown) => void;
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    done.catch(() => undefined); // awaited below; a failure before that is not an unhandled rejection
    const remaining = new Set(next.keys());
    const markDone = (partition: number): void => {
      remaining.delete(partition);
      if (remaining.size === 0) finish();
    };
    const timer = setTimeout(
      () =>
        fail(
          new SampleStoreError(
            `kafka sample store: reading ${this.topic} took longer than ${this.readTimeoutMs} ms`,
            { retriable: true },
          ),
        ),
      this.readTimeoutMs,
    );
    const offCrash = consumer.on(consumer.events.CRASH, (e) => fail(e.payload.error));
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        eachBatch: async ({ batch, pause }) => {
          const p = batch.partition;
          const start = starts.get(p);
          const end = ends.get(p);
          if (start === undefined || end === undefined || !remaining.has(p)) {
            pause();
            return;
          }
          for (const message of batch.messages) {
            const offset = BigInt(message.offset);
            // A fetch may precede the seek: skip what lies before the start (and anything after the captured end).
            if (offset < start || offset >= end) continue;
            onMessage(p, message);
          }
          const last = BigInt(batch.lastOffset());
          if (last + 1n >= end) {
            pause();
            markDone(p);
          }
        },
      });
      // Joined with every partition assigned (a fresh group of one): jump to the start offsets.
      for (const [partition, offset] of starts)
        consumer.seek({ topic: this.topic, partition, offset: offset.toString() });
      await done;
    } catch (err) {
      if (err instanceof SampleStoreError) throw err;
      const e = kafkaError(`kafka sample store: reading ${this.topic} failed`, err);
      throw new SampleStoreError(e.message, { retriable: e.retriable, cause: err });
    } finally {
      clearTimeout(timer);
      offCrash();
      await consumer.disconnect().catch(() => undefined);
      // The group never committed anything; remove it rather than leave it to expire.
      await this.admin.deleteGroups([groupId]).catch(() => undefined);
    }
  }
}

function compareEntries(a: Entry, b: Entry): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  if (a.partition !== b.partition) return a.partition - b.partition;
  if (a.offset !== b.offset) return a.offset < b.offset ? -1 : 1;
  return a.index - b.index;
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`${name} must be a non-negative number, got ${value}`);
  return value;
}
