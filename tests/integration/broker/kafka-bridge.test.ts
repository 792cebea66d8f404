import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { KafkaBridge, type BridgeRecord } from '../../../broker/src/kafka-bridge.ts';
import { USERS, startTestBroker, type TestBroker } from './helpers.ts';

/**
 * The bridge's MQTT side against the real broker, with the Kafka send injected:
 * messages go to Kafka in batches, in each machine's order, none lost, and a
 * message is acknowledged to the broker only once the batch holding it is in
 * Kafka (issue 12: one Kafka round trip per message capped a bridge at ~650 msg/s).
 */

let broker: TestBroker | undefined;
let bridge: KafkaBridge | undefined;
const clients: MqttClient[] = [];

afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
  for (const c of clients.splice(0)) await c.endAsync(true);
  await broker?.close();
  broker = undefined;
});

async function client(user: { username: string; password: string }): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker?.broker.port}`, {
    username: user.username,
    password: user.password,
    clientId: `${user.username}-${clients.length}-${Date.now()}`,
    reconnectPeriod: 0,
  });
  clients.push(c);
  return c;
}

async function startBridge(
  send: (records: BridgeRecord[]) => Promise<void>,
  maxBatch = 200,
): Promise<KafkaBridge> {
  broker = await startTestBroker();
  bridge = new KafkaBridge({
    mqtt: {
      url: `mqtt://127.0.0.1:${broker.broker.port}`,
      clientId: `bridge-${Date.now()}`,
      username: USERS.bridge.username,
      password: USERS.bridge.password,
    },
    kafka: { brokers: ['127.0.0.1:1'] },
    maxBatch,
    maxPending: 500,
    maxRetryDelayMs: 20,
    send,
  });
  await bridge.start();
  return bridge;
}

async function until(cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Per machine and kind, the seqs in the order Kafka got them. */
function seqsByMachine(records: BridgeRecord[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of records) {
    const k = `${r.key}/${r.value.kind}`;
    const seq = (JSON.parse(r.value.payload) as { seq: number }).seq;
    out.set(k, [...(out.get(k) ?? []), seq]);
  }
  return out;
}

describe('kafka bridge batching', () => {
  it('forwards every message once, in batches, in each machine order', async () => {
    const sent: BridgeRecord[][] = [];
    const b = await startBridge(async (records) => {
      await new Promise((r) => setTimeout(r, 2));
      sent.push(records);
    });
    const m1 = await client(USERS.device);
    const m2 = await client(USERS.device2);
    const inspection = await client(USERS.inspection);
    const n = 1500;
    const acks: Promise<unknown>[] = [];
    for (let seq = 0; seq < n; seq++) {
      acks.push(m1.publishAsync('factory/m1/telemetry', JSON.stringify({ seq }), { qos: 1 }));
      acks.push(m2.publishAsync('factory/m2/telemetry', JSON.stringify({ seq }), { qos: 1 }));
      acks.push(inspection.publishAsync('factory/m1/label', JSON.stringify({ seq }), { qos: 1 }));
    }
    await Promise.all(acks);
    await until(() => b.stats().forwarded.telemetry + b.stats().forwarded.label === 3 * n);
    const all = sent.flat();
    expect(all).toHaveLength(3 * n);
    // Fewer sends than messages: batched.
    expect(sent.length).toBeLessThan(all.length / 5);
    const expected = Array.from({ length: n }, (_, i) => i);
    const bySeq = seqsByMachine(all);
    expect(bySeq.get('m1/telemetry')).toEqual(expected);
    expect(bySeq.get('m2/telemetry')).toEqual(expected);
    expect(bySeq.get('m1/label')).toEqual(expected);
    expect(b.stats().batches).toBe(sent.length);
  });

  it('acknowledges a message only after Kafka has it', async () => {
    let release: (() => void) | undefined;
    const sent: BridgeRecord[] = [];
    await startBridge(
      (records) =>
        new Promise<void>((resolve) => {
          release = () => {
            sent.push(...records);
            resolve();
          };
        }),
    );
    // The broker's side: the bridge's PUBACK of the message it delivered (a device's own PUBACK comes from the
    // broker, on the other hop).
    let acked = false;
    broker?.broker.aedes.on('ack', (_packet, c) => {
      if (c?.id.startsWith('bridge-')) acked = true;
    });
    const m1 = await client(USERS.device);
    await m1.publishAsync('factory/m1/telemetry', '{"seq":0}', { qos: 1 });
    await until(() => release !== undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(acked).toBe(false);
    release?.();
    await until(() => acked);
    expect(sent).toHaveLength(1);
  });

  it('retries a failed batch: nothing lost, order kept, acknowledged after the retry', async () => {
    let failures = 2;
    const sent: BridgeRecord[] = [];
    const b = await startBridge(async (records) => {
      if (failures-- > 0) throw new Error('kafka down');
      sent.push(...records);
    }, 50);
    const m1 = await client(USERS.device);
    const n = 300;
    await Promise.all(
      Array.from({ length: n }, (_, seq) =>
        m1.publishAsync('factory/m1/telemetry', JSON.stringify({ seq }), { qos: 1 }),
      ),
    );
    await until(() => b.stats().forwarded.telemetry === n);
    expect(b.stats().retries).toBe(2);
    expect(seqsByMachine(sent).get('m1/telemetry')).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});
