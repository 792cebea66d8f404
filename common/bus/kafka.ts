import { randomUUID } from 'node:crypto';
import {
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type Consumer,
  type IHeaders,
  type KafkaMessage,
  type LogEntry,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import { ConfigError, TransportError, ValidationError, describeError, isRetriable } from '../errors.ts';
import { silentLogger, type Logger } from '../logging/logger.ts';
import { retry } from '../util/retry.ts';
import { sleep } from '../util/sleep.ts';
import { startSeeks, uncommittedEndOffsets, uncommittedPartitions } from './kafka-start-offsets.ts';
import {
  BUS_TOPICS,
  type BusHandler,
  type BusMessage,
  type EventBus,
  type SubscribeOptions,
  type Subscription,
} from './types.ts';

/**
 * The event bus on Apache Kafka (kafkajs), a drop-in for the in-process bus
 * with the same semantics across processes:
 *
 * - Topics: the four {@link BUS_TOPICS} are created at start-up ({@link KafkaBus.connect})
 *   with explicit partitions and `retention.ms` (idempotent: existing topics are
 *   kept; a partition count below the configured one is logged). Any other topic
 *   is created the same way on first use. `topicPrefix` is prepended to every
 *   topic and consumer-group name (isolated test runs, shared clusters); handlers
 *   and dead-letter records see the logical names.
 * - Publishing: an idempotent producer (`acks=all`, one request in flight), the
 *   value as JSON, the key for partitioning (ordering holds per key).
 * - Consuming: one kafkajs consumer per `subscribe`, in the consumer group the
 *   subscriber names; messages one at a time, in order per partition. The offset
 *   is committed only after the handler resolved (auto-commit off), so a process
 *   that dies mid-handler gets the message again (at least once: handlers are
 *   idempotent — the retrainer's request ledger, the sample store's de-dup).
 * - Failures: a message that is not JSON, or whose handler throws a
 *   non-retriable error, is published to `driftline.dead-letter` with the reason
 *   and where it came from (topic, partition, offset, group), then committed:
 *   the consumer moves on. A retriable error is retried with exponential
 *   backoff, `maxRedeliveries` times, then dead-lettered. When the dead-letter
 *   publish itself fails the consumer restarts from the last commit.
 * - `close()`: stops fetching, lets in-flight handlers finish (they may still
 *   publish) and commit, leaves the groups, then disconnects the producer. A
 *   retriable failure waiting for its next attempt is left uncommitted: the
 *   next member of the group gets it.
 * - kafkajs's own logging goes to the winston logger (warnings and errors as
 *   `warn`, the rest as `debug`).
 */

/** Connection settings shared by the Kafka bus and the Kafka sample store. */
export interface KafkaConnectionOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: readonly string[];
  /** Client id shown in broker logs and quotas. Default `driftline`. */
  clientId?: string;
  /** Logger kafkajs's messages are routed to. Default silent. */
  logger?: Logger;
  /** TLS to the brokers. Default false. */
  ssl?: boolean;
  /** SASL authentication (over TLS in production). */
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
  /** TCP connect timeout, ms. Default 3000. */
  connectionTimeoutMs?: number;
  /** Request timeout, ms. Default 30000. */
  requestTimeoutMs?: number;
  /** Retries of a failed request by kafkajs (connecting included). Default 5. */
  retries?: number;
  /** Lowest kafkajs level passed to the logger. Default `warn`. */
  kafkaLogLevel?: 'nothing' | 'error' | 'warn' | 'info' | 'debug';
}

/** Options of {@link KafkaBus}. */
export interface KafkaBusOptions extends KafkaConnectionOptions {
  /** Prepended to every topic and consumer-group name. Default ''. */
  topicPrefix?: string;
  /** Partitions of each topic the bus creates. Default 3. */
  partitions?: number;
  /** Per-topic partition counts (logical names), overriding `partitions`. */
  topicPartitions?: Readonly<Record<string, number>>;
  /** `retention.ms` of each topic the bus creates. Default 7 days. */
  retentionMs?: number;
  /** Per-topic retention (logical names), overriding `retentionMs`. */
  topicRetentionMs?: Readonly<Record<string, number>>;
  /** Attempts after the first when a handler throws a retriable error; then the message is dead-lettered. Default 5. */
  maxRedeliveries?: number;
  /** Delay before the first redelivery, ms; doubles each time (with jitter). Default 200. */
  redeliveryDelayMs?: number;
  /** Upper bound of one redelivery delay, ms. Default 10000. */
  maxRedeliveryDelayMs?: number;
  /** Consumer session timeout, ms (a member silent this long is dropped). Default 30000. */
  sessionTimeoutMs?: number;
  /** Consumer heartbeat interval, ms (also sent while a handler runs). Default 3000. */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits for data, ms (bounds how fast `close` and rebalances react). Default 1000. */
  maxWaitTimeMs?: number;
  /**
   * Bytes of the original value kept in a dead-letter record; larger values are referenced by
   * partition/offset only. Default 256 KiB.
   */
  deadLetterMaxBytes?: number;
}

