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
 * Delivery: a QoS 1 message is acknowledged (PUBACK) only after Kafka acked
 * the record (idempotent producer, `acks=all`; see `handleMessage` in start()). When Kafka
 * is unreachable the bridge retries with backoff and does not read further
 * messages: they wait in its broker session. A bridge that dies before the
 * PUBACK gets the message again on its next session: at least once (the
 * idempotent producer removes the producer's own retries, not a redelivery
 * after a crash; the edge tolerates both, see the README).
 *
 * Payloads are not validated (the edge does, and dead-letters): the value is
 * `{ kind, topic, payload, receivedAt }` with the original JSON text.
 *
 * Throughput: mqtt.js hands over one QoS 1 message at a time and the PUBACK
 * must follow the Kafka ack, so one bridge forwards roughly 1 / (Kafka produce
 * round trip) messages per second (a few hundred to a few thousand on a LAN).
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
}

export interface KafkaBridgeStats {
  /** Messages forwarded and acknowledged to the broker, per kind. */
  forwarded: { telemetry: number; label: number };
  /** Messages on unexpected topics (acknowledged and dropped). */
  ignored: number;
  /** Kafka sends that failed and were retried. */
  retries: number;
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
  private inFlight: Promise<void> | undefined;
  private readonly counts: KafkaBridgeStats = {
    forwarded: { telemetry: 0, label: 0 },
    ignored: 0,
    retries: 0,
  };

  constructor(private readonly options: KafkaBridgeOptions) {
    this.logger = options.logger ?? silentLogger();
    this.topic = `${options.kafka.topicPrefix ?? ''}${BRIDGE_TOPIC}`;
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
    };
  }

  /** True while the MQTT side is connected. */
  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects Kafka (creates the topic), then MQTT, subscribes and starts forwarding. */
  async start(): Promise<void> {
    if (this.client || this.closing) throw new Error('bridge already started or closed');
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
    // mqtt.js sends the PUBACK of a QoS 1 message when this callback is called without an error, and reads the
    // next message only then. (`customHandleAcks` would do the same but mqtt.js honours it only for MQTT 5,
    // which aedes does not speak.)
    client.handleMessage = (packet: IPublishPacket, callback: (err?: Error) => void) => {
      this.onMessage(packet).then(
        (ack) => callback(ack ? undefined : new Error('bridge closing; message left for redelivery')),
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

  /** Forwards one message; resolves true when it may be acknowledged, false when closing left it for redelivery. */
  private onMessage(packet: IPublishPacket): Promise<boolean> {
    const p = this.forward(
      packet.topic,
      typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload),
      packet,
    );
    this.inFlight = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  private async forward(topic: string, payload: Buffer, packet: IPublishPacket): Promise<boolean> {
    if (this.closing) return false;
    const record = bridgeRecord(topic, payload);
    if (!record) {
      this.counts.ignored++;
      this.logger.warn('bridge ignored a message on an unexpected topic', { topic });
      return true;
    }
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.producer.send({
          topic: this.topic,
          acks: -1,
          messages: [{ key: record.key, value: JSON.stringify(record.value), headers: messageHeaders() }],
        });
        this.counts.forwarded[record.value.kind]++;
        return true;
      } catch (err) {
        if (this.closing) return false;
        this.counts.retries++;
        this.logger.warn('kafka send failed; retrying (the broker keeps later messages in the session)', {
          topic,
          messageId: packet.messageId,
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

  /** Stops reading, lets the message in flight finish (acknowledged only if Kafka acked it), disconnects both sides. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.abort.abort();
      const client = this.client;
      if (this.inFlight) await this.inFlight;
      // Let the PUBACK of the last forwarded message go out before the socket closes.
      if (client) await client.endAsync(false).catch(() => undefined);
      await this.producer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      this.logger.info('kafka bridge stopped', { forwarded: this.counts.forwarded, action: 'stop' });
    })();
    return this.closed;
  }
}

/** Creates and starts a bridge. */
export async function startKafkaBridge(options: KafkaBridgeOptions): Promise<KafkaBridge> {
  const bridge = new KafkaBridge(options);
  await bridge.start();
  return bridge;
}
