import type { MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../../broker/src/broker.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { DeadLetterSink } from '../../../common/deadletter.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import { connectMqtt } from '../../../common/mqtt/connect.ts';
import { TOPICS, type Telemetry } from '../../../common/schema/telemetry.ts';
import { MqttIngest, type Delivery } from '../../../edge-inference/src/ingest.ts';
import { makeTelemetry } from '../../../edge-inference/src/testing/fakes.ts';

/**
 * The MQTT intake against the project's broker: a telemetry message stays unacknowledged until the worker
 * releases it, whatever the worker does meanwhile; what a dead connection held comes back, marked as a
 * redelivery (DUP), to the next connection with the same client id. (Messages sent in the same segment as
 * CONNACK: tests/unit/common/mqtt/connect.test.ts.)
 */
const EDGE = { username: 'edge', password: 'pw-edge' };
const DEVICE = { username: 'm1', password: 'pw-m1' };
let broker: RunningBroker;
let device: MqttClient;
const ingests: MqttIngest[] = [];

beforeAll(async () => {
  const credentials = CredentialStore.inMemory({ scryptCost: 10 });
  await credentials.add({ ...EDGE, role: 'edge' }, { persist: false });
  await credentials.add({ ...DEVICE, role: 'device', machineId: 'm1' }, { persist: false });
  broker = await startBroker({
    port: 0,
    wsPort: null,
    credentials,
    logger: silentLogger(),
    registry: new Registry(),
    httpPort: null,
  });
  device = await connectMqtt({
    url: broker.mqttUrl,
    clientId: 'ack-device',
    ...DEVICE,
    reconnectPeriodMs: 0,
  });
}, 30_000);

afterEach(async () => {
  for (const i of ingests.splice(0)) await i.close();
});

afterAll(async () => {
  await device.endAsync(true);
  await broker.close();
});

interface Taken {
  t: Telemetry;
  delivery: Delivery | undefined;
}

async function intake(clientId: string, taken: Taken[]): Promise<MqttIngest> {
  const ingest = new MqttIngest({
    url: broker.mqttUrl,
    clientId,
    ...EDGE,
    reconnectPeriodMs: 100,
    deadLetters: new DeadLetterSink({
      source: 'edge-inference',
      logger: silentLogger(),
      publish: async () => {},
    }),
  });
  ingests.push(ingest);
  await ingest.start({
    telemetry: (t, delivery) => void taken.push({ t, delivery }),
    label: () => undefined,
  });
  return ingest;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const publish = (seq: number): Promise<unknown> =>
  device.publishAsync(TOPICS.telemetry('m1'), JSON.stringify(makeTelemetry('m1', seq)), { qos: 1 });

describe('MQTT intake acknowledgements', () => {
  it('redelivers, marked, what a dropped connection had not released; never what it had', async () => {
    const taken: Taken[] = [];
    const ingest = await intake('ack-edge-reconnect', taken);
    for (let seq = 0; seq < 4; seq++) await publish(seq);
    await until(() => taken.length === 4, '4 messages');
    expect(taken.map((x) => x.delivery?.redelivered)).toEqual([false, false, false, false]);
    expect(ingest.unacknowledged).toBe(4);
    taken[0]?.delivery?.release();
    taken[2]?.delivery?.release();
    await until(() => ingest.unacknowledged === 2, 'two released');
    await new Promise((r) => setTimeout(r, 100)); // the PUBACKs reach the broker
    const old = taken.splice(0);
    ingest.mqttClient?.stream.destroy(); // the connection drops; mqtt.js reconnects
    await until(() => taken.length === 2, 'the redeliveries');
    expect(taken.map((x) => [x.t.seq, x.delivery?.redelivered])).toEqual([
      [1, true],
      [3, true],
    ]);
    // Released now, the old connection's deliveries write nothing on the new one.
    for (const x of old) x.delivery?.release();
    expect(ingest.unacknowledged).toBe(2);
    for (const x of taken) x.delivery?.release();
    expect(ingest.unacknowledged).toBe(0);
  });

  it('a worker that dies holding messages: the next one with its client id gets them, marked', async () => {
    const taken: Taken[] = [];
    const first = await intake('ack-edge-restart', taken);
    for (let seq = 10; seq < 15; seq++) await publish(seq);
    await until(() => taken.length === 5, '5 messages');
    taken[0]?.delivery?.release();
    await new Promise((r) => setTimeout(r, 100));
    first.mqttClient?.end(true); // dies: no PUBACK for the rest
    const again: Taken[] = [];
    await intake('ack-edge-restart', again);
    await until(() => again.length === 4, 'the 4 unreleased messages');
    expect(again.map((x) => [x.t.seq, x.delivery?.redelivered])).toEqual([
      [11, true],
      [12, true],
      [13, true],
      [14, true],
    ]);
    for (const x of again) x.delivery?.release();
    await new Promise((r) => setTimeout(r, 100));
    // Released: a third life gets nothing.
    const third: Taken[] = [];
    for (const i of ingests.splice(0)) await i.close();
    await intake('ack-edge-restart', third);
    await new Promise((r) => setTimeout(r, 300));
    expect(third).toEqual([]);
  });
});
