import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { z } from 'zod';
import type { DeadLetterRecord } from '../../common/deadletter.ts';
import { describeError } from '../../common/errors.ts';
import type { Logger } from '../../common/logging/logger.ts';
import '../../common/mqtt/packet-numbers.ts';
import {
  driftAlarmMessageSchema,
  referenceUpdatedMessageSchema,
  dataQualityMessageSchema,
  driftWindowMessageSchema,
  edgeStatusMessageSchema,
  STATUS_TOPICS,
} from '../../common/schema/status.ts';
import {
  MAX_PAYLOAD_BYTES,
  parseTopic,
  predictionSchema,
  TOPICS,
  validateMessage,
} from '../../common/schema/telemetry.ts';
import type { DashboardStore } from './state.ts';

/**
 * The dashboard's MQTT side: one client logged in as the `dashboard` service
 * account (may subscribe `factory/#` and `driftline/#`, publish nothing), which
 * validates every message against the shared schemas and folds the valid ones
 * into the store. Invalid messages are counted by source and reason and never
 * shown. The client reconnects forever; the store's `mqtt` connection state
 * tells the browser when it is away.
 */

/** The filters the dashboard subscribes to (exactly what its role allows). */
export const DASHBOARD_FILTERS = ['factory/#', 'driftline/#'] as const;

/** Status messages (drift windows with histograms) may be larger than telemetry. */
export const MAX_STATUS_BYTES = 256 * 1024;

/** A dead-letter record as published on `driftline/dead-letter` (see common/deadletter.ts). */
export const deadLetterRecordSchema = z.object({
  source: z.string().max(128),
  topic: z.string().max(1024),
  reason: z.string().min(1).max(128),
  detail: z.string().max(4096),
  rejectedAt: z.number().int().min(0),
  payload: z.string().max(8192),
  payloadBytes: z.number().int().min(0),
}) satisfies z.ZodType<DeadLetterRecord>;

type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Size check, JSON, schema. Never throws. */
export function parseJsonMessage<T>(
  schema: z.ZodType<T>,
  payload: Uint8Array | string,
  maxBytes: number,
): Parsed<T> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > maxBytes) return { ok: false, reason: 'payload_too_large' };
  let data: unknown;
  try {
    data = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
  } catch {
    return { ok: false, reason: 'not_json' };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    return { ok: false, reason: 'not_object' };
  const r = schema.safeParse(data);
  return r.success ? { ok: true, value: r.data } : { ok: false, reason: 'invalid_schema' };
}

const EDGE_STATUS_RE = /^driftline\/edge\/[^/]+\/status$/;

/**
 * Routes one MQTT message into the store (validated) or into the invalid
 * counters. Pure apart from the store; never throws.
 */
export function handleMqttMessage(store: DashboardStore, topic: string, payload: Uint8Array | string): void {
  try {
    if (topic.startsWith('factory/')) {
      const t = parseTopic(topic);
      if (t === undefined) return store.onInvalid('topic', 'invalid_topic');
      switch (t.kind) {
        case 'telemetry': {
          const r = validateMessage('telemetry', topic, payload);
          return r.ok ? store.onTelemetry(r.value) : store.onInvalid('telemetry', r.reason, t.machineId);
        }
        case 'label': {
          const r = validateMessage('label', topic, payload);
          return r.ok ? store.onLabel(r.value) : store.onInvalid('label', r.reason);
        }
        case 'prediction': {
          const r = parseJsonMessage(predictionSchema, payload, MAX_PAYLOAD_BYTES);
          if (!r.ok) return store.onInvalid('prediction', r.reason);
          if (r.value.machineId !== t.machineId) return store.onInvalid('prediction', 'machine_id_mismatch');
          return store.onPrediction(r.value);
        }
        default:
          return store.onIgnored();
      }
    }
    if (topic === TOPICS.deadLetter) {
      const r = parseJsonMessage(deadLetterRecordSchema, payload, 64 * 1024);
      return r.ok ? store.onDeadLetter(r.value) : store.onInvalid('dead-letter', r.reason);
    }
    if (topic === STATUS_TOPICS.driftWindow) {
      const r = parseJsonMessage(driftWindowMessageSchema, payload, MAX_STATUS_BYTES);
      return r.ok ? store.onDriftWindow(r.value) : store.onInvalid('drift-window', r.reason);
    }
    if (topic === STATUS_TOPICS.alarm) {
      const r = parseJsonMessage(driftAlarmMessageSchema, payload, MAX_STATUS_BYTES);
      return r.ok ? store.onAlarm(r.value) : store.onInvalid('drift-alarm', r.reason);
    }
    if (topic === STATUS_TOPICS.dataQuality) {
      const r = parseJsonMessage(dataQualityMessageSchema, payload, MAX_STATUS_BYTES);
      return r.ok ? store.onDataQuality(r.value) : store.onInvalid('data-quality', r.reason);
    }
    if (topic === STATUS_TOPICS.referenceUpdated) {
      const r = parseJsonMessage(referenceUpdatedMessageSchema, payload, MAX_STATUS_BYTES);
      return r.ok ? store.onReferenceUpdate(r.value) : store.onInvalid('reference-updated', r.reason);
    }
    if (EDGE_STATUS_RE.test(topic)) {
      const r = parseJsonMessage(edgeStatusMessageSchema, payload, MAX_STATUS_BYTES);
      if (!r.ok) return store.onInvalid('edge-status', r.reason);
      if (topic !== STATUS_TOPICS.edgeStatus(r.value.workerId))
        return store.onInvalid('edge-status', 'worker_id_mismatch');
      return store.onEdgeStatus(r.value);
    }
    store.onIgnored();
  } catch {
    // A schema library surprise must not take the dashboard down.
    store.onInvalid('mqtt', 'unreadable');
  }
}

