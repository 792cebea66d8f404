import type { IPublishPacket, MqttClient } from 'mqtt';
import type { DeadLetterRecord, DeadLetterSink } from '../../common/deadletter.ts';
import { TransportError, describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { connectMqtt, type MqttConnection } from '../../common/mqtt/connect.ts';
import { PubackGate, type HeldPuback } from '../../common/mqtt/puback-gate.ts';
import {
  TOPICS,
  parseTopic,
  validateMessage,
  type Label,
  type Prediction,
  type Telemetry,
} from '../../common/schema/telemetry.ts';
import { retry } from '../../common/util/retry.ts';
import type { EdgeMetrics } from './metrics.ts';
import { publishJson } from './mqtt-publish.ts';

/**
 * The worker's MQTT side: takes telemetry and labels in, validates every
 * message, sends rejects to the dead-letter topic, publishes predictions.
 *
 * Delivery, at least once: the session is persistent (`clean: false`, stable
 * client id) and both subscriptions are QoS 1, so the broker keeps every
 * message the worker has not acknowledged (PUBACK) — while it is away, and
 * after it died — and sends it again to the next connection with this client
 * id. A telemetry message is acknowledged only once it is safe: its prediction
 * was published and the broker acknowledged that publish, or it was
 * dead-lettered (that publish acknowledged too), or it was recognised as a
 * repeat of a reading already predicted. Until then its PUBACK is held back
 * (`common/mqtt/puback-gate.ts`, the hold the MQTT → Kafka bridge uses) and
 * mqtt.js reads on, so a worker killed mid-batch loses nothing: whatever was
 * queued, being predicted or being published is redelivered to the restarted
 * worker. A label is acknowledged once the worker has taken it (joined, or its
 * labelled sample queued in the outbox).
 *
 * Duplicates: a message predicted and published but not yet acknowledged when
 * the worker died is predicted again after the restart. The broker marks a
 * redelivery with the MQTT DUP flag; the prediction made from it carries
 * `redelivered: true` (counted in `driftline_edge_redelivered_total`) so
 * consumers can recognise the repeat by machineId + seq. Within one worker life
 * repeats are recognised and dropped by the de-dup window (`dedup.ts`).
 *
 * Backpressure: the telemetry handler may return a promise (the batcher's
 * queue is full) and the intake waits for it before handing the message back
 * to mqtt.js, which reads the next one only then: the socket stops, TCP pushes
 * back on the broker, the broker keeps the rest in the session. The
 * unacknowledged messages are those queued (at most the batcher's `maxQueue`),
 * the batch being predicted and the predictions waiting for the broker's
 * PUBACK; the intake never waits on the latter. They count towards the broker's per-session
 * limits — aedes: no in-flight window for QoS 1, a queue of 10,000 per session
 * (`BROKER_MAX_QUEUED_PER_CLIENT`); Mosquitto: `max_inflight_messages` (20 by
 * default, 100 in scripts/services/mosquitto.sh) — so keep `EDGE_BATCH_SIZE`
 * within the in-flight window (else each batch waits `EDGE_BATCH_MAX_WAIT_MS`)
 * and the queue well below the session queue. While stopping, new messages are
 * not acknowledged: the broker redelivers them to the next session.
 *
 * Two connections: predictions, dead letters and status go out on a second
 * client (`<clientId>-pub`, clean session, no subscriptions) unless
 * `publishConnection: 'shared'`. mqtt.js handles a connection's incoming
 * packets strictly in order, so on the intake's connection the broker's PUBACK
 * for a prediction waits behind every telemetry message the intake holds while
 * the queue is full — and the readings' own PUBACKs wait for those. On its own
 * connection the PUBACK is read at once. An unacknowledged publish is sent again
 * when the publisher reconnects (mqtt.js keeps it in its outgoing store).
 */

/** A taken message whose acknowledgement waits for {@link Delivery.release}; {@link HeldPuback} over MQTT. */
export interface Delivery {
  /** The broker marked it a redelivery (MQTT DUP): it may have been taken, and predicted, before. */
  readonly redelivered: boolean;
  /** The message is safe (predicted and published, dead-lettered, a recognised repeat): acknowledge it. */
  release(): void;
}

/** What the intake hands over. Returning a promise delays the next message (backpressure). */
export interface IngestHandlers {
  /**
   * One valid telemetry reading. With a `delivery` (MQTT QoS 1) the handler must release it once the reading
   * is safe; without one (QoS 0, the Kafka ingest) it was acknowledged by the transport's own rule.
   */
  telemetry(t: Telemetry, delivery?: Delivery): Promise<void> | undefined | void;
  label(l: Label): Promise<void> | undefined | void;
}

/** The transport the worker runs on; {@link MqttIngest} in production, a fake in unit tests. */
export interface EdgeIngest {
  /** True while connected to the broker. */
  readonly connected: boolean;
  /** Connects, subscribes and starts handing messages to `handlers`. */
  start(handlers: IngestHandlers): Promise<void>;
  /** Stops taking messages: later ones stay unacknowledged and are redelivered to the next session. */
  pause(): void;
  /** Publishes one prediction (QoS 1); resolves when the broker acknowledged it. */
  publishPrediction(p: Prediction): Promise<void>;
  /**
   * Publishes a batch's predictions (QoS 1, one message each, as {@link publishPrediction}) with one
   * promise for the batch, which resolves when the broker acknowledged or refused every one; each
   * failure goes to `onError`. Optional: without it the worker calls `publishPrediction` per prediction.
   */
  publishPredictions?(ps: readonly Prediction[], onError: (p: Prediction, err: Error) => void): Promise<void>;
  /** Publishes one dead-letter record (QoS 1). */
  publishDeadLetter(topic: string, record: DeadLetterRecord): Promise<void>;
  /**
   * Publishes one status message for observers (`common/schema/status.ts`), not retained. Best
   * effort: QoS 0 is dropped (rejected) while disconnected. Without it the worker publishes no status.
   */
  publishStatus?(topic: string, body: unknown, qos: 0 | 1): Promise<void>;
  /** Waits for outstanding publishes, then disconnects. */
  close(): Promise<void>;
  /** Messages taken and not yet acknowledged (held PUBACKs); undefined for a transport without them. */
  readonly unacknowledged?: number;
}

/** The connection (a stable client id per worker replica: a persistent session), and the worker's sinks. */
export interface MqttIngestOptions extends MqttConnection {
  /** Rejected messages go here (counted, logged, published on `driftline/dead-letter`). */
  deadLetters: DeadLetterSink;
  logger?: Logger;
  metrics?: EdgeMetrics;
  /** How long close() waits for unacknowledged publishes, ms. Default 5000. */
  closeTimeoutMs?: number;
  /**
   * Which connection carries the predictions, dead letters and status: `separate` (default) a second
   * connection, client id `<clientId>-pub`, clean session, no subscriptions, so the broker's PUBACKs for
   * them never queue behind telemetry on the intake's socket; `shared` the intake connection.
   */
  publishConnection?: PublishConnection;
}

/** See {@link MqttIngestOptions.publishConnection}. */
export type PublishConnection = 'separate' | 'shared';

/** The client id of the separate publishing connection of the intake `clientId`. */
export const publisherClientId = (clientId: string): string => `${clientId}-pub`;

/** MQTT 3.1.1 CONNACK codes 4 (bad user name or password) and 5 (not authorized) will not change on retry. */
function isAuthRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 4 || code === 5 || /not authori[sz]ed|bad user ?name or password/i.test(describeError(err));
}