/** What the bus writes on the dead-letter topic. */
export interface BusDeadLetter {
  /** Logical topic the message came from. */
  topic: string;
  partition: number;
  /** Offset of the message (it stays there until retention deletes it). */
  offset: string;
  /** Consumer group that gave up on it. */
  group: string;
  /** Partition key of the message ('' when it had none). */
  key: string;
  /** `malformed` (not JSON), `rejected` (non-retriable handler error) or `retries-exhausted`. */
  cause: 'malformed' | 'rejected' | 'retries-exhausted';
  /** Why, readable (the error as `Name: message`). */
  reason: string;
  /** Delivery attempts made. */
  attempts: number;
  /** Epoch ms the message was published. */
  publishedAt: number;
  /** Epoch ms it was dead-lettered. */
  failedAt: number;
  /** The decoded value (when it was JSON and at most `deadLetterMaxBytes`). */
  value?: unknown;
  /** The raw value (when it was not JSON): UTF-8 text, or base64 when not valid UTF-8. */
  raw?: { encoding: 'utf8' | 'base64'; data: string };
  /** Size of the original value in bytes. */
  valueBytes: number;
  /** True when the value was too large to copy: read it at partition/offset. */
  truncated?: boolean;
}

const DEFAULTS = {
  clientId: 'driftline',
  partitions: 3,
  retentionMs: 7 * 24 * 3600 * 1000,
  maxRedeliveries: 5,
  redeliveryDelayMs: 200,
  maxRedeliveryDelayMs: 10_000,
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3000,
  maxWaitTimeMs: 1000,
  deadLetterMaxBytes: 256 * 1024,
  connectionTimeoutMs: 3000,
  requestTimeoutMs: 30_000,
  retries: 5,
} as const;

const BROKER_RE = /^(\[[0-9A-Fa-f:.]+\]|[^\s,:[\]]+):(\d{1,5})$/;
const TOPIC_RE = /^[A-Za-z0-9._-]{1,249}$/;
const PREFIX_RE = /^[A-Za-z0-9._-]{0,100}$/;
const CONTENT_TYPE = 'application/json';

/** Validated settings of the bus. */
export type ResolvedKafkaBusOptions = Required<
  Omit<KafkaBusOptions, 'logger' | 'sasl' | 'topicPartitions' | 'topicRetentionMs'>
> &
  Pick<KafkaBusOptions, 'sasl'> & {
    topicPartitions: Record<string, number>;
    topicRetentionMs: Record<string, number>;
  };

function checkInt(
  problems: string[],
  name: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (!Number.isInteger(value) || value < min || value > max)
    problems.push(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
}

/** Validates the connection part; returns problems as readable strings. */
function connectionProblems(o: KafkaConnectionOptions): string[] {
  const problems: string[] = [];
  if (!Array.isArray(o.brokers) || o.brokers.length === 0)
    problems.push('brokers must list at least one host:port');
  for (const b of o.brokers ?? []) {
    const m = BROKER_RE.exec(b);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65_535) problems.push(`broker ${JSON.stringify(b)} is not host:port`);
  }
  if (o.clientId !== undefined && !/^[A-Za-z0-9._:-]{1,200}$/.test(o.clientId))
    problems.push(
      `clientId ${JSON.stringify(o.clientId)} may hold only letters, digits, '.', '_', ':' and '-'`,
    );
  if (o.sasl && (!o.sasl.username || !o.sasl.password))
    problems.push(`sasl ${o.sasl.mechanism} needs a username and a password`);
  if (o.connectionTimeoutMs !== undefined)
    checkInt(problems, 'connectionTimeoutMs', o.connectionTimeoutMs, 100);
  if (o.requestTimeoutMs !== undefined) checkInt(problems, 'requestTimeoutMs', o.requestTimeoutMs, 100);
  if (o.retries !== undefined) checkInt(problems, 'retries', o.retries, 0, 100);
  return problems;
}

/** Throws a {@link ConfigError} naming every invalid connection setting. */
export function validateKafkaConnection(o: KafkaConnectionOptions): void {
  const problems = connectionProblems(o);
  if (problems.length > 0) throw new ConfigError(`Invalid Kafka configuration: ${problems.join('; ')}`);
}

