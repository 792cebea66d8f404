import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { Partitioners, type Admin, type Producer } from 'kafkajs';
import { busConfigSpec, kafkaConnectionFromConfig } from '../../common/bus/factory.ts';
import {
  createKafkaClient,
  ensureTopics,
  kafkaError,
  messageHeaders,
  type KafkaConnectionOptions,
} from '../../common/bus/kafka.ts';
import { int, optionalStr, str, type ConfigOf, type Field } from '../../common/config/env.ts';
import { TransportError, describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import type { MqttConnection } from '../../common/mqtt/connect.ts';
import { PubackGate, type HeldPuback } from '../../common/mqtt/puback-gate.ts';
import { TOPICS, parseTopic } from '../../common/schema/telemetry.ts';
import { sleep } from '../../common/util/sleep.ts';

/**
 * The MQTT → Kafka bridge of the scale-out path (edge-inference/README.md, "Scale-out").
 *
 * One MQTT client (role `bridge`: subscribes `factory/+/telemetry` and
 * `factory/+/label`, publishes nothing) with a persistent session (`clean:
 * false`, stable client id) forwards every telemetry and label message to the
 * Kafka topic `driftline.telemetry`, keyed by the machine id of its topic. All
 * messages of a machine — telemetry and labels — land in one partition in the
 * order the broker delivered them, so the edge workers, one consumer group,
 * see each machine on exactly one worker, in order, and join a machine's
 * labels on the worker that predicted its telemetry.
 *
 * Delivery: messages are forwarded in batches — every message that arrives
 * while a Kafka send is in flight goes into the next one (at most
 * `maxBatch`) — and a QoS 1 message is acknowledged (PUBACK) only after Kafka
 * acked the batch that holds it (idempotent producer, `acks=all`, one send at
 * a time, so a machine's messages keep their order). mqtt.js reads the next
 * message only after the previous one is handled and its PUBACK handed to the
 * socket, so the bridge holds the PUBACK back (`common/mqtt/puback-gate.ts`)
 * and lets mqtt.js read on; past `maxPending` unacknowledged messages it stops reading
 * until a batch is in Kafka. When Kafka is unreachable the bridge retries the
 * batch with backoff and reads no further than `maxPending`: later messages wait
 * in its broker session. A bridge that dies before the PUBACK gets the message
 * again on its next session (held PUBACKs of a dropped connection are
 * discarded, so redelivered messages are forwarded again): at least once (the
 * idempotent producer removes the producer's own retries, not a redelivery
 * after a crash; the edge tolerates both, see the README).
 *
 * Payloads are not validated (the edge does, and dead-letters): the value is
 * `{ kind, topic, payload, receivedAt }` with the original JSON text.
 *
 * Throughput: one Kafka round trip per batch, not per message (bench/pipeline.ts,
 * BENCHMARKS.md).
 */

/** Logical Kafka topic of the bridged telemetry and labels (the edge's `kafka-ingest.ts` reads it). */
export const BRIDGE_TOPIC = 'driftline.telemetry';

/** The Kafka record value the bridge writes. The edge's `kafka-ingest.ts` decodes the same shape. */
export interface BridgedMessage {
  kind: 'telemetry' | 'label';
  /** MQTT topic it came from (`factory/<machineId>/<kind>`). */
  topic: string;
  /** The MQTT payload as UTF-8 text (normally JSON), unvalidated. */
  payload: string;
  /** Epoch ms the bridge received it. */
  receivedAt: number;
}

/** The Kafka key (machine id) and value of one MQTT message; undefined for a topic that is not `factory/<id>/telemetry|label`. */
export function bridgeRecord(
  topic: string,
  payload: Buffer | string,
  now = Date.now(),
): { key: string; value: BridgedMessage } | undefined {
  const t = parseTopic(topic);
  if (!t || (t.kind !== 'telemetry' && t.kind !== 'label')) return undefined;
  return {
    key: t.machineId,
    value: {
      kind: t.kind,
      topic,
      payload: typeof payload === 'string' ? payload : payload.toString('utf8'),
      receivedAt: now,
    },
  };
}

/** Environment of `npm run bridge` (plus the KAFKA_* fields of the bus). */
export const bridgeConfigSpec = {
  mqttUrl: str('MQTT_URL', {
    description: 'Broker URL (mqtt://, mqtts://, ws://, wss://)',
    default: 'mqtt://127.0.0.1:1883',
    pattern: /^(mqtts?|wss?):\/\/\S+$/,
    allowed: 'a URL starting with mqtt://, mqtts://, ws:// or wss://',
  }),
  mqttUsername: str('BRIDGE_MQTT_USERNAME', {
    description: 'Broker user of the bridge service account (role bridge)',
    default: 'bridge',
  }),
  mqttPassword: optionalStr('BRIDGE_MQTT_PASSWORD', {
    description: 'Password of the bridge service account',
    secret: true,
  }),
  mqttCaFile: optionalStr('BRIDGE_MQTT_CA_FILE', {
    description: 'PEM CA certificate to trust for mqtts:// or wss://',
  }),
  clientId: str('BRIDGE_CLIENT_ID', {
    description:
      'Stable MQTT client id of the bridge (persistent session: messages queued while it is away are forwarded on reconnect); one bridge per id',
    default: 'driftline-kafka-bridge',
    pattern: /^[A-Za-z0-9_.:-]{1,64}$/,
    allowed: '1-64 letters, digits, _ . : -',
  }),
  httpHost: str('BRIDGE_HTTP_HOST', {
    description: 'Interface of /healthz, /readyz and Prometheus /metrics (0.0.0.0 for all)',
    default: '127.0.0.1',
  }),
  httpPort: int('BRIDGE_HTTP_PORT', {
    description: 'Port of /healthz, /readyz and Prometheus /metrics (0 picks a free port)',
    default: 9104,
    min: 0,
    max: 65535,
  }),
  topicPartitions: int('BRIDGE_TOPIC_PARTITIONS', {
    description:
      'Partitions of driftline.telemetry when the bridge creates it: the most edge workers that can share the load',
    default: 12,
    min: 1,
    max: 10_000,
  }),
  ...busConfigSpec,
} satisfies Record<string, Field<unknown>>;

export type BridgeConfig = ConfigOf<typeof bridgeConfigSpec>;

export interface KafkaBridgeOptions {
  /** The bridge's MQTT connection; a stable client id, since the bridge keeps a persistent session. */
  mqtt: Omit<MqttConnection, 'connectAttempts'>;
  /** Kafka connection; `topicPrefix` is prepended to the topic (isolated runs, shared clusters). */
  kafka: KafkaConnectionOptions & { topicPrefix?: string };
  /** Partitions of the topic when the bridge creates it. Default 12. */
  partitions?: number;
  /** retention.ms of the topic when created. Default 7 days. */
  retentionMs?: number;
  logger?: Logger;
  /** Longest pause between attempts of a failed Kafka send, ms. Default 5000. */
  maxRetryDelayMs?: number;
  /** Messages per Kafka send at most. Default 2000. */
  maxBatch?: number;
  /** Messages read but not yet acknowledged (in Kafka or waiting for it) at most. Default 5000. */
  maxPending?: number;
  /** Sends the records (tests inject a fake); default the idempotent kafkajs producer. */
  send?: (records: BridgeRecord[]) => Promise<void>;
}

/** One Kafka record of the bridge. */
export interface BridgeRecord {
  key: string;
  value: BridgedMessage;
}

export interface KafkaBridgeStats {
  /** Messages forwarded and acknowledged to the broker, per kind. */
  forwarded: { telemetry: number; label: number };
  /** Messages on unexpected topics (acknowledged and dropped). */
  ignored: number;
  /** Kafka sends that failed and were retried. */
  retries: number;
  /** Kafka sends (batches) that succeeded. */
  batches: number;
}

/** Options of {@link bridgeOptionsFromConfig} besides the config. */
export function bridgeOptionsFromConfig(
  config: BridgeConfig,
  extra: { logger?: Logger; ca?: Buffer } = {},
): KafkaBridgeOptions {
  return {
    mqtt: {
      url: config.mqttUrl,
      clientId: config.clientId,
      username: config.mqttUsername,
      ...(config.mqttPassword !== undefined ? { password: config.mqttPassword } : {}),
      ...(extra.ca !== undefined ? { ca: extra.ca } : {}),
    },
    kafka: kafkaConnectionFromConfig(config, {
      clientId: `driftline-bridge-${config.clientId}`,
      ...(extra.logger ? { logger: extra.logger } : {}),
    }),
    partitions: config.topicPartitions,
    retentionMs: config.kafkaRetentionMs,
    ...(extra.logger ? { logger: extra.logger } : {}),
  };
}

export class KafkaBridge {
  /** Physical Kafka topic written. */
  readonly topic: string;
  private readonly logger: Logger;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private client: MqttClient | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private readonly abort = new AbortController();
  /** Messages waiting for the next send, with the PUBACKs to release once Kafka has them. */
  private queue: Pending[] = [];
  /** The send loop while it runs. */
  private sending: Promise<void> | undefined;
  /** Messages read and not yet acknowledged to the broker. */
  private unacked = 0;
  /** Readers waiting for room below `maxPending`. */
  private readonly waitingForRoom: (() => void)[] = [];
  private readonly maxBatch: number;
  private readonly maxPending: number;
  private readonly counts: KafkaBridgeStats = {
    forwarded: { telemetry: 0, label: 0 },
    ignored: 0,
    retries: 0,
    batches: 0,
  };

  constructor(private readonly options: KafkaBridgeOptions) {
    this.logger = options.logger ?? silentLogger();
    this.topic = `${options.kafka.topicPrefix ?? ''}${BRIDGE_TOPIC}`;
    this.maxBatch = options.maxBatch ?? 2000;
    this.maxPending = Math.max(options.maxPending ?? 5000, this.maxBatch);
    const kafka = createKafkaClient({ ...options.kafka, logger: this.logger });
    this.admin = kafka.admin();
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  }

  stats(): KafkaBridgeStats {
    return {
      forwarded: { ...this.counts.forwarded },
      ignored: this.counts.ignored,
      retries: this.counts.retries,
      batches: this.counts.batches,
    };
  }

  /** True while the MQTT side is connected. */
  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects Kafka (creates the topic), then MQTT, subscribes and starts forwarding. */
  async start(): Promise<void> {
    if (this.client || this.closing) throw new Error('bridge already started or closed');
    if (!this.options.send) await this.connectKafka();
    const m = this.options.mqtt;
    const opts: IClientOptions = {
      clientId: m.clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: m.reconnectPeriodMs ?? 1000,
      connectTimeout: 10_000,
    };
    if (m.username !== undefined) opts.username = m.username;
    if (m.password !== undefined) opts.password = m.password;
    if (m.ca !== undefined) opts.ca = m.ca;
    const client = mqtt.connect(m.url, opts);
    // Installed before the first packet can arrive (messages queued in the session come right after CONNACK).
    // mqtt.js reads the next message once this callback is called; the PUBACK is held back by the gate
    // until the message is in Kafka.
    const gate = new PubackGate(client);
    client.handleMessage = (packet: IPublishPacket, callback: (err?: Error) => void) => {
      const held = this.closing ? undefined : gate.hold(packet);
      this.onMessage(packet, held).then(
        (ack) => {
          if (ack) gate.handBack(held, callback);
          else callback(new Error('bridge closing; message left for redelivery'));
        },
        (err: unknown) => callback(err instanceof Error ? err : new Error(describeError(err))),
      );
    };
    try {
      await new Promise<void>((resolve, reject) => {
        const onConnect = (): void => {
          client.off('error', onError);
          resolve();
        };
        const onError = (err: Error): void => {
          client.off('connect', onConnect);
          reject(err);
        };
        client.once('connect', onConnect);
        client.once('error', onError);
      });
    } catch (err) {
      client.end(true);
      await this.producer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      throw new TransportError(`kafka bridge: cannot connect to broker ${m.url}: ${describeError(err)}`, {
        cause: err,
      });
    }
    this.client = client;
    client.on('error', (err) => {
      if (!this.closing) this.logger.warn('bridge mqtt client error', { err: describeError(err) });
    });
    client.on('close', () => {
      // The broker redelivers whatever this connection did not acknowledge; the gate never acknowledges it on
      // the next one.
      if (!this.closing) this.logger.warn('bridge disconnected from broker; reconnecting', { url: m.url });
    });
    const grants = await client.subscribeAsync({
      [TOPICS.telemetryWildcard]: { qos: 1 },
      [TOPICS.labelWildcard]: { qos: 1 },
    });
    const refused = grants.filter((g) => g.qos === 128 || g.qos > 2);
    if (refused.length > 0) {
      await this.close();
      throw new TransportError(
        `broker refused the subscriptions ${refused.map((g) => g.topic).join(', ')} (check the bridge account's role)`,
        { retriable: false },
      );
    }
    this.logger.info('kafka bridge forwarding', {
      url: m.url,
      clientId: m.clientId,
      topic: this.topic,
      action: 'start',
      outcome: 'success',
    });
  }

  /** Connects the producer and the admin client and creates the topic. */
  private async connectKafka(): Promise<void> {
    try {
      await this.admin.connect();
      await this.producer.connect();
      await ensureTopics(
        this.admin,
        [
          {
            topic: this.topic,
            partitions: this.options.partitions ?? 12,
            retentionMs: this.options.retentionMs ?? 7 * 24 * 3600 * 1000,
          },
        ],
        this.logger,
      );
    } catch (err) {
      await this.producer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      throw kafkaError(`kafka bridge: cannot connect to ${this.options.kafka.brokers.join(',')}`, err);
    }
  }

  /**
   * Queues one message for the next Kafka send. Resolves true at once (mqtt.js
   * reads on; the PUBACK waits for Kafka) — or, past `maxPending`, once there
   * is room — and false when closing (not acknowledged: redelivered).
   */
  private async onMessage(packet: IPublishPacket, held: HeldPuback | undefined): Promise<boolean> {
    if (this.closing) return false;
    const record = bridgeRecord(packet.topic, Buffer.from(packet.payload));
    if (!record) {
      this.counts.ignored++;
      this.logger.warn('bridge ignored a message on an unexpected topic', { topic: packet.topic });
      held?.release();
      return true;
    }
    const p: Pending = { record, held };
    this.queue.push(p);
    this.unacked++;
    this.sending ??= this.sendLoop();
    while (this.unacked > this.maxPending && !this.closing)
      await new Promise<void>((resolve) => this.waitingForRoom.push(resolve));
    return true;
  }

  /** Sends the queue in batches, one send at a time (order), retrying a failed batch until it is in Kafka. */
  private async sendLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
        this.queue = this.queue.length <= this.maxBatch ? [] : this.queue.slice(this.maxBatch);
        if (!(await this.sendWithRetry(batch))) return;
        this.release(batch);
      }
    } finally {
      this.sending = undefined;
    }
  }

  private async sendWithRetry(batch: Pending[]): Promise<boolean> {
    const records = batch.map((p) => p.record);
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.options.send) await this.options.send(records);
        else
          await this.producer.send({
            topic: this.topic,
            acks: -1,
            messages: records.map((r) => ({
              key: r.key,
              value: JSON.stringify(r.value),
              headers: messageHeaders(),
            })),
          });
        this.counts.batches++;
        return true;
      } catch (err) {
        if (this.closing) return false;
        this.counts.retries++;
        this.logger.warn('kafka send failed; retrying (the broker keeps later messages in the session)', {
          messages: batch.length,
          attempt,
          delayMs: delay,
          err: describeError(err),
        });
        await sleep(delay, this.abort.signal);
        if (this.closing) return false;
        delay = Math.min(delay * 2, this.options.maxRetryDelayMs ?? 5000);
      }
    }
  }

  /** The batch is in Kafka: write the PUBACKs held for it (on the connection that read it) and make room. */
  private release(batch: Pending[]): void {
    for (const p of batch) {
      this.counts.forwarded[p.record.value.kind]++;
      p.held?.release();
    }
    this.unacked -= batch.length;
    while (this.unacked <= this.maxPending && this.waitingForRoom.length > 0) this.waitingForRoom.shift()?.();
  }

  /** Stops reading, lets the message in flight finish (acknowledged only if Kafka acked it), disconnects both sides. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.abort.abort();
      const client = this.client;
      for (const wake of this.waitingForRoom.splice(0)) wake();
      // The batch being sent finishes (its PUBACKs go out); what is still queued stays unacknowledged.
      if (this.sending) await this.sending;
      // Let the PUBACK of the last forwarded message go out before the socket closes.
      if (client) await client.endAsync(false).catch(() => undefined);
      await this.producer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      this.logger.info('kafka bridge stopped', { forwarded: this.counts.forwarded, action: 'stop' });
    })();
    return this.closed;
  }
}

/** A message between MQTT and Kafka. */
interface Pending {
  record: BridgeRecord;
  /** Its PUBACK, released once Kafka has the message (undefined for QoS 0). */
  held: HeldPuback | undefined;
}

/** Creates and starts a bridge. */
export async function startKafkaBridge(options: KafkaBridgeOptions): Promise<KafkaBridge> {
  const bridge = new KafkaBridge(options);
  await bridge.start();
  return bridge;
}