export class MqttIngest implements EdgeIngest {
  private client: MqttClient | undefined;
  /** Where predictions, dead letters and status go: a second client, or `client` itself (`shared`). */
  private publisher: MqttClient | undefined;
  private publisherUp = false;
  private gate: PubackGate | undefined;
  private handlers: IngestHandlers | undefined;
  private stopping = false;
  private closed = false;
  private isConnected = false;
  private readonly outstanding = new Set<Promise<unknown>>();
  private readonly logger: Logger;
  private readonly abort = new AbortController();

  constructor(private readonly options: MqttIngestOptions) {
    this.logger = options.logger ?? silentLogger();
  }

  get connected(): boolean {
    return this.isConnected && (this.publisher === this.client || this.publisherUp);
  }

  get unacknowledged(): number {
    return this.gate?.size ?? 0;
  }

  /** The underlying client (tests use it to force a disconnect). */
  get mqttClient(): MqttClient | undefined {
    return this.client;
  }

  /** The client predictions are published on: a second one by default, else {@link mqttClient}. */
  get publishClient(): MqttClient | undefined {
    return this.publisher;
  }

  async start(handlers: IngestHandlers): Promise<void> {
    if (this.client) throw new Error('ingest already started');
    this.handlers = handlers;
    const { clientId } = this.options;
    const separate = (this.options.publishConnection ?? 'separate') === 'separate';
    // The publisher first: the intake's persistent session delivers right after its CONNACK, and the first
    // batch publishes its predictions at once.
    if (separate) {
      const publisher = await this.connect(publisherClientId(clientId), true);
      if (this.closed) {
        await publisher.endAsync(true);
        throw new TransportError('ingest closed while connecting', { retriable: false });
      }
      this.watch(publisher, 'publisher', (up) => (this.publisherUp = up));
      this.publisher = publisher;
      this.publisherUp = true;
    }
    // Before CONNACK: the session's queued messages (and redeliveries) come right after it.
    const client = await this.connect(clientId, false, (c) => this.intake(c));
    if (this.closed) {
      await client.endAsync(true);
      await this.publisher?.endAsync(true);
      throw new TransportError('ingest closed while connecting', { retriable: false });
    }
    this.client = client;
    this.publisher ??= client;
    this.isConnected = true;
    this.watch(client, 'intake', (up) => (this.isConnected = up));
    const { url } = this.options;

    const grants = await client.subscribeAsync({
      [TOPICS.telemetryWildcard]: { qos: 1 },
      [TOPICS.labelWildcard]: { qos: 1 },
    });
    const refused = grants.filter((g) => g.qos === 128 || g.qos > 2);
    if (refused.length > 0) {
      await client.endAsync(true);
      if (this.publisher !== client) await this.publisher?.endAsync(true);
      throw new TransportError(
        `broker refused the subscriptions ${refused.map((g) => g.topic).join(', ')} (check the edge account's role)`,
        { retriable: false },
      );
    }
    this.logger.info('connected to broker and subscribed', {
      url,
      clientId,
      topics: [TOPICS.telemetryWildcard, TOPICS.labelWildcard],
      publishConnection: separate ? publisherClientId(clientId) : 'shared',
      action: 'mqtt-connect',
      outcome: 'success',
    });
  }