/** Fills defaults and validates; throws a {@link ConfigError} naming every invalid setting. */
export function resolveKafkaBusOptions(o: KafkaBusOptions): ResolvedKafkaBusOptions {
  const problems = connectionProblems(o);
  const r: ResolvedKafkaBusOptions = {
    brokers: [...(o.brokers ?? [])],
    clientId: o.clientId ?? DEFAULTS.clientId,
    ssl: o.ssl ?? false,
    sasl: o.sasl,
    connectionTimeoutMs: o.connectionTimeoutMs ?? DEFAULTS.connectionTimeoutMs,
    requestTimeoutMs: o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    retries: o.retries ?? DEFAULTS.retries,
    kafkaLogLevel: o.kafkaLogLevel ?? 'warn',
    topicPrefix: o.topicPrefix ?? '',
    partitions: o.partitions ?? DEFAULTS.partitions,
    topicPartitions: { ...(o.topicPartitions ?? {}) },
    retentionMs: o.retentionMs ?? DEFAULTS.retentionMs,
    topicRetentionMs: { ...(o.topicRetentionMs ?? {}) },
    maxRedeliveries: o.maxRedeliveries ?? DEFAULTS.maxRedeliveries,
    redeliveryDelayMs: o.redeliveryDelayMs ?? DEFAULTS.redeliveryDelayMs,
    maxRedeliveryDelayMs: o.maxRedeliveryDelayMs ?? DEFAULTS.maxRedeliveryDelayMs,
    sessionTimeoutMs: o.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs,
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
    maxWaitTimeMs: o.maxWaitTimeMs ?? DEFAULTS.maxWaitTimeMs,
    deadLetterMaxBytes: o.deadLetterMaxBytes ?? DEFAULTS.deadLetterMaxBytes,
  };
  if (!PREFIX_RE.test(r.topicPrefix))
    problems.push(
      `topicPrefix ${JSON.stringify(r.topicPrefix)} may hold only letters, digits, '.', '_' and '-' (at most 100)`,
    );
  checkInt(problems, 'partitions', r.partitions, 1, 10_000);
  for (const [t, n] of Object.entries(r.topicPartitions))
    checkInt(problems, `partitions of ${t}`, n, 1, 10_000);
  // -1 is Kafka's "keep forever"; below a minute is a typo, not a plan.
  const retentionOk = (ms: number): boolean => ms === -1 || (Number.isInteger(ms) && ms >= 60_000);
  if (!retentionOk(r.retentionMs))
    problems.push(`retentionMs must be -1 (forever) or an integer of at least 60000, got ${r.retentionMs}`);
  for (const [t, ms] of Object.entries(r.topicRetentionMs))
    if (!retentionOk(ms)) problems.push(`retentionMs of ${t} must be -1 or at least 60000, got ${ms}`);
  checkInt(problems, 'maxRedeliveries', r.maxRedeliveries, 0, 1000);
  checkInt(problems, 'redeliveryDelayMs', r.redeliveryDelayMs, 0);
  checkInt(problems, 'maxRedeliveryDelayMs', r.maxRedeliveryDelayMs, 0);
  checkInt(problems, 'sessionTimeoutMs', r.sessionTimeoutMs, 6000, 1_800_000);
  checkInt(problems, 'heartbeatIntervalMs', r.heartbeatIntervalMs, 100);
  if (Number.isInteger(r.heartbeatIntervalMs) && r.heartbeatIntervalMs * 3 > r.sessionTimeoutMs)
    problems.push(
      `heartbeatIntervalMs (${r.heartbeatIntervalMs}) must be at ` +
        `most a third of sessionTimeoutMs (${r.sessionTimeoutMs})`,
    );
  checkInt(problems, 'maxWaitTimeMs', r.maxWaitTimeMs, 0, 60_000);
  checkInt(problems, 'deadLetterMaxBytes', r.deadLetterMaxBytes, 0, 900 * 1024);
  if (problems.length > 0) throw new ConfigError(`Invalid Kafka bus configuration: ${problems.join('; ')}`);
  return r;
}

/**
 * A kafkajs log creator that writes into `logger`: kafkajs errors and warnings
 * as `warn` (kafkajs retries on its own; what finally fails reaches the caller,
 * which logs it as an error), everything else as `debug`. Per-request error
 * lines of the connection layer (`Response CreateTopics … already exists`,
 * `coordinator is loading`) and the idempotent producer's note about bounded
 * retries are routine and go to `debug`.
 */
