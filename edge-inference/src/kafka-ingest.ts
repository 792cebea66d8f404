import type { Consumer, KafkaMessage } from 'kafkajs';
import type { MqttClient } from 'mqtt';
import { createKafkaClient, type KafkaConnectionOptions } from '../../common/bus/kafka.ts';
import type { DeadLetterRecord } from '../../common/deadletter.ts';
import { TransportError, describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { connectMqtt, type MqttConnection } from '../../common/mqtt/connect.ts';
import {
  TOPICS,
  validateMessage,
  type Label,
  type Prediction,
  type Telemetry,
} from '../../common/schema/telemetry.ts';
import { retry } from '../../common/util/retry.ts';
import { sleep } from '../../common/util/sleep.ts';
import type { EdgeIngest, IngestHandlers } from './ingest.ts';
import type { IngestHooks } from './ports.ts';
import { publishJson } from './mqtt-publish.ts';

/**
 * The edge worker's ingest for the scale-out path (README "Scale-out"): reads
 * the telemetry and labels that `broker/src/kafka-bridge.ts` forwards to the
 * Kafka topic `driftline.telemetry` (keyed by machine id), as one member of the
 * consumer group `driftline-edge` shared by every edge worker, and still
 * publishes predictions, dead letters and status over MQTT.
 *
 * - Ownership and order: a machine's messages sit in one partition, and a
 *   partition belongs to one member of the group, so each machine is served by
 *   one worker at a time, in the order the bridge received its messages; its
 *   labels reach the worker that predicted its telemetry.
 * - Commits: per fetched batch of a partition, the messages are handed to the
 *   worker in offset order, then the worker is drained (predictions made and
 *   their PUBACKs received, dead letters and labelled samples published), then
 *   the offset after the last handed-over message is committed. Nothing is
 *   committed that was not published: at least once.
 * - Rebalance: the batch being handled is finished, drained and committed
 *   before the member rejoins (a heartbeat that reports the rebalance stops the
 *   hand-over at the current message); when the new assignment lacks a
 *   partition this worker had, the worker forgets the machines seen on it
 *   (`forgetMachines`: their per-machine drift windows are dropped, so a machine
 *   that comes back starts a fresh window). A graceful move (a worker stopping,
 *   one joining) therefore hands over with no duplicate and no gap; a crash,
 *   or a member dropped for missing heartbeats, redelivers what was predicted
 *   since the last commit (duplicate predictions, at most one batch per partition).
 * - Stopping: `pause()` stops the hand-over at the current message; `close()`
 *   waits for the batch in flight (drained and committed), leaves the group (the
 *   others take over at once) and closes MQTT.
 */

/** Logical topic the bridge writes (`BRIDGE_TOPIC` of broker/src/kafka-bridge.ts). */
export const EDGE_KAFKA_TOPIC = 'driftline.telemetry';
/** Logical consumer group of all edge workers. */
export const EDGE_KAFKA_GROUP = 'driftline-edge';

/** A decoded bridge record (the value `broker/src/kafka-bridge.ts` writes). */
export interface BridgedRecord {
  kind: 'telemetry' | 'label';
  topic: string;
  payload: string;
  receivedAt: number;
}

/** Decodes a bridge record value; the reason when it is not one. */
export function decodeBridgedRecord(
  value: Buffer | null | undefined,
): { ok: true; record: BridgedRecord } | { ok: false; reason: string } {
  if (!value) return { ok: false, reason: 'no value' };
  let v: unknown;
  try {
    v = JSON.parse(value.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `not JSON: ${describeError(err)}` };
  }
  const r = v as Partial<BridgedRecord> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    (r.kind !== 'telemetry' && r.kind !== 'label') ||
    typeof r.topic !== 'string' ||
    typeof r.payload !== 'string'
  ) {
    return { ok: false, reason: 'not a bridge record {kind, topic, payload, receivedAt}' };
  }
  return {
    ok: true,
    record: {
      kind: r.kind,
      topic: r.topic,
      payload: r.payload,
      receivedAt: typeof r.receivedAt === 'number' ? r.receivedAt : 0,
    },
  };
}