  /** Connects one client, retrying until it connects, the broker refuses the account, or close(). */
  private connect(clientId: string, clean: boolean, onClient?: (c: MqttClient) => void): Promise<MqttClient> {
    const { url } = this.options;
    return retry(
      () =>
        connectMqtt({
          url,
          clientId,
          clean,
          reconnectPeriodMs: this.options.reconnectPeriodMs ?? 1000,
          ...(onClient ? { onClient } : {}),
          ...(this.options.username !== undefined ? { username: this.options.username } : {}),
          ...(this.options.password !== undefined ? { password: this.options.password } : {}),
          ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
        }).catch((err: unknown) => {
          if (isAuthRefusal(err))
            throw new TransportError(`broker ${url} refused client ${clientId}: ${describeError(err)}`, {
              retriable: false,
              cause: err,
            });
          throw new TransportError(`cannot connect to broker ${url}: ${describeError(err)}`, { cause: err });
        }),
      {
        attempts: this.options.connectAttempts ?? Number.MAX_SAFE_INTEGER,
        initialDelayMs: 250,
        maxDelayMs: 5000,
        signal: this.abort.signal,
        onRetry: (err, attempt, delayMs) =>
          this.logger.warn(`broker not reachable, retrying in ${delayMs} ms`, {
            attempt,
            url,
            clientId,
            err: describeError(err),
          }),
      },
    );
  }

  /** Logs a client's disconnects and reconnects (mqtt.js reconnects by itself) and reports whether it is up. */
  private watch(client: MqttClient, role: 'intake' | 'publisher', setUp: (up: boolean) => void): void {
    const { url } = this.options;
    const clientId = client.options.clientId;
    let up = true;
    client.on('connect', () => {
      up = true;
      setUp(true);
      this.logger.info('reconnected to broker', { url, clientId, role, action: 'mqtt-connect' });
    });
    client.on('close', () => {
      if (up && !this.closed) {
        this.options.metrics?.mqttDisconnects.inc({ role });
        this.logger.warn('disconnected from broker; reconnecting', {
          url,
          clientId,
          role,
          action: 'mqtt-disconnect',
        });
      }
      up = false;
      setUp(false);
    });
    client.on('offline', () => {
      up = false;
      setUp(false);
    });
    client.on('error', (err) => this.logger.warn('mqtt client error', { role, err: describeError(err) }));
  }

  /** Takes the client's messages through the PUBACK gate; called for each new client, before its CONNACK. */
  private intake(client: MqttClient): void {
    const gate = new PubackGate(client);
    this.gate = gate;
    client.handleMessage = (packet, callback) => this.onPacket(gate, packet, callback);
  }