export function kafkaLogCreator(logger: Logger): () => (entry: LogEntry) => void {
  return () => (entry: LogEntry) => {
    const {
      message,
      timestamp: _t,
      logger: _l,
      ...extra
    } = entry.log as { message: string; timestamp: string; logger?: string; [k: string]: unknown };
    // Routine: per-request errors kafkajs retries itself, and its note that bounded retries weaken
    // exactly-once (the bus promises at-least-once; a publish must fail rather than hang forever).
    const routine =
      (entry.namespace === 'Connection' && /^Response /.test(message)) ||
      /^Limiting retries for the idempotent producer/.test(message);
    const level =
      (entry.level === logLevel.ERROR || entry.level === logLevel.WARN) && !routine ? 'warn' : 'debug';
    logger.log(level, `kafkajs: ${entry.namespace ? `[${entry.namespace}] ` : ''}${message}`, {
      kafkajs: extra,
    });
  };
}

const KAFKA_LOG_LEVELS = {
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
} as const;

/** A kafkajs client for the given (validated) connection settings. */
export function createKafkaClient(o: KafkaConnectionOptions): Kafka {
  validateKafkaConnection(o);
  const logger = o.logger ?? silentLogger();
  return new Kafka({
    clientId: o.clientId ?? DEFAULTS.clientId,
    brokers: [...o.brokers],
    ssl: o.ssl ?? false,
    ...(o.sasl
      ? {
          sasl: {
            mechanism: o.sasl.mechanism,
            username: o.sasl.username,
            password: o.sasl.password,
          } as SASLOptions,
        }
      : {}),
    connectionTimeout: o.connectionTimeoutMs ?? DEFAULTS.connectionTimeoutMs,
    requestTimeout: o.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    retry: { retries: o.retries ?? DEFAULTS.retries, initialRetryTime: 300, maxRetryTime: 10_000 },
    logLevel: KAFKA_LOG_LEVELS[o.kafkaLogLevel ?? 'warn'],
    logCreator: kafkaLogCreator(logger),
  });
}

/** A topic to create: physical name, partitions, retention. */
export interface TopicSpec {
  topic: string;
  partitions: number;
  retentionMs: number;
}

/** True for a kafkajs error that says a retry may succeed. */
function kafkaRetriable(err: unknown): boolean {
  if (err instanceof TransportError) return err.retriable;
  const e = err as { retriable?: unknown; name?: unknown } | null;
  if (e && typeof e.retriable === 'boolean') return e.retriable;
  // Connection-level failures (refused, closed, timeouts) are worth another try.
  return (
    typeof e?.name === 'string' && /Connection|Timeout|NumberOfRetriesExceeded|NoBrokerAvailable/.test(e.name)
  );
}

/** Wraps a kafkajs failure as a {@link TransportError}, keeping its retriability. */
export function kafkaError(what: string, err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  return new TransportError(`${what}: ${describeError(err)}`, { retriable: kafkaRetriable(err), cause: err });
}

/**
 * The topics' metadata once every partition has a leader. `createTopics({ waitForLeaders })`
 * returns when the controller has elected them, but a loaded broker may still answer
 * "This server does not host this topic-partition" for a moment after; a produce in that
 * moment failed, so wait (up to `timeoutMs`) until the metadata agrees. The metadata request
 * itself may fail that way too (seen in CI on a freshly started broker under load): retried
 * within the same deadline.
 */
async function topicsWithLeaders(
  admin: Admin,
  topics: string[],
  timeoutMs = 15_000,
): Promise<Awaited<ReturnType<Admin['fetchTopicMetadata']>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let metadata: Awaited<ReturnType<Admin['fetchTopicMetadata']>>;
    try {
      metadata = await admin.fetchTopicMetadata({ topics });
    } catch (err) {
      // The metadata request itself may answer that error (code 3, retriable) on a loaded broker.
      if (!kafkaRetriable(err) || Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    const ready = metadata.topics.every(
      (t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0),
    );
    if (ready || Date.now() >= deadline) return metadata;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Creates the topics that do not exist yet (idempotent; safe when another
 * process creates them at the same time) and returns the partition count of
 * each. An existing topic with fewer partitions than asked is logged, not
 * changed: adding partitions would move keys and break per-key order.
 */
export async function ensureTopics(
  admin: Admin,
  specs: readonly TopicSpec[],
  logger: Logger,
): Promise<Map<string, number>> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length > 0) {
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({
          topic: s.topic,
          numPartitions: s.partitions,
          configEntries: [
            { name: 'retention.ms', value: String(s.retentionMs) },
            { name: 'cleanup.policy', value: 'delete' },
          ],
        })),
      });
    } catch (err) {
      // A retriable failure (kafkajs' waitForLeaders answered "This server does not host this topic-partition":
      // a loaded broker created the topic but its metadata does not show it yet — listTopics neither; seen in
      // CI) goes on to topicsWithLeaders below, which waits for the metadata and fails if the topic never
      // appears. Otherwise a concurrent creator won the race: fine, as long as the topics exist now.
      if (!kafkaRetriable(err)) {
        const now = new Set(await admin.listTopics());
        if (!missing.every((s) => now.has(s.topic))) throw err;
      }
    }
    logger.info('kafka topics created', {
      topics: missing.map((s) => `${s.topic} (${s.partitions} partitions, retention ${s.retentionMs} ms)`),
    });
  }
  const metadata = await topicsWithLeaders(
    admin,
    specs.map((s) => s.topic),
  );
  const counts = new Map<string, number>();
  for (const t of metadata.topics) counts.set(t.name, t.partitions.length);
  for (const s of specs) {
    const n = counts.get(s.topic) ?? 0;
    if (n < s.partitions)
      logger.warn(
        'kafka topic has fewer partitions than configured; left as is (adding partitions would reorder keys)',
        { topic: s.topic, partitions: n, configured: s.partitions },
      );
  }
  return counts;
}

