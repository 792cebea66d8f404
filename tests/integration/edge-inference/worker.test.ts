import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type RunningBroker } from '../../../broker/src/broker.ts';
import { CredentialStore } from '../../../broker/src/credentials.ts';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import type { DeadLetterRecord } from '../../../common/deadletter.ts';
import { silentLogger } from '../../../common/logging/logger.ts';
import { loadArtifact, saveArtifact } from '../../../common/model/artifact.ts';
import { trainClassifier } from '../../../common/model/classifier.ts';
import { loadTf, type Tf } from '../../../common/model/tf.ts';
import { connectMqtt } from '../../../common/mqtt/connect.ts';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import {
  STATUS_TOPICS,
  driftWindowMessageSchema,
  edgeStatusMessageSchema,
  type DriftWindowMessage,
  type EdgeStatusMessage,
} from '../../../common/schema/status.ts';
import { TOPICS, predictionSchema, type Prediction } from '../../../common/schema/telemetry.ts';
import { makeTelemetry, ruleLabel } from '../../../edge-inference/src/testing/fakes.ts';
import {
  createEdgeWorker,
  type EdgeWorker,
  type EdgeWorkerOptions,
} from '../../../edge-inference/src/worker.ts';

/**
 * The edge worker end to end: the secured broker in-process on a loopback
 * port, a tiny real model trained in beforeAll and served from a directory
 * registry, the worker on mqtt.js with a persistent session.
 */

const MODEL = 'driftline-efficiency';
const EDGE = { username: 'edge', password: 'pw-edge' };
const ADMIN = { username: 'admin', password: 'pw-admin' };

let tmp: string;
let tf: Tf;
let broker: RunningBroker;
let registry: DirectoryRegistry;
let admin: MqttClient;
const predictions: Prediction[] = [];
const deadLetters: DeadLetterRecord[] = [];
const statusMessages: { topic: string; body: unknown }[] = [];
const workers: { worker: EdgeWorker; bus: InProcessBus }[] = [];

