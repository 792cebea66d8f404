import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** Options for {@link connectMqtt}. */
export interface MqttConnectOptions {
  /** Broker URL: `mqtt://`, `mqtts://`, `ws://` or `wss://`. */
  url: string;
  /** MQTT client id; must be unique per broker. */
  clientId: string;
  username?: string;
  password?: string;
  /** false keeps the session (and QoS 1 messages queued while away) across reconnects. Default true. */
  clean?: boolean;
  /** Delay between reconnect attempts, ms; 0 disables reconnecting. Default 1000. */
  reconnectPeriodMs?: number;
  /** Give up the first connection after this long, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** Trust this CA (PEM) for mqtts/wss. */
  ca?: string | Buffer;
  /** Accept self-signed server certificates (development only). */
  rejectUnauthorized?: boolean;
  /** Messages queued while offline, at most. Default unbounded by mqtt.js; set for devices. */
  queueQoSZero?: boolean;
}

/** Connects with MQTT 3.1.1 and waits for CONNACK; rejects with the broker's reason on refusal. */
export async function connectMqtt(options: MqttConnectOptions): Promise<MqttClient> {
  const opts: IClientOptions = {
    clientId: options.clientId,
    clean: options.clean ?? true,
    reconnectPeriod: options.reconnectPeriodMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    protocolVersion: 4,
    queueQoSZero: options.queueQoSZero ?? false,
  };
  if (options.username !== undefined) opts.username = options.username;
  if (options.password !== undefined) opts.password = options.password;
  if (options.ca !== undefined) opts.ca = options.ca;
  if (options.rejectUnauthorized !== undefined) opts.rejectUnauthorized = options.rejectUnauthorized;
  const client = mqtt.connect(options.url, opts);
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