/**
 * Encodes a value as the bus does: JSON text. Throws a non-retriable `ValidationError` for values JSON cannot
 * carry.
 */
export function encodeValue(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new ValidationError('unserialisable', `bus value cannot be encoded as JSON: ${describeError(err)}`);
  }
  if (text === undefined)
    throw new ValidationError('unserialisable', `bus value cannot be encoded as JSON (${typeof value})`);
  return text;
}

/** Decodes a message value; a missing or non-JSON value gives the reason instead. */
export function decodeValue(
  raw: Buffer | null | undefined,
): { ok: true; value: unknown } | { ok: false; reason: string } {
  if (raw === null || raw === undefined)
    return { ok: false, reason: 'malformed message: no value (tombstone)' };
  const text = raw.toString('utf8');
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, reason: `malformed message: not JSON (${describeError(err)})` };
  }
}

/** Headers of a published message. */
export function messageHeaders(): IHeaders {
  return { 'content-type': CONTENT_TYPE };
}

/** The value of a dead-letter record for `message` (see {@link BusDeadLetter}). */
export function deadLetterRecord(args: {
  topic: string;
  partition: number;
  message: Pick<KafkaMessage, 'key' | 'value' | 'offset' | 'timestamp'>;
  group: string;
  cause: BusDeadLetter['cause'];
  reason: string;
  attempts: number;
  maxBytes: number;
  now?: number;
}): BusDeadLetter {
  const { message } = args;
  const bytes = message.value ?? Buffer.alloc(0);
  const record: BusDeadLetter = {
    topic: args.topic,
    partition: args.partition,
    offset: message.offset,
    group: args.group,
    key: message.key?.toString('utf8') ?? '',
    cause: args.cause,
    reason: args.reason,
    attempts: args.attempts,
    publishedAt: Number(message.timestamp),
    failedAt: args.now ?? Date.now(),
    valueBytes: bytes.length,
  };
  if (bytes.length > args.maxBytes) {
    record.truncated = true;
    return record;
  }
  const decoded = decodeValue(message.value);
  if (decoded.ok) {
    record.value = decoded.value;
    return record;
  }
  if (message.value) {
    const text = bytes.toString('utf8');
    // Valid UTF-8 round-trips; anything else is kept byte for byte as base64.
    record.raw = Buffer.from(text, 'utf8').equals(bytes)
      ? { encoding: 'utf8', data: text }
      : { encoding: 'base64', data: bytes.toString('base64') };
  }
  return record;
}

/** Delay before redelivery `attempt` (1-based): exponential, capped, with jitter in [½, 1]. */
export function redeliveryDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** A live subscription of the Kafka bus. */
export interface KafkaSubscription extends Subscription {
  /** Physical topic consumed. */
  readonly topic: string;
  /** Physical consumer-group id. */
  readonly groupId: string;
  /** Partitions assigned to this member at the last rebalance. */
  assignedPartitions(): number[];
}

