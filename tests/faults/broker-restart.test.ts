import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import { TOPICS } from '../../common/schema/telemetry.ts';
import { MqttIngest, type EdgeIngest } from '../../edge-inference/src/ingest.ts';
import { fakeModel, makeTelemetry } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { service, settled, waitFor } from './helpers/services.ts';

/**
 * Fault: the MQTT broker (Eclipse Mosquitto, scripts/services/mosquitto.sh with MOSQUITTO_PERSISTENCE=true)
 * is stopped and started again while 10 devices publish telemetry at QoS 1 with persistent sessions.
 *
 * Promise: every telemetry message a device published is predicted exactly once (by machineId + seq):
 * nothing lost — devices re-send what was not acknowledged, the broker keeps the edge's queued messages in
 * its persistent session — and what arrives twice (a re-send, a redelivery) is recognised by the edge and
 * counted in driftline_edge_duplicates_total, never predicted twice.
 *
 * Mosquitto saves its sessions on SIGTERM (what `mosquitto.sh restart` sends). A SIGKILL loses what it
 * acknowledged since its last autosave: a property of the broker, not of Driftline, so not promised here.
 */
const PORT = process.env.MOSQUITTO_PORT ?? '1884';
const URL = `mqtt://127.0.0.1:${PORT}`;
const PREFIX = process.env.MOSQUITTO_DEV_PASSWORD ?? 'driftline-dev';
const RUN = `${Date.now().toString(36)}-${process.pid}`;
const DEVICES = 10;
const PER_DEVICE = 200;
const account = (u: string): { username: string; password: string } => ({
  username: u,
  password: `${PREFIX}-${u}`,
});

let wasRunning = false;
const clients: MqttClient[] = [];

beforeAll(async () => {
  wasRunning = (await service('mosquitto', 'status')).code === 0;
  await service('mosquitto', 'restart', { MOSQUITTO_PERSISTENCE: 'true' });
}, 120_000);

afterAll(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  // Leave the broker as the other suites expect it: running without persistence, or stopped.
  await service('mosquitto', wasRunning ? 'restart' : 'stop', { MOSQUITTO_PERSISTENCE: 'false' });
}, 120_000);

describe('fault: MQTT broker restarted under QoS 1 load', () => {
  it('predicts every telemetry message exactly once across a broker restart (10 devices, persistent sessions)', async () => {
    const predicted = new Map<string, number>();
    let inner: MqttIngest | undefined;
    // The worker's MQTT transport, recording each prediction it publishes.
    const ingest: EdgeIngest = {
      get connected() {
        return inner?.connected ?? false;
      },
      async start(handlers) {
        inner = new MqttIngest({
          url: URL,
          clientId: `edge-fault-${RUN}`,
          ...account('edge'),
          reconnectPeriodMs: 200,
          deadLetters: worker.deadLetters,
          metrics: worker.metrics,
        });
        await inner.start(handlers);
      },
      pause: () => inner?.pause(),
      publishPrediction(p) {
        const key = `${p.machineId}#${p.seq}`;
        predicted.set(key, (predicted.get(key) ?? 0) + 1);
        return inner ? inner.publishPrediction(p) : Promise.resolve();
      },
      publishDeadLetter: (topic, record) =>
        inner ? inner.publishDeadLetter(topic, record) : Promise.resolve(),
      close: () => inner?.close() ?? Promise.resolve(),
    };
    const worker: EdgeWorker = createEdgeWorker({
      bus: new InProcessBus(),
      ingest,
      logger: silentLogger(),
      initialModel: fakeModel('1'),
      http: false,
      statusIntervalMs: 0,
      drift: false,
      accuracy: false,
      batchSize: 32,
      batchMaxWaitMs: 5,
      ...(process.env.FAULT_NO_DEDUP ? { dedupWindow: 0 } : {}),
    });
    await worker.start();

    const ids = Array.from({ length: DEVICES }, (_, i) => `m-${String(i).padStart(3, '0')}`);
    const devices = await Promise.all(
      ids.map(async (id) => {
        const c = await connectMqtt({
          url: URL,
          clientId: `dev-${RUN}-${id}`,
          ...account(id),
          clean: false,
          reconnectPeriodMs: 200,
        });
        clients.push(c);
        return c;
      }),
    );

    let publishedWhileDown = 0;
    const acks: Promise<unknown>[] = [];
    let restart: Promise<unknown> | undefined;
    for (let seq = 0; seq < PER_DEVICE; seq++) {
      if (seq === PER_DEVICE / 4)
        restart = service('mosquitto', 'restart', { MOSQUITTO_PERSISTENCE: 'true' });
      for (const [i, id] of ids.entries()) {
        const c = devices[i] as MqttClient;
        if (!c.connected) publishedWhileDown++;
        acks.push(c.publishAsync(TOPICS.telemetry(id), JSON.stringify(makeTelemetry(id, seq)), { qos: 1 }));
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await restart;
    // Every publish acknowledged by the broker (re-sent after the restart when it was not).
    await Promise.all(acks);
    const total = DEVICES * PER_DEVICE;
    await waitFor(() => predicted.size === total, 60_000, `${total} distinct predictions`);
    await settled(() => [...predicted.values()].reduce((a, b) => a + b, 0), 1000, 10_000);
    await worker.stop();

    const missing = ids.flatMap((id) =>
      Array.from({ length: PER_DEVICE }, (_, seq) => `${id}#${seq}`).filter((k) => !predicted.has(k)),
    );
    const predictedTwice = [...predicted.entries()].filter(([, n]) => n > 1).map(([k]) => k);
    const metrics = await worker.metrics.registry.metrics();
    const duplicates = Number(
      /driftline_edge_duplicates_total\{kind="telemetry"\} (\d+)/.exec(metrics)?.[1] ?? 0,
    );
    console.log(
      JSON.stringify({
        fault: 'broker-restart',
        published: total,
        publishedWhileDown,
        predicted: predicted.size,
        lost: missing.length,
        predictedTwice: predictedTwice.length,
        duplicatesRecognised: duplicates,
      }),
    );
    // The fault really happened: devices saw the broker go away.
    expect(publishedWhileDown).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    expect(predictedTwice).toEqual([]);
  });
});
