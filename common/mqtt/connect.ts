import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { keepAliveWhileReceiving } from './keepalive.ts';
import './packet-numbers.ts';

/**
 * Where and as whom a service connects to the broker: the connection settings
 * of every Driftline MQTT client (edge worker, Kafka ingest, MQTT→Kafka bridge).
 */
export interface MqttConnection {
  /** Broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`. */
  url: string;
  /**
   * MQTT client id; must be unique per broker. A client with a persistent session keeps it
   * stable across restarts: the broker keeps its subscriptions and queued QoS 1 messages.
   */
  clientId: string;
  /** User of the service account. */
  username?: string;
  /** Its password. */
  password?: string;
  /** Trust this CA (PEM) for mqtts/wss. */
  ca?: string | Buffer;
  /** Delay between reconnect attempts, ms; 0 disables reconnecting. Default 1000. */
  reconnectPeriodMs?: number;
  /**
   * MQTT keepalive, s: a PINGREQ after this long without an acknowledgement, the connection closed when
   * nothing is handled within half of it after that (`keepalive.ts`). Default 60 (mqtt.js').
   */
  keepaliveS?: number;
  /**
   * Attempts of the first connection before the client's start fails; default: keep trying
   * until it is closed. (Read by the clients that retry their first connection: the edge ingests.)
   */
  connectAttempts?: number;
}

/** Options for {@link connectMqtt} (one attempt: the caller retries). */
export interface MqttConnectOptions extends Omit<MqttConnection, 'connectAttempts'> {
  /** false keeps the session (and QoS 1 messages queued while away) across reconnects. Default true. */
  clean?: boolean;
  /** Give up the first connection after this long, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** Accept self-signed server certificates (development only). */
  rejectUnauthorized?: boolean;
  /** Messages queued while offline, at most. Default unbounded by mqtt.js; set for devices. */
  queueQoSZero?: boolean;
  /**
   * Called with the client before it can receive a packet: install `handleMessage` (and a PUBACK gate) here,
   * since a persistent session's queued messages arrive right after CONNACK — before this function resolves —
   * and mqtt.js' default handler acknowledges them unread.
   */
  onClient?: (client: MqttClient) => void;
}

const noop = (): void => undefined;

/** Connects with MQTT 3.1.1 and waits for CONNACK; rejects with the broker's reason on refusal. */
export async function connectMqtt(options: MqttConnectOptions): Promise<MqttClient> {
  const opts: IClientOptions = {
    clientId: options.clientId,
    clean: options.clean ?? true,
    reconnectPeriod: options.reconnectPeriodMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    protocolVersion: 4,
    queueQoSZero: options.queueQoSZero ?? false,
    keepalive: options.keepaliveS ?? 60,
  };
  // mqtt.js logs every packet through `debug` (formatting arguments per call even when disabled is cheap, but
  // not free at thousands of messages a second); keep it only when DEBUG asks for mqttjs.
  if (!/mqttjs/.test(process.env.DEBUG ?? '')) opts.log = noop;
  if (options.username !== undefined) opts.username = options.username;
  if (options.password !== undefined) opts.password = options.password;
  if (options.ca !== undefined) opts.ca = options.ca;
  if (options.rejectUnauthorized !== undefined) opts.rejectUnauthorized = options.rejectUnauthorized;
  const client = mqtt.connect(options.url, opts);
  keepAliveWhileReceiving(client);
  options.onClient?.(client);
  await new Promise<void>((resolve, reject) => {
    const onConnect = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      client.end(true);
      reject(err);
    };
    const cleanup = (): void => {
      client.off('connect', onConnect);
      client.off('error', onError);
    };
    client.once('connect', onConnect);
    client.once('error', onError);
  });
  return client;
}