export interface KafkaIngestOptions {
  /** Kafka connection; `topicPrefix` is prepended to the topic and the group. */
  kafka: KafkaConnectionOptions & { topicPrefix?: string };
  /** Logical consumer group. Default `driftline-edge`: one group for all edge workers. */
  group?: string;
  /**
   * Where a new group starts: the oldest retained message (default; nothing forwarded before the first worker
   * is lost) or only new ones.
   */
  fromBeginning?: boolean;
  /**
   * MQTT side: predictions, dead letters, status. The client id of this worker's publisher is
   * unique per worker; its session is clean (it subscribes to nothing).
   */
  mqtt: MqttConnection;
  logger?: Logger;
  /** Consumer session timeout, ms. Default 30,000. */
  sessionTimeoutMs?: number;
  /** Consumer heartbeat interval, ms (also sent while a batch is handled). Default 3000. */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits for data, ms. Default 500. */
  maxWaitTimeMs?: number;
  /** Bytes fetched per partition at most: bounds a batch, hence the work between commits. Default 256 KiB. */
  maxBytesPerPartition?: number;
  /** How long close() waits for unacknowledged MQTT publishes, ms. Default 5000. */
  closeTimeoutMs?: number;
}

/** Counters, for tests and the status. */
export interface KafkaIngestStats {
  /** Messages handed to the worker. */
  handedOver: number;
  /** Offset commits made. */
  commits: number;
  /** Rebalances this member went through (group joins after the first). */
  rebalances: number;
  /** Machines forgotten because their partition moved away. */
  machinesForgotten: number;
}

function isRebalancing(err: unknown): boolean {
  const e = err as { type?: unknown; name?: unknown } | null;
  return (
    e?.type === 'REBALANCE_IN_PROGRESS' ||
    e?.type === 'NOT_COORDINATOR_FOR_GROUP' ||
    e?.name === 'KafkaJSRebalanceInProgress'
  );
}

export class KafkaIngest implements EdgeIngest {
  /** Physical topic consumed. */
  readonly topic: string;
  /** Physical consumer group. */
  readonly groupId: string;
  private readonly logger: Logger;
  private readonly consumer: Consumer;
  private client: MqttClient | undefined;
  private handlers: (IngestHandlers & Partial<IngestHooks>) | undefined;
  private stopping = false;
  private closedPromise: Promise<void> | undefined;
  private joined = false;
  private generation = 0;
  private assigned = new Set<number>();
  /** Partition each machine was last seen on (the machines to forget when a partition goes). */
  private readonly machinePartition = new Map<string, number>();
  private inFlight: Promise<void> | undefined;
  private readonly outstanding = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private readonly counts: KafkaIngestStats = {
    handedOver: 0,
    commits: 0,
    rebalances: 0,
    machinesForgotten: 0,
  };
  private readonly assignmentWaiters: (() => void)[] = [];
  private readonly heartbeatIntervalMs: number;

