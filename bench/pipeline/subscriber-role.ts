import mqtt, { type MqttClient } from 'mqtt';
import { selfUsage, serve } from './ipc.ts';
import { percentiles } from './stats.ts';

/**
 * A subscriber in its own process, in one of two modes:
 *
 * - `noop`: the baseline's subscriber that does nothing — counts the messages
 *   it receives per kind (telemetry, label) and lets mqtt.js acknowledge them;
 * - `sink`: the prediction consumer — parses every prediction message (one
 *   prediction, or a batch `{ predictions: [...] }`), counts each (machineId,
 *   seq) once and its repeats, and records telemetry `ts` → receipt latency,
 *   split at the prediction's `predictedAt` into reading → prediction made (the
 *   publisher, broker, intake, batch wait and model) and prediction made →
 *   received (the edge's publish, the broker, the sink).
 *
 * `clean: false` sessions are removed at `stop` (a clean reconnect), so a
 * finished run leaves nothing queued in the broker for the next one.
 */

export interface SubscriberInit {
  url: string;
  username: string;
  password: string;
  clientId: string;
  clean: boolean;
  qos: 0 | 1;
  topics: string[];
  mode: 'noop' | 'sink';
}

const noop = (): void => undefined;

let init: SubscriberInit;
let client: MqttClient | undefined;
const received = { telemetry: 0, label: 0, prediction: 0, messages: 0, other: 0 };
let unique = 0;
let duplicates = 0;
let invalid = 0;
/** Per machine, one bit per seq seen. */
const seen = new Map<string, Uint8Array>();
/** Latencies of the current window: end to end, and its two parts (see the header). */
class Samples {
  values = new Float64Array(1 << 16);
  count = 0;
  add(ms: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = ms;
  }
  percentiles(): ReturnType<typeof percentiles> {
    return percentiles(this.values.subarray(0, this.count));
  }
}
const latency = { total: new Samples(), toPredicted: new Samples(), delivery: new Samples() };
let perSecond: number[] = [];
let windowStart = Date.now();

function connect(clean: boolean): Promise<MqttClient> {
  const c = mqtt.connect(init.url, {
    clientId: init.clientId,
    username: init.username,
    password: init.password,
    clean,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    log: noop,
  });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

function mark(machineId: string, seq: number): boolean {
  let bits = seen.get(machineId);
  const byte = seq >>> 3;
  if (!bits || byte >= bits.length) {
    const grown = new Uint8Array(Math.max(1024, (byte + 1) * 2));
    if (bits) grown.set(bits);
    bits = grown;
    seen.set(machineId, bits);
  }
  const bit = 1 << (seq & 7);
  if ((bits[byte] as number) & bit) return false;
  bits[byte] = (bits[byte] as number) | bit;
  return true;
}

function onPrediction(
  p: { machineId?: unknown; seq?: unknown; ts?: unknown; predictedAt?: unknown },
  now: number,
): void {
  if (typeof p.machineId !== 'string' || typeof p.seq !== 'number' || typeof p.ts !== 'number') {
    invalid++;
    return;
  }
  received.prediction++;
  if (mark(p.machineId, p.seq)) unique++;
  else duplicates++;
  latency.total.add(now - p.ts);
  if (typeof p.predictedAt === 'number') {
    latency.toPredicted.add(p.predictedAt - p.ts);
    latency.delivery.add(now - p.predictedAt);
  }
  const sec = Math.floor((now - windowStart) / 1000);
  perSecond[sec] = (perSecond[sec] ?? 0) + 1;
}

function onSink(payload: Buffer): void {
  const now = Date.now();
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch {
    invalid++;
    return;
  }
  const batch = (body as { predictions?: unknown }).predictions;
  if (Array.isArray(batch)) {
    for (const p of batch) onPrediction(p as Record<string, unknown>, now);
  } else onPrediction(body as Record<string, unknown>, now);
}

serve({
  async start(raw) {
    init = raw as SubscriberInit;
    client = await connect(init.clean);
    client.on('message', (topic, payload) => {
      received.messages++;
      if (init.mode === 'sink') return onSink(payload);
      if (topic.endsWith('/telemetry')) received.telemetry++;
      else if (topic.endsWith('/label')) received.label++;
      else received.other++;
    });
    const granted = await client.subscribeAsync(
      Object.fromEntries(init.topics.map((t) => [t, { qos: init.qos }])),
    );
    const refused = granted.filter((g) => g.qos === 128);
    if (refused.length > 0)
      throw new Error(`subscription refused: ${refused.map((g) => g.topic).join(', ')}`);
    return { subscribed: init.topics };
  },

  /** Starts a new measurement window (latencies and the per-second timeline). */
  reset() {
    for (const l of Object.values(latency)) l.count = 0;
    perSecond = [];
    windowStart = Date.now();
  },

  counts() {
    return { ...received, unique, duplicates, invalid };
  },

  /** Counts, the per-second timeline and the latency percentiles of the current window (from `skipSeconds` on). */
  window(raw) {
    const { skipSeconds = 0 } = (raw ?? {}) as { skipSeconds?: number };
    void skipSeconds;
    return {
      ...received,
      unique,
      duplicates,
      invalid,
      perSecond: perSecond.map((x) => x ?? 0),
      latencyMs: latency.total.percentiles(),
      latencySamples: latency.total.count,
      latencyPartsMs: {
        toPredicted: latency.toPredicted.percentiles(),
        delivery: latency.delivery.percentiles(),
      },
    };
  },

  usage: () => selfUsage(),

  async stop() {
    await client?.endAsync(false).catch(() => undefined);
    if (!init.clean) {
      // Drop the persistent session and whatever the broker still queues for it.
      const c = await connect(true).catch(() => undefined);
      await c?.endAsync(false).catch(() => undefined);
    }
  },
});