/** See the module comment. Call {@link connect} at start-up (publish and subscribe also connect on first use). */
export class KafkaBus implements EventBus {
  readonly kind: string;
  readonly options: ResolvedKafkaBusOptions;
  private readonly logger: Logger;
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private connecting: Promise<void> | undefined;
  private readonly topicsReady = new Map<string, Promise<void>>();
  private readonly subscriptions = new Set<ConsumerSubscription>();
  /** No new subscriptions (close began). */
  private stopping = false;
  /** No more publishing (subscriptions drained, producer going away). */
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: KafkaBusOptions) {
    this.options = resolveKafkaBusOptions(options);
    this.logger = options.logger ?? silentLogger();
    this.kafka = createKafkaClient({ ...this.options, logger: this.logger });
    this.admin = this.kafka.admin();
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    this.kind = `kafka ${this.options.brokers.join(',')}${this.options.topicPrefix ? ` (prefix ${this.options.topicPrefix})` : ''}`;
  }

  /** Physical topic name of a logical one. */
  topicName(logical: string): string {
    return `${this.options.topicPrefix}${logical}`;
  }

  /** Physical consumer-group id of a logical group. */
  groupName(logical: string): string {
    return `${this.options.topicPrefix}${logical}`;
  }

  /** The topic spec the bus creates for a logical topic. */
  topicSpec(logical: string): TopicSpec {
    return {
      topic: this.topicName(logical),
      partitions: this.options.topicPartitions[logical] ?? this.options.partitions,
      retentionMs: this.options.topicRetentionMs[logical] ?? this.options.retentionMs,
    };
  }

  /**
   * Connects the admin client and the producer and creates the bus topics; idempotent. A failure is a
   * `TransportError`.
   */
  connect(): Promise<void> {
    if (this.stopping || this.closed) return Promise.reject(new Error('bus is closed'));
    this.connecting ??= (async () => {
      try {
        await this.admin.connect();
        await this.producer.connect();
        const logical = Object.values(BUS_TOPICS);
        const counts = await ensureTopics(
          this.admin,
          logical.map((t) => this.topicSpec(t)),
          this.logger,
        );
        for (const t of logical) this.topicsReady.set(t, Promise.resolve());
        this.logger.info('kafka bus connected', {
          brokers: this.options.brokers,
          clientId: this.options.clientId,
          topics: Object.fromEntries(counts),
        });
      } catch (err) {
        this.connecting = undefined;
        await this.producer.disconnect().catch(() => undefined);
        await this.admin.disconnect().catch(() => undefined);
        throw kafkaError(`kafka bus: cannot connect to ${this.options.brokers.join(',')}`, err);
      }
    })();
    return this.connecting;
  }

  private ensureTopic(logical: string): Promise<void> {
    let ready = this.topicsReady.get(logical);
    if (!ready) {
      if (!TOPIC_RE.test(this.topicName(logical)))
        return Promise.reject(
          new ValidationError(
            'invalid_topic',
            `invalid Kafka topic name ${JSON.stringify(this.topicName(logical))}`,
          ),
        );
      ready = ensureTopics(this.admin, [this.topicSpec(logical)], this.logger).then(() => undefined);
      ready.catch(() => this.topicsReady.delete(logical));
      this.topicsReady.set(logical, ready);
    }
    return ready;
  }

  async publish(topic: string, key: string, value: unknown): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    const text = encodeValue(value);
    await this.connect();
    try {
      await this.ensureTopic(topic);
      await this.producer.send({
        topic: this.topicName(topic),
        acks: -1,
        messages: [{ key, value: text, headers: messageHeaders() }],
      });
    } catch (err) {
      if (err instanceof ValidationError) throw err;
      throw kafkaError(`kafka bus: publish to ${topic} failed`, err);
    }
  }

  async subscribe(topic: string, options: SubscribeOptions, handler: BusHandler): Promise<KafkaSubscription> {
    if (this.stopping || this.closed) throw new Error('bus is closed');
    await this.connect();
    await this.ensureTopic(topic).catch((err: unknown) => {
      throw err instanceof ValidationError ? err : kafkaError(`kafka bus: topic ${topic}`, err);
    });
    const sub = new ConsumerSubscription(this, this.kafka, this.logger, topic, options, handler);
    this.subscriptions.add(sub);
    try {
      await sub.start();
    } catch (err) {
      this.subscriptions.delete(sub);
      await sub.close().catch(() => undefined);
      throw kafkaError(`kafka bus: subscribe to ${topic} (group ${options.group}) failed`, err);
    }
    return sub;
  }

  /** @internal Used by subscriptions to dead-letter a message; retries retriable failures a few times. */
  async publishDeadLetter(record: BusDeadLetter): Promise<void> {
    const text = encodeValue(record);
    await this.ensureTopic(BUS_TOPICS.deadLetter);
    await retry(
      () =>
        this.producer
          .send({
            topic: this.topicName(BUS_TOPICS.deadLetter),
            acks: -1,
            messages: [{ key: record.key, value: text, headers: messageHeaders() }],
          })
          .then(() => undefined),
      {
        attempts: 4,
        initialDelayMs: 200,
        shouldRetry: kafkaRetriable,
      },
    ).catch((err: unknown) => {
      throw kafkaError(`kafka bus: dead-letter publish failed`, err);
    });
  }

  /** @internal Start offsets of a new `fromBeginning: false` group (kafka-start-offsets.ts). */
  pinStart(groupId: string, topic: string): Promise<Map<number, string>> {
    return uncommittedEndOffsets(this.admin, groupId, topic);
  }

  /** @internal */
  uncommitted(groupId: string, topic: string): Promise<Set<number>> {
    return uncommittedPartitions(this.admin, groupId, topic);
  }

  /** @internal */
  forget(sub: ConsumerSubscription): void {
    this.subscriptions.delete(sub);
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      // Handlers still running may publish (model events, dead letters): the producer stays up until they are done.
      await Promise.all(
        [...this.subscriptions].map((s) =>
          s
            .close()
            .catch((err: unknown) =>
              this.logger.warn('kafka bus: closing a consumer failed', { err: describeError(err) }),
            ),
        ),
      );
      this.closed = true;
      await this.producer
        .disconnect()
        .catch((err: unknown) =>
          this.logger.warn('kafka bus: producer disconnect failed', { err: describeError(err) }),
        );
      await this.admin.disconnect().catch(() => undefined);
    })();
    return this.closing;
  }
}

