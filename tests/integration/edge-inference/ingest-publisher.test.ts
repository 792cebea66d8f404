import type { MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../../broker/src/broker.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { DeadLetterSink } from '../../../common/deadletter.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import { connectMqtt } from '../../../common/mqtt/connect.ts';
import { TOPICS, type Prediction } from '../../../common/schema/telemetry.ts';
import { MqttIngest, publisherClientId, type PublishConnection } from '../../../edge-inference/src/ingest.ts';
import { makeTelemetry } from '../../../edge-inference/src/testing/fakes.ts';

/**
 * Where the edge's predictions go out (issue 12): mqtt.js handles a connection's incoming packets strictly in
 * order, and the intake holds a telemetry message while the worker's queue is full. On the intake's own
 * connection (`shared`) the broker's PUBACK for a prediction therefore waits behind that message; on the
 * second connection (`separate`, the default) it arrives at once.
 */
const EDGE = { username: 'edge', password: 'pw-edge' };
const DEVICE = { username: 'm1', password: 'pw-m1' };
const OBSERVER = { username: 'dash', password: 'pw-dash' };
let broker: RunningBroker;
let device: MqttClient;
const ingests: MqttIngest[] = [];

beforeAll(async () => {
  const credentials = CredentialStore.inMemory({ scryptCost: 10 });
  await credentials.add({ ...EDGE, role: 'edge' }, { persist: false });
  await credentials.add({ ...DEVICE, role: 'device', machineId: 'm1' }, { persist: false });
  await credentials.add({ ...OBSERVER, role: 'dashboard' }, { persist: false });
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
    clientId: 'pub-device',
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

const prediction = (seq: number): Prediction => ({
  machineId: 'm1',
  seq,
  ts: 1,
  predictedAt: 2,
  efficiency: 'High',
  probabilities: { Low: 0, Medium: 0, High: 1 },
  modelVersion: '1',
  latencyMs: 1,
});

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An intake whose telemetry handler stalls (a full queue) until `unstall()`. */
async function stalledIntake(clientId: string, publishConnection?: PublishConnection) {
  let unstall: () => void = () => undefined;
  const stalled = new Promise<void>((r) => (unstall = r));
  let taken = 0;
  const ingest = new MqttIngest({
    url: broker.mqttUrl,
    clientId,
    ...EDGE,
    reconnectPeriodMs: 100,
    ...(publishConnection ? { publishConnection } : {}),
    deadLetters: new DeadLetterSink({
      source: 'edge-inference',
      logger: silentLogger(),
      publish: async () => {},
    }),
  });
  ingests.push(ingest);
  await ingest.start({
    telemetry: (_t, delivery) => {
      taken++;
      delivery?.release();
      return stalled;
    },
    label: () => undefined,
  });
  return { ingest, unstall: () => unstall(), taken: () => taken };
}

/** Publishes one prediction; reports whether its PUBACK arrived within `ms`. */
async function ackedWithin(ingest: MqttIngest, seq: number, ms: number): Promise<boolean> {
  let acked = false;
  void ingest.publishPrediction(prediction(seq)).then(() => (acked = true));
  await new Promise((r) => setTimeout(r, ms));
  return acked;
}

describe('MqttIngest publishing connection', () => {
  it('separate (default): a second client, <clientId>-pub; a prediction is acknowledged while the intake stalls', async () => {
    const { ingest, unstall, taken } = await stalledIntake('pubconn-separate');
    expect(ingest.publishClient).toBeDefined();
    expect(ingest.publishClient).not.toBe(ingest.mqttClient);
    expect(ingest.publishClient?.options.clientId).toBe(publisherClientId('pubconn-separate'));
    await device.publishAsync(TOPICS.telemetry('m1'), JSON.stringify(makeTelemetry('m1', 1)), { qos: 1 });
    await until(() => taken() === 1, 'the stalled message');
    expect(await ackedWithin(ingest, 1, 500)).toBe(true);
    unstall();
  });

  it('shared: the same PUBACK waits behind the stalled message until the intake goes on', async () => {
    const { ingest, unstall, taken } = await stalledIntake('pubconn-shared', 'shared');
    expect(ingest.publishClient).toBe(ingest.mqttClient);
    await device.publishAsync(TOPICS.telemetry('m1'), JSON.stringify(makeTelemetry('m1', 2)), { qos: 1 });
    await until(() => taken() === 1, 'the stalled message');
    expect(await ackedWithin(ingest, 2, 500)).toBe(false);
    unstall();
    await until(() => ingest.unacknowledged === 0 && ingest.connected, 'the intake to go on');
    expect(await ackedWithin(ingest, 3, 2000)).toBe(true);
  });

  it('connected needs both connections; the publisher reconnects by itself and close() ends both', async () => {
    const { ingest, unstall } = await stalledIntake('pubconn-reconnect');
    unstall();
    const pub = ingest.publishClient;
    const intake = ingest.mqttClient;
    expect(ingest.connected).toBe(true);
    pub?.stream.destroy();
    await until(() => !ingest.connected, 'the publisher to drop');
    await until(() => ingest.connected, 'the publisher to reconnect');
    await ingest.publishPrediction(prediction(3));
    await ingest.close();
    expect(pub?.connected).toBe(false);
    expect(intake?.connected).toBe(false);
    expect(ingest.connected).toBe(false);
  });

  it('a publish made while the publisher is down is sent when it is back', async () => {
    const { ingest, unstall } = await stalledIntake('pubconn-offline');
    unstall();
    const seen: number[] = [];
    const watcher = await connectMqtt({
      url: broker.mqttUrl,
      clientId: 'pub-watcher',
      ...OBSERVER,
      reconnectPeriodMs: 0,
    });
    try {
      await watcher.subscribeAsync(TOPICS.prediction('m1'), { qos: 1 });
      watcher.on('message', (_t, payload) => seen.push((JSON.parse(payload.toString()) as Prediction).seq));
      ingest.publishClient?.stream.destroy();
      await until(() => !ingest.connected, 'the publisher to drop');
      await ingest.publishPrediction(prediction(4));
      await until(() => seen.includes(4), 'the prediction made while offline');
    } finally {
      await watcher.endAsync(true);
    }
  });
});