async function waitFor(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const of = (prefix: string): Prediction[] => predictions.filter((p) => p.machineId.startsWith(prefix));

async function startWorker(
  clientId: string,
  extra: Partial<EdgeWorkerOptions> = {},
): Promise<{ worker: EdgeWorker; bus: InProcessBus }> {
  const bus = new InProcessBus();
  const worker = createEdgeWorker({
    bus,
    logger: silentLogger(),
    mqtt: { url: broker.mqttUrl, clientId, ...EDGE, reconnectPeriodMs: 100 },
    modelRegistry: registry,
    loader: (dir) => loadArtifact(dir, tf),
    modelName: MODEL,
    http: { port: 0 },
    championPollMs: 0,
    batchSize: 32,
    batchMaxWaitMs: 5,
    ...extra,
  });
  await worker.start();
  const entry = { worker, bus };
  workers.push(entry);
  return entry;
}

async function stopWorker(entry: { worker: EdgeWorker; bus: InProcessBus }): Promise<void> {
  await entry.worker.stop();
  await entry.bus.close();
  workers.splice(workers.indexOf(entry), 1);
}

function publish(topic: string, payload: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    admin.publish(
      topic,
      typeof payload === 'string' ? payload : JSON.stringify(payload),
      { qos: 1 },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
}

function modelEvent(
  type: 'model-promoted' | 'model-rolled-back',
  version: string,
  from: string,
): Record<string, unknown> {
  const base = {
    type,
    modelName: MODEL,
    version,
    correlationId: `test-${type}-${version}`,
    requestId: null,
    reason: 'integration test',
    at: Date.now(),
  };
  return type === 'model-promoted'
    ? { ...base, previousVersion: from, metrics: { samples: 100, accuracy: 0.9, macroF1: 0.9 } }
    : { ...base, fromVersion: from };
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-edge-it-'));
  ({ tf } = await loadTf());
  const data = Array.from({ length: 1200 }, (_, i) => {
    const row = makeTelemetry('train', i);
    return { row, label: ruleLabel(row) };
  });
  const trained = await trainClassifier(tf, data, { epochs: 2, referenceSize: 500, seed: 3 });
  const artifact = path.join(tmp, 'artifact');
  await saveArtifact(artifact, trained, { version: 'bootstrap', source: { test: 'edge-integration' } });
  trained.model.dispose();
  registry = new DirectoryRegistry({ root: path.join(tmp, 'registry') });
  const info = { correlationId: 'edge-it', metrics: { accuracy: trained.validation.accuracy } };
  // Versions 1..4 of the same network: enough to tell swaps apart by the version each prediction reports.
  for (let i = 0; i < 4; i++) await registry.registerVersion(MODEL, artifact, info);
  await registry.setChampion(MODEL, '1', { by: 'test', reason: 'bootstrap' });

  const credentials = CredentialStore.inMemory({ scryptCost: 10 });
  await credentials.add({ ...EDGE, role: 'edge' }, { persist: false });
  await credentials.add({ ...ADMIN, role: 'admin' }, { persist: false });
  broker = await startBroker({
    port: 0,
    wsPort: null,
    credentials,
    logger: silentLogger(),
    registry: new Registry(),
    httpPort: null,
  });
  admin = await connectMqtt({
    url: broker.mqttUrl,
    clientId: 'edge-it-admin',
    ...ADMIN,
    reconnectPeriodMs: 0,
  });
  admin.on('message', (topic, payload) => {
    const value = JSON.parse(payload.toString('utf8')) as unknown;
    if (topic === TOPICS.deadLetter) deadLetters.push(value as DeadLetterRecord);
    else if (topic.startsWith('driftline/')) statusMessages.push({ topic, body: value });
    else predictions.push(value as Prediction);
  });
  await admin.subscribeAsync({
    [TOPICS.predictionWildcard]: { qos: 1 },
    [TOPICS.deadLetter]: { qos: 1 },
    [STATUS_TOPICS.driftWindow]: { qos: 0 },
    [STATUS_TOPICS.alarm]: { qos: 1 },
    [STATUS_TOPICS.edgeStatusWildcard]: { qos: 0 },
  });
}, 30_000);

// A failed test must not leave its worker consuming the next test's telemetry.
afterEach(async () => {
  for (const w of workers.splice(0)) {
    await w.worker.stop();
    await w.bus.close();
  }
});

afterAll(async () => {
  await admin?.endAsync(true);
  await broker?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('edge worker against the broker', () => {
  it('predicts telemetry: schema-valid predictions with the right seq and model version', async () => {
    const w = await startWorker('edge-it-flow');
    expect(w.worker.ready()).toBe(true);
    for (let seq = 0; seq < 60; seq++)
      await publish(TOPICS.telemetry(`flow-${seq % 3}`), makeTelemetry(`flow-${seq % 3}`, seq));
    await waitFor(() => of('flow-').length >= 60, 10_000, '60 predictions');
    const got = of('flow-');
    expect(got.map((p) => p.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    for (const p of got) {
      expect(predictionSchema.safeParse(p).success).toBe(true);
      expect(p.modelVersion).toBe('1');
      expect(p.machineId).toBe(`flow-${p.seq % 3}`);
      expect(p.latencyMs).toBe(p.predictedAt - p.ts);
    }
    const base = `http://127.0.0.1:${w.worker.httpPort}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('driftline_edge_messages_in_total{kind="telemetry"} 60');
    expect(metrics).toContain('driftline_edge_model_info{name="driftline-efficiency",version="1"} 1');
    const one = await fetch(`${base}/predict`, {
      method: 'POST',
      body: JSON.stringify(makeTelemetry('x', 1)),
    });
    expect(await one.json()).toMatchObject({ modelVersion: '1' });
    await stopWorker(w);
  });

  it('dead-letters bad payloads with a reason while good ones keep flowing', async () => {
    const w = await startWorker('edge-it-dlq');
    const bad: [string, unknown][] = [
      [TOPICS.telemetry('dlq-1'), '{not json'],
      [TOPICS.telemetry('dlq-1'), { ...makeTelemetry('dlq-1', 100), temperatureC: 9999 }],
      [TOPICS.telemetry('dlq-1'), { ...makeTelemetry('someone-else', 101) }],
      [TOPICS.telemetry('dlq-1'), { machineId: 'dlq-1', seq: 102 }],
      [TOPICS.label('dlq-1'), { machineId: 'dlq-1', seq: 1, efficiency: 'Superb' }],
    ];
    for (let i = 0; i < 20; i++) {
      await publish(TOPICS.telemetry('dlq-1'), makeTelemetry('dlq-1', i));
      const b = bad[i % 5];
      if (i < 5 && b) await publish(b[0], b[1]);
    }
    await waitFor(
      () => of('dlq-').length >= 20 && deadLetters.length >= 5,
      10_000,
      'predictions and dead letters',
    );
    expect(
      of('dlq-')
        .map((p) => p.seq)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(deadLetters.map((d) => d.reason).sort()).toEqual([
      'invalid_value',
      'machine_id_mismatch',
      'missing_field',
      'not_json',
      'out_of_range',
    ]);
    expect(
      deadLetters.every((d) => d.source === 'edge-inference' && d.topic.startsWith('factory/dlq-1/')),
    ).toBe(true);
    expect(w.worker.deadLetters.countsByReason()).toMatchObject({ not_json: 1, out_of_range: 1 });
    await stopWorker(w);
  });

  it('refuses a corrupted model and keeps serving the one it has', async () => {
    const w = await startWorker('edge-it-corrupt');
    const dir = await registry.fetchArtifact(MODEL, '3');
    const weights = path.join(dir, 'weights.bin');
    const bytes = await readFile(weights);
    bytes[0] = (bytes[0] ?? 0) ^ 0xff;
    await writeFile(weights, bytes);
    await w.bus.publish(BUS_TOPICS.modelEvents, MODEL, modelEvent('model-promoted', '3', '1'));
    await w.bus.idle();
    expect(w.worker.holder.version).toBe('1');
    expect(w.worker.stats().refusedLoads).toBe(1);
    for (let seq = 0; seq < 10; seq++)
      await publish(TOPICS.telemetry('corrupt-1'), makeTelemetry('corrupt-1', seq));
    await waitFor(() => of('corrupt-').length >= 10, 10_000, 'predictions after the refusal');
    expect(new Set(of('corrupt-').map((p) => p.modelVersion))).toEqual(new Set(['1']));
    const metrics = await (await fetch(`http://127.0.0.1:${w.worker.httpPort}/metrics`)).text();
    expect(metrics).toContain('driftline_edge_model_loads_refused_total{reason="artifact_invalid"} 1');
    await stopWorker(w);
  });

  it('hot-swaps under load without losing or repeating a prediction', async () => {
    const w = await startWorker('edge-it-swap');
    try {
      const chunk = 100;
      let sent = 0;
      const sendChunk = async (): Promise<void> => {
        const sends: Promise<void>[] = [];
        for (let i = sent; i < sent + chunk; i++)
          sends.push(publish(TOPICS.telemetry(`swap-${i % 4}`), makeTelemetry(`swap-${i % 4}`, i)));
        sent += chunk;
        await Promise.all(sends);
        await new Promise((r) => setTimeout(r, 10));
      };
      for (let c = 0; c < 5; c++) await sendChunk();
      for (const [target, from] of [
        ['2', '1'],
        ['4', '2'],
      ] as const) {
        // The event is not awaited: the model loads while telemetry keeps flowing.
        void w.bus.publish(BUS_TOPICS.modelEvents, MODEL, modelEvent('model-promoted', target, from));
        do await sendChunk();
        while (w.worker.holder.version !== target && sent < 5000);
        await sendChunk();
        const expected = sent;
        await waitFor(() => of('swap-').length >= expected, 10_000, `${expected} predictions`);
      }
      while (sent < 2000) await sendChunk();
      const total = sent;
      await waitFor(() => of('swap-').length >= total, 15_000, `${total} predictions`);
      await new Promise((r) => setTimeout(r, 100));
      const got = of('swap-').sort((a, b) => a.seq - b.seq);
      expect(got).toHaveLength(total); // nothing predicted twice
      expect(got.map((p) => p.seq)).toEqual(Array.from({ length: total }, (_, i) => i)); // nothing lost
      for (const p of got) expect(predictionSchema.safeParse(p).success).toBe(true);
      // In arrival order the version changes only forwards, once per swap (batch boundaries): 1…1 2…2 4…4.
      const runs: string[] = [];
      for (const p of got) if (runs.at(-1) !== p.modelVersion) runs.push(p.modelVersion);
      expect(runs).toEqual(['1', '2', '4']);
      expect(w.worker.holder.version).toBe('4');
    } finally {
      await stopWorker(w);
    }
  });

  it('QoS 1: a worker that goes away and comes back receives what was published meanwhile', async () => {
    const clientId = 'edge-it-qos';
    let w = await startWorker(clientId);
    for (let seq = 0; seq < 20; seq++) await publish(TOPICS.telemetry('qos-1'), makeTelemetry('qos-1', seq));
    await waitFor(() => of('qos-').length >= 20, 10_000, 'first 20');
    await stopWorker(w);
    // Nobody consumes now: the broker keeps these for the persistent session.
    for (let seq = 20; seq < 120; seq++)
      await publish(TOPICS.telemetry('qos-1'), makeTelemetry('qos-1', seq));
    await new Promise((r) => setTimeout(r, 50));
    expect(of('qos-')).toHaveLength(20);
    w = await startWorker(clientId);
    await waitFor(() => of('qos-').length >= 120, 10_000, 'queued messages after the restart');
    expect(
      of('qos-')
        .map((p) => p.seq)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 120 }, (_, i) => i));

    // A dropped connection (no goodbye): mqtt.js reconnects and the session delivers the backlog.
    const conn = (
      broker.aedes as unknown as { clients: Record<string, { conn: { destroy(): void } } | undefined> }
    ).clients[clientId]?.conn;
    expect(conn).toBeDefined();
    conn?.destroy();
    await waitFor(() => !w.worker.ready(), 5_000, 'the worker to notice the disconnect');
    for (let seq = 120; seq < 170; seq++)
      await publish(TOPICS.telemetry('qos-1'), makeTelemetry('qos-1', seq));
    await waitFor(() => w.worker.ready(), 5_000, 'the reconnect');
    await waitFor(
      () => new Set(of('qos-').map((p) => p.seq)).size >= 170,
      10_000,
      'messages published while disconnected',
    );
    expect(new Set(of('qos-').map((p) => p.seq))).toEqual(new Set(Array.from({ length: 170 }, (_, i) => i)));
    await stopWorker(w);
  });

  it('follows the registry champion without a bus event (separate processes)', async () => {
    const w = await startWorker('edge-it-watch', { championPollMs: 100 });
    expect(w.worker.holder.version).toBe('1');
    await registry.setChampion(MODEL, '2', { by: 'test', reason: 'promoted from another process' });
    try {
      await waitFor(() => w.worker.holder.version === '2', 5_000, 'the worker to follow the champion');
      await publish(TOPICS.telemetry('watch-1'), makeTelemetry('watch-1', 1));
      await waitFor(() => of('watch-').length >= 1, 5_000, 'a prediction');
      expect(of('watch-')[0]?.modelVersion).toBe('2');
    } finally {
      await registry.setChampion(MODEL, '1', { by: 'test', reason: 'restore' });
    }
  });

  it('publishes drift windows and its status through the broker (the edge role may publish driftline/#)', async () => {
    const w = await startWorker('edge-it-status', {
      statusIntervalMs: 100,
      driftConfig: { windowSize: 50 },
      driftWindowMinIntervalMs: 0,
      backend: 'cpu',
    });
    try {
      for (let seq = 0; seq < 120; seq++)
        await publish(TOPICS.telemetry('status-1'), makeTelemetry('status-1', seq));
      const windows = (): DriftWindowMessage[] =>
        statusMessages
          .filter(
            (m) =>
              m.topic === STATUS_TOPICS.driftWindow &&
              (m.body as DriftWindowMessage).workerId === 'edge-it-status',
          )
          .map((m) => m.body as DriftWindowMessage);
      const statuses = (): EdgeStatusMessage[] =>
        statusMessages
          .filter((m) => m.topic === STATUS_TOPICS.edgeStatus('edge-it-status'))
          .map((m) => m.body as EdgeStatusMessage);
      await waitFor(() => windows().length >= 2, 10_000, 'two drift window messages');
      await waitFor(
        () => statuses().some((s) => s.predictionsOutPerSec > 0) && statuses().at(-1)?.queueDepth === 0,
        10_000,
        'a status with predictions',
      );
      for (const m of windows()) {
        expect(driftWindowMessageSchema.safeParse(m).success).toBe(true);
        expect(m.modelVersion).toBe('1');
        expect(m.histograms?.temperatureC?.current.reduce((a, b) => a + b, 0)).toBe(50);
        expect(m.histograms?.temperatureC?.reference.reduce((a, b) => a + b, 0)).toBe(500); // the artifact's reference sample
      }
      expect(
        windows()
          .map((m) => m.windowIndex)
          .slice(0, 2),
      ).toEqual([1, 2]);
      for (const s of statuses()) expect(edgeStatusMessageSchema.safeParse(s).success).toBe(true);
      expect(statuses().at(-1)).toMatchObject({
        workerId: 'edge-it-status',
        ready: true,
        modelVersion: '1',
        backend: 'cpu',
        bus: 'in-process',
      });
      expect(statuses().at(-1)?.registry).toMatch(/^directory /);
      expect(w.worker.stats().status.failed).toBe(0);
    } finally {
      await stopWorker(w);
    }
  });

  it('fails start() with a clear error when the broker refuses the login', async () => {
    const bus = new InProcessBus();
    const worker = createEdgeWorker({
      bus,
      mqtt: { url: broker.mqttUrl, clientId: 'edge-it-badpw', username: 'edge', password: 'wrong' },
      modelRegistry: registry,
      loader: (dir) => loadArtifact(dir, tf),
      http: false,
      championPollMs: 0,
    });
    try {
      await expect(worker.start()).rejects.toThrow(/refused client edge-it-badpw/);
      expect(worker.ready()).toBe(false);
    } finally {
      await worker.stop();
      await bus.close();
    }
  });
});