/** One kafkajs consumer in one group on one topic. */
class ConsumerSubscription implements KafkaSubscription {
  readonly topic: string;
  readonly groupId: string;
  private readonly consumer: Consumer;
  private readonly backoff = new AbortController();
  private closing = false;
  private closed: Promise<void> | undefined;
  private inFlight: Promise<void> | undefined;
  private assigned: number[] = [];
  private readonly removeListeners: (() => void)[] = [];

  constructor(
    private readonly bus: KafkaBus,
    kafka: Kafka,
    private readonly logger: Logger,
    private readonly logicalTopic: string,
    private readonly options: SubscribeOptions,
    private readonly handler: BusHandler,
  ) {
    const o = bus.options;
    this.topic = bus.topicName(logicalTopic);
    this.groupId = bus.groupName(options.group);
    this.consumer = kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      rebalanceTimeout: Math.max(60_000, o.sessionTimeoutMs),
      maxWaitTimeInMs: o.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      // kafkajs restarts a crashed consumer on retriable errors; never while we are closing.
      retry: { retries: 5, restartOnFailure: async () => !this.closing },
    });
  }

  assignedPartitions(): number[] {
    return [...this.assigned];
  }

  async start(): Promise<void> {
    const { GROUP_JOIN, CRASH } = this.consumer.events;
    this.removeListeners.push(
      this.consumer.on(GROUP_JOIN, (e) => {
        this.assigned = [...(e.payload.memberAssignment[this.topic] ?? [])].sort((a, b) => a - b);
        this.logger.debug('kafka bus: partitions assigned', {
          topic: this.logicalTopic,
          group: this.options.group,
          partitions: this.assigned,
        });
      }),
      this.consumer.on(CRASH, (e) => {
        if (this.closing) return;
        const log = e.payload.restart
          ? this.logger.warn.bind(this.logger)
          : this.logger.error.bind(this.logger);
        log(
          e.payload.restart
            ? 'kafka bus: consumer failed; restarting from the last commit'
            : 'kafka bus: consumer stopped after a non-retriable error',
          {
            topic: this.logicalTopic,
            group: this.options.group,
            err: describeError(e.payload.error),
          },
        );
      }),
    );
    // A new group that starts at the end is pinned to the end as of now (kafka-start-offsets.ts).
    const pinned =
      this.options.fromBeginning === false ? await this.bus.pinStart(this.groupId, this.topic) : undefined;
    await this.consumer.connect();
    await this.consumer.subscribe({
      topics: [this.topic],
      fromBeginning: this.options.fromBeginning ?? true,
    });
    // Resolves once the member joined the group and has its partitions.
    await this.consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachMessage: async ({ partition, message, heartbeat, pause }) => {
        if (this.closing) {
          // Not handled, not committed: the next member of the group gets it.
          pause();
          return;
        }
        const work = this.process(partition, message, heartbeat);
        this.inFlight = work;
        try {
          await work;
        } finally {
          this.inFlight = undefined;
        }
      },
    });
    if (pinned && pinned.size > 0) {
      const seeks = startSeeks(pinned, this.assigned, await this.bus.uncommitted(this.groupId, this.topic));
      for (const s of seeks) this.consumer.seek({ topic: this.topic, ...s });
      if (seeks.length > 0)
        this.logger.debug('kafka bus: new group pinned to the end offsets', {
          topic: this.logicalTopic,
          group: this.options.group,
          seeks,
        });
    }
  }

  private async commit(partition: number, message: KafkaMessage): Promise<void> {
    await this.consumer.commitOffsets([
      { topic: this.topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
    ]);
  }

  private async deadLetter(
    partition: number,
    message: KafkaMessage,
    cause: BusDeadLetter['cause'],
    reason: string,
    attempts: number,
  ): Promise<void> {
    const record = deadLetterRecord({
      topic: this.logicalTopic,
      partition,
      message,
      group: this.options.group,
      cause,
      reason,
      attempts,
      maxBytes: this.bus.options.deadLetterMaxBytes,
    });
    this.logger.error('bus message dead-lettered', {
      topic: this.logicalTopic,
      group: this.options.group,
      partition,
      offset: message.offset,
      cause,
      reason,
    });
    if (this.logicalTopic === BUS_TOPICS.deadLetter) return; // never loop a dead letter back onto its own topic
    try {
      await this.bus.publishDeadLetter(record);
    } catch (err) {
      if (isRetriable(err)) throw err; // the consumer restarts from the last commit and tries again
      this.logger.error('kafka bus: dead-letter record could not be written; message skipped', {
        topic: this.logicalTopic,
        partition,
        offset: message.offset,
        err: describeError(err),
      });
    }
  }

  private async process(
    partition: number,
    message: KafkaMessage,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    const o = this.bus.options;
    const decoded = decodeValue(message.value);
    if (!decoded.ok) {
      await this.deadLetter(partition, message, 'malformed', decoded.reason, 0);
      await this.commit(partition, message);
      return;
    }
    const busMessage: BusMessage = {
      topic: this.logicalTopic,
      key: message.key?.toString('utf8') ?? '',
      value: decoded.value,
      offset: message.offset,
      timestamp: Number(message.timestamp),
    };
    // Long handlers and redelivery waits keep the membership alive (kafkajs heartbeats only between messages
    // otherwise).
    const beat = setInterval(() => void heartbeat().catch(() => undefined), o.heartbeatIntervalMs);
    try {
      await this.deliver(partition, message, busMessage);
    } finally {
      clearInterval(beat);
    }
  }

  private async deliver(partition: number, message: KafkaMessage, busMessage: BusMessage): Promise<void> {
    const o = this.bus.options;
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      let failed = false;
      try {
        await this.handler(busMessage);
      } catch (err) {
        failed = true;
        failure = err;
      }
      if (!failed) {
        await this.commit(partition, message);
        return;
      }
      const retriable = isRetriable(failure);
      if (retriable && this.closing) {
        this.logger.warn('bus handler failed while closing; left uncommitted for redelivery', {
          topic: this.logicalTopic,
          group: this.options.group,
          partition,
          offset: message.offset,
          err: describeError(failure),
        });
        return;
      }
      if (retriable && attempt <= o.maxRedeliveries) {
        const delay = redeliveryDelay(attempt, o.redeliveryDelayMs, o.maxRedeliveryDelayMs);
        this.logger.warn('bus handler failed; redelivering', {
          topic: this.logicalTopic,
          group: this.options.group,
          partition,
          offset: message.offset,
          attempt,
          delayMs: delay,
          err: describeError(failure),
        });
        await sleep(delay, this.backoff.signal);
        if (this.closing) {
          this.logger.info('bus closing during a redelivery wait; message left uncommitted for redelivery', {
            topic: this.logicalTopic,
            group: this.options.group,
            partition,
            offset: message.offset,
          });
          return;
        }
        continue;
      }
      await this.deadLetter(
        partition,
        message,
        retriable ? 'retries-exhausted' : 'rejected',
        describeError(failure),
        attempt,
      );
      await this.commit(partition, message);
      return;
    }
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.backoff.abort();
      try {
        this.consumer.pause([{ topic: this.topic }]);
      } catch {
        // not running (start failed or crashed): nothing to pause
      }
      // The in-flight handler finishes and commits while the consumer still runs (kafkajs drops commits once stopping).
      while (this.inFlight) await this.inFlight.catch(() => undefined);
      try {
        await this.consumer.disconnect();
      } finally {
        for (const off of this.removeListeners.splice(0)) off();
        this.bus.forget(this);
      }
    })();
    return this.closed;
  }
}

/** A unique id for a short-lived consumer group (readers that never commit). */
export function ephemeralGroupId(clientId: string, purpose: string): string {
  return `${clientId}-${purpose}-${randomUUID()}`;
}