  private onPacket(gate: PubackGate, packet: IPublishPacket, callback: (err?: Error) => void): void {
    if (this.stopping || !this.handlers) {
      // Not acknowledged: the broker redelivers it to the next session.
      callback(new Error('edge worker stopping; message left for redelivery'));
      return;
    }
    const held = gate.hold(packet);
    const { topic } = packet;
    const payload = packet.payload;
    const kind = parseTopic(topic)?.kind;
    if (kind !== 'telemetry' && kind !== 'label') {
      this.deadLetter(held, topic, payload, 'invalid_topic', `unexpected topic ${JSON.stringify(topic)}`);
      gate.handBack(held, callback);
      return;
    }
    const v = validateMessage(kind, topic, payload);
    if (!v.ok) {
      this.deadLetter(held, topic, payload, v.reason, v.detail);
      gate.handBack(held, callback);
      return;
    }
    this.options.metrics?.messagesIn.inc({ kind });
    let pending: Promise<void> | undefined | void;
    try {
      if (kind === 'telemetry') pending = this.handlers.telemetry(v.value as Telemetry, held);
      else {
        pending = this.handlers.label(v.value as Label);
        held?.release(); // taken: written when handed back
      }
    } catch (err) {
      this.logger.error('message handler failed', { topic, err: describeError(err) });
      held?.release();
      gate.handBack(held, callback);
      return;
    }
    if (pending) {
      pending.then(
        () => gate.handBack(held, callback),
        (err: unknown) => {
          this.logger.error('message handler failed', { topic, err: describeError(err) });
          gate.handBack(held, callback);
        },
      );
    } else gate.handBack(held, callback);
  }

  /** Rejects a message; acknowledged once the dead-letter record is published (or failed: logged and counted). */
  private deadLetter(
    held: HeldPuback | undefined,
    topic: string,
    payload: Uint8Array | string,
    reason: string,
    detail: string,
  ): void {
    // Never awaited here: awaiting a QoS 1 publish inside the intake would block the PUBACK it waits for.
    const done = this.track(this.options.deadLetters.reject(topic, payload, reason, detail));
    if (held) void done.finally(() => held.release()).catch(() => undefined);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.outstanding.add(p);
    void p.finally(() => this.outstanding.delete(p)).catch(() => undefined);
    return p;
  }

  private publish(topic: string, body: unknown, qos: 0 | 1 = 1): Promise<void> {
    return this.track(publishJson(this.publisher, topic, body, qos));
  }

  publishPrediction(p: Prediction): Promise<void> {
    return this.publish(TOPICS.prediction(p.machineId), p);
  }

  publishPredictions(ps: readonly Prediction[], onError: (p: Prediction, err: Error) => void): Promise<void> {
    const client = this.publisher;
    if (!client) {
      for (const p of ps) onError(p, new TransportError('not connected'));
      return Promise.resolve();
    }
    // One promise and one tracked entry per batch instead of several per prediction (GC on the hot path).
    return this.track(
      new Promise<void>((resolve) => {
        let left = ps.length;
        if (left === 0) resolve();
        for (const p of ps) {
          const topic = TOPICS.prediction(p.machineId);
          client.publish(topic, JSON.stringify(p), { qos: 1, retain: false }, (err) => {
            if (err)
              onError(p, new TransportError(`publish to ${topic} failed: ${err.message}`, { cause: err }));
            if (--left === 0) resolve();
          });
        }
      }),
    );
  }

  publishDeadLetter(topic: string, record: DeadLetterRecord): Promise<void> {
    return this.publish(topic, record);
  }

  publishStatus(topic: string, body: unknown, qos: 0 | 1): Promise<void> {
    // QoS 0 is not queued while offline (queueQoSZero: false): say so instead of relying on mqtt.js' callback.
    if (qos === 0 && !this.connected)
      return Promise.reject(new TransportError(`not connected; status on ${topic} dropped`));
    return this.publish(topic, body, qos);
  }

  pause(): void {
    this.stopping = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopping = true;
    this.abort.abort();
    const client = this.client;
    if (!client) return;
    const timeoutMs = this.options.closeTimeoutMs ?? 5000;
    if (this.outstanding.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        Promise.allSettled([...this.outstanding]).then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut)
        this.logger.warn('closing with unacknowledged publishes', {
          outstanding: this.outstanding.size,
          timeoutMs,
        });
    }
    const force = this.outstanding.size > 0;
    await Promise.all([
      client.endAsync(force),
      this.publisher && this.publisher !== client ? this.publisher.endAsync(force) : undefined,
    ]);
    this.isConnected = false;
    this.publisherUp = false;
  }
}