  constructor(private readonly options: KafkaIngestOptions) {
    this.logger = options.logger ?? silentLogger();
    const prefix = options.kafka.topicPrefix ?? '';
    this.topic = `${prefix}${EDGE_KAFKA_TOPIC}`;
    this.groupId = `${prefix}${options.group ?? EDGE_KAFKA_GROUP}`;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 3000;
    const kafka = createKafkaClient({ ...options.kafka, logger: this.logger });
    this.consumer = kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: this.heartbeatIntervalMs,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? 500,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 256 * 1024,
      allowAutoTopicCreation: false,
    });
  }

  get connected(): boolean {
    return this.joined && (this.client?.connected ?? false);
  }

  /** Partitions assigned to this member now. */
  assignedPartitions(): number[] {
    return [...this.assigned].sort((a, b) => a - b);
  }

  /** Group generations this member joined (1 after the first join). */
  get joins(): number {
    return this.generation;
  }

  stats(): KafkaIngestStats {
    return { ...this.counts };
  }

  /** Resolves at the next group join (tests wait for a rebalance to settle). */
  nextJoin(): Promise<void> {
    return new Promise((resolve) => this.assignmentWaiters.push(resolve));
  }

  async start(handlers: IngestHandlers): Promise<void> {
    if (this.handlers) throw new Error('ingest already started');
    this.handlers = handlers as IngestHandlers & Partial<IngestHooks>;
    if (!this.handlers.drain)
      this.logger.warn(
        'kafka ingest: the worker has no drain hook; offsets are committed once ' +
          'messages are handed over (predictions in flight may be lost on a crash)',
      );
    const m = this.options.mqtt;
    const client = await retry(
      () =>
        connectMqtt({
          url: m.url,
          clientId: m.clientId,
          clean: true,
          reconnectPeriodMs: m.reconnectPeriodMs ?? 1000,
          ...(m.username !== undefined ? { username: m.username } : {}),
          ...(m.password !== undefined ? { password: m.password } : {}),
          ...(m.ca !== undefined ? { ca: m.ca } : {}),
        }).catch((err: unknown) => {
          throw new TransportError(`cannot connect to broker ${m.url}: ${describeError(err)}`, {
            cause: err,
          });
        }),
      {
        attempts: m.connectAttempts ?? Number.MAX_SAFE_INTEGER,
        initialDelayMs: 250,
        maxDelayMs: 5000,
        signal: this.abort.signal,
      },
    );
    this.client = client;
    client.on('error', (err) => this.logger.warn('mqtt client error', { err: describeError(err) }));
    if (this.stopping) {
      await client.endAsync(true);
      throw new TransportError('ingest closed while connecting', { retriable: false });
    }

    const { GROUP_JOIN, CRASH, STOP } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => this.onJoin(e.payload.memberAssignment[this.topic] ?? []));
    this.consumer.on(CRASH, (e) => {
      this.joined = false;
      this.logger.error('kafka consumer crashed', {
        err: describeError(e.payload.error),
        restart: e.payload.restart,
        groupId: this.groupId,
      });
    });
    this.consumer.on(STOP, () => (this.joined = false));
    try {
      await this.consumer.connect();
      await this.consumer.subscribe({ topic: this.topic, fromBeginning: this.options.fromBeginning ?? true });
      await this.consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: (payload) => this.track(this.onBatch(payload)),
      });
    } catch (err) {
      await this.consumer.disconnect().catch(() => undefined);
      await client.endAsync(true);
      throw new TransportError(
        `kafka ingest: cannot consume ${this.topic} as ${this.groupId}: ${describeError(err)}`,
        { cause: err },
      );
    }
    this.logger.info('consuming telemetry from kafka', {
      topic: this.topic,
      groupId: this.groupId,
      mqtt: m.url,
      action: 'kafka-ingest-start',
      outcome: 'success',
    });
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight = p.catch(() => undefined);
    return p;
  }

  private onJoin(partitions: readonly number[]): void {
    const now = new Set(partitions);
    const lost = [...this.assigned].filter((p) => !now.has(p));
    const gone: string[] = [];
    for (const [machine, p] of this.machinePartition) {
      if (!now.has(p)) {
        gone.push(machine);
        this.machinePartition.delete(machine);
      }
    }
    if (this.generation > 0) this.counts.rebalances++;
    this.generation++;
    this.assigned = now;
    this.joined = true;
    this.logger.info('joined the edge consumer group', {
      groupId: this.groupId,
      partitions: this.assignedPartitions(),
      lost,
      machinesMoved: gone.length,
      action: 'kafka-rebalance',
    });
    if (gone.length > 0) {
      this.counts.machinesForgotten += gone.length;
      try {
        this.handlers?.forgetMachines?.(gone);
      } catch (err) {
        this.logger.error('forgetting moved machines failed', { err: describeError(err) });
      }
    }
    for (const w of this.assignmentWaiters.splice(0)) w();
  }

  /**
   * Waits for `p` while keeping the group membership alive: heartbeats every
   * interval. A heartbeat that reports a rebalance is remembered (not thrown):
   * the caller finishes, commits, then rethrows it so the member rejoins.
   */
  private async withHeartbeat<T>(
    p: Promise<T>,
    state: { heartbeat: () => Promise<void>; rebalance?: unknown; lastBeat: number },
  ): Promise<T> {
    let settled = false;
    const result = p.finally(() => (settled = true));
    while (!settled) {
      await Promise.race([
        result.then(
          () => undefined,
          () => undefined,
        ),
        sleep(this.heartbeatIntervalMs),
      ]);
      if (!settled) await this.beat(state);
    }
    return result;
  }

  private async beat(state: {
    heartbeat: () => Promise<void>;
    rebalance?: unknown;
    lastBeat: number;
  }): Promise<void> {
    if (state.rebalance !== undefined || Date.now() - state.lastBeat < this.heartbeatIntervalMs) return;
    state.lastBeat = Date.now();
    try {
      await state.heartbeat();
    } catch (err) {
      if (isRebalancing(err)) state.rebalance = err;
      else this.logger.warn('kafka heartbeat failed', { err: describeError(err) });
    }
  }

  private async onBatch(payload: {
    batch: { topic: string; partition: number; messages: KafkaMessage[] };
    resolveOffset(offset: string): void;
    heartbeat(): Promise<void>;
    isRunning(): boolean;
    isStale(): boolean;
  }): Promise<void> {
    const { batch, resolveOffset, isRunning, isStale } = payload;
    const { partition } = batch;
    const state: { heartbeat: () => Promise<void>; rebalance?: unknown; lastBeat: number } = {
      heartbeat: payload.heartbeat,
      lastBeat: Date.now(),
    };
    let last: string | undefined;
    for (const message of batch.messages) {
      if (
        this.stopping ||
        state.rebalance !== undefined ||
        !isRunning() ||
        isStale() ||
        !this.assigned.has(partition)
      )
        break;
      const pending = this.handOver(partition, message);
      if (pending) await this.withHeartbeat(pending, state);
      resolveOffset(message.offset);
      last = message.offset;
      await this.beat(state);
    }
    if (last !== undefined) {
      if (this.handlers?.drain) await this.withHeartbeat(this.handlers.drain(), state);
      try {
        await this.consumer.commitOffsets([
          { topic: batch.topic, partition, offset: (BigInt(last) + 1n).toString() },
        ]);
        this.counts.commits++;
      } catch (err) {
        // The next owner starts from the previous commit: what was predicted since is predicted again (at least once).
        this.logger.warn('offset commit failed; messages since the last commit will be redelivered', {
          partition,
          offset: last,
          err: describeError(err),
        });
      }
    }
    if (state.rebalance !== undefined) throw state.rebalance;
  }

  /** Validates one record and hands it to the worker; the worker's backpressure promise, if any. */
  private handOver(partition: number, message: KafkaMessage): Promise<void> | undefined {
    const handlers = this.handlers;
    if (!handlers) return undefined;
    this.counts.handedOver++;
    const key = message.key?.toString('utf8');
    if (key) this.machinePartition.set(key, partition);
    const decoded = decodeBridgedRecord(message.value);
    if (!decoded.ok) {
      void this.reject(
        `${this.topic}[${partition}]@${message.offset}`,
        message.value ?? '',
        'invalid_record',
        `kafka record is ${decoded.reason}`,
      );
      return undefined;
    }
    const { kind, topic, payload } = decoded.record;
    const v = validateMessage(kind, topic, payload);
    if (!v.ok) {
      void this.reject(topic, payload, v.reason, v.detail);
      return undefined;
    }
    handlers.metrics?.messagesIn.inc({ kind });
    try {
      const p =
        kind === 'telemetry' ? handlers.telemetry(v.value as Telemetry) : handlers.label(v.value as Label);
      return p
        ? p.catch((err: unknown) => {
            this.logger.error('message handler failed', { topic, err: describeError(err) });
          })
        : undefined;
    } catch (err) {
      this.logger.error('message handler failed', { topic, err: describeError(err) });
      return undefined;
    }
  }

  private async reject(
    topic: string,
    payload: Uint8Array | string,
    reason: string,
    detail: string,
  ): Promise<void> {
    const sink = this.handlers?.deadLetters;
    if (sink) await this.trackOut(sink.reject(topic, payload, reason, detail));
    else this.logger.warn('rejected message (no dead-letter sink)', { topic, reason, detail });
  }

  private trackOut<T>(p: Promise<T>): Promise<T> {
    this.outstanding.add(p);
    void p.finally(() => this.outstanding.delete(p)).catch(() => undefined);
    return p;
  }

  private publish(topic: string, body: unknown, qos: 0 | 1 = 1): Promise<void> {
    return this.trackOut(publishJson(this.client, topic, body, qos));
  }

  publishPrediction(p: Prediction): Promise<void> {
    return this.publish(TOPICS.prediction(p.machineId), p);
  }

  publishDeadLetter(topic: string, record: DeadLetterRecord): Promise<void> {
    return this.publish(topic, record);
  }

  publishStatus(topic: string, body: unknown, qos: 0 | 1): Promise<void> {
    if (qos === 0 && !(this.client?.connected ?? false))
      return Promise.reject(new TransportError(`not connected; status on ${topic} dropped`));
    return this.publish(topic, body, qos);
  }

  pause(): void {
    this.stopping = true;
    try {
      this.consumer.pause([{ topic: this.topic }]);
    } catch {
      // not running: nothing to pause
    }
  }

  close(): Promise<void> {
    this.closedPromise ??= (async () => {
      this.pause();
      this.abort.abort();
      // The batch in flight stops at its current message, drains and commits while the consumer still runs.
      while (this.inFlight) {
        const p = this.inFlight;
        await p;
        if (this.inFlight === p) break;
      }
      await this.consumer
        .disconnect()
        .catch((err: unknown) =>
          this.logger.warn('kafka consumer disconnect failed', { err: describeError(err) }),
        );
      this.joined = false;
      const client = this.client;
      if (!client) return;
      if (this.outstanding.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...this.outstanding]),
          new Promise((r) => (timer = setTimeout(r, this.options.closeTimeoutMs ?? 5000))),
        ]);
        clearTimeout(timer);
      }
      await client.endAsync(this.outstanding.size > 0);
    })();
    return this.closedPromise;
  }
}