export interface MqttSourceOptions {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** PEM CA for mqtts:// or wss://. */
  ca?: string | Buffer | undefined;
  store: DashboardStore;
  logger: Logger;
  /** Reconnect delay, ms. Default 1000. */
  reconnectPeriodMs?: number;
}

export interface MqttSource {
  /** Resolves once the first subscription was granted. */
  readonly subscribed: Promise<void>;
  readonly client: MqttClient;
  close(): Promise<void>;
}

/** Connects (in the background, retrying forever) and subscribes. */
export function startMqttSource(options: MqttSourceOptions): MqttSource {
  const { store, logger } = options;
  const opts: IClientOptions = {
    clientId: `driftline-dashboard-${randomBytes(6).toString('hex')}`,
    clean: true,
    reconnectPeriod: options.reconnectPeriodMs ?? 1000,
    connectTimeout: 10_000,
    protocolVersion: 4,
    resubscribe: false,
    queueQoSZero: false,
  };
  if (options.username !== undefined) opts.username = options.username;
  if (options.password !== undefined) opts.password = options.password;
  if (options.ca !== undefined) opts.ca = options.ca;
  const client = mqtt.connect(options.url, opts);
  let closing = false;
  let lastError = '';
  let resolveSubscribed: () => void = () => undefined;
  const subscribed = new Promise<void>((resolve) => (resolveSubscribed = resolve));

  client.on('connect', () => {
    client.subscribe([...DASHBOARD_FILTERS], { qos: 0 }, (err, granted) => {
      if (err) {
        store.setConnection('mqtt', 'error', `subscribe failed: ${err.message}`);
        logger.error('dashboard MQTT subscribe failed', { err: err.message });
        return;
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0) {
        store.setConnection(
          'mqtt',
          'error',
          `subscription refused for ${refused.join(', ')} (is the account's role "dashboard"?)`,
        );
        logger.error('dashboard MQTT subscription refused by the broker ACL', { refused });
        return;
      }
      lastError = '';
      store.setConnection('mqtt', 'connected', '');
      logger.info('dashboard subscribed to the broker', { url: options.url, filters: DASHBOARD_FILTERS });
      resolveSubscribed();
    });
  });
  client.on('reconnect', () => store.setConnection('mqtt', 'reconnecting', lastError));
  client.on('offline', () => {
    if (!closing) store.setConnection('mqtt', 'reconnecting', lastError || 'broker unreachable');
  });
  client.on('close', () => {
    if (!closing) store.setConnection('mqtt', 'reconnecting', lastError || 'connection closed');
  });
  client.on('error', (err) => {
    const text = describeError(err);
    if (text !== lastError) logger.warn('dashboard MQTT error; retrying', { err: text });
    lastError = text;
    store.setConnection('mqtt', 'error', text);
  });
  client.on('message', (topic, payload) => handleMqttMessage(store, topic, payload));

  return {
    subscribed,
    client,
    async close() {
      closing = true;
      await client.endAsync(true);
      store.setConnection('mqtt', 'closed', '');
    },
  };
}
