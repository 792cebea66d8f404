import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { parseModelEvent, type ModelEvent } from '../../../common/events/schemas.ts';
import { STATUS_TOPICS } from '../../../common/schema/status.ts';
import { ScriptedPipeline, promoteChallenger } from '../../helpers/dashboard/feed.ts';
import {
  httpRequest,
  login,
  openEventStream,
  type EventStream,
} from '../../helpers/dashboard/http-client.ts';
import {
  DASHBOARD_LOGINS,
  publishJson,
  startDashboardStack,
  TEST_MODEL,
  type DashboardStack,
} from '../../helpers/dashboard/stack.ts';

/**
 * The dashboard against a real broker on loopback (secured, the dashboard as
 * its `dashboard` service account), the in-process bus and a directory
 * registry: the event stream, invalid messages, the retrain join, the
 * operator rollback, and a broker restart.
 */

let stack: DashboardStack;
let client: MqttClient;
let operator: Awaited<ReturnType<typeof login>>;
let stream: EventStream;

function telemetry(machineId: string, seq: number): Record<string, unknown> {
  return {
    machineId,
    seq,
    ts: Date.now(),
    operationMode: 'Active',
    temperatureC: 55,
    vibrationHz: 2,
    powerKw: 4,
    networkLatencyMs: 8,
    packetLossPct: 1,
    defectRatePct: 2,
    productionSpeedUph: 320,
    maintenanceScore: 0.6,
    errorRatePct: 2,
  };
}

beforeAll(async () => {
  stack = await startDashboardStack({ dashboard: { updateIntervalMs: 50 } });
  await stack.dashboard.ready;
  client = await stack.publisher();
  operator = await login(stack.dashboard.url, DASHBOARD_LOGINS.operator);
  stream = await openEventStream(stack.dashboard.url, operator.cookie);
});

afterAll(async () => {
  stream?.close();
  await stack?.close();
});

describe('dashboard event stream', () => {
  it('starts with a snapshot showing the connected backends and the registry champion', async () => {
    const first = await stream.next(() => true);
    expect(first.event).toBe('snapshot');
    const s = await stream.until(
      (x) => x.model.champion !== null && x.connections.mqtt.state === 'connected',
    );
    expect(s.model.champion?.version).toBe('1');
    expect(s.connections.bus).toMatchObject({ state: 'connected', target: 'in-process' });
    expect(s.connections.registry.state).toBe('connected');
  });

  it('delivers live updates when telemetry, predictions and status messages arrive', async () => {
    await publishJson(client, 'factory/line-1/telemetry', telemetry('line-1', 0));
    await publishJson(client, 'factory/line-1/prediction', {
      machineId: 'line-1',
      seq: 0,
      ts: 1,
      predictedAt: 2,
      efficiency: 'High',
      probabilities: { Low: 0.05, Medium: 0.15, High: 0.8 },
      modelVersion: '1',
      latencyMs: 1.1,
    });
    const s = await stream.until((x) =>
      x.machines.some((m) => m.id === 'line-1' && m.prediction?.efficiency === 'High'),
    );
    expect(s.machines.find((m) => m.id === 'line-1')?.features?.[0]).toBe(55);
    expect(stream.events.filter((e) => e.event === 'snapshot')).toHaveLength(1);
    await publishJson(client, STATUS_TOPICS.edgeStatus('edge-7'), {
      workerId: 'edge-7',
      publishedAt: Date.now(),
      ready: true,
      modelVersion: '1',
      backend: 'wasm',
      validationAccuracy: 0.91,
      liveAccuracy: 0.88,
      labelled: 300,
      predictedMix: { Low: 0.5, Medium: 0.3, High: 0.2 },
      messagesInPerSec: 40,
      predictionsOutPerSec: 40,
      meanBatchSize: 6,
      latencyMs: { p50: 1, p95: 2.5, p99: 4 },
      queueDepth: 0,
      deadLetters: { out_of_range: 3 },
      bus: 'in-process',
      registry: 'directory x',
    });
    const w = await stream.until((x) => x.pipeline.workers.some((k) => k.workerId === 'edge-7'));
    expect(w.deadLetters.edgeByReason).toEqual({ out_of_range: 3 });
  });

  it('counts invalid MQTT messages and never shows them', async () => {
    await publishJson(client, 'factory/ghost/telemetry', 'not json');
    await publishJson(client, 'factory/line-2/telemetry', { ...telemetry('line-2', 0), temperatureC: 5000 });
    await publishJson(client, STATUS_TOPICS.driftWindow, { workerId: 'edge-1', features: 'nope' });
    const s = await stream.until(
      (x) =>
        (x.invalid.bySource['drift-window']?.invalid_schema ?? 0) >= 1 &&
        (x.invalid.bySource.telemetry?.out_of_range ?? 0) >= 1,
    );
    expect(s.invalid.bySource.telemetry).toMatchObject({ not_json: 1, out_of_range: 1 });
    expect(s.drift).toEqual([]);
    const line2 = s.machines.find((m) => m.id === 'line-2');
    expect(line2?.features).toBeNull(); // refused reading not shown
    expect(line2?.faults[0]).toMatch(/1 rejected message in the last 60 s \(out_of_range\)/);
  });

  it('shows a drift alarm joined with its retrain request and the promotion, with the new champion', async () => {
    const pipeline = new ScriptedPipeline({
      client,
      bus: stack.bus,
      machineIds: ['p-1', 'p-2', 'p-3'],
      modelName: TEST_MODEL,
      championVersion: '1',
      windowSize: 100,
    });
    await pipeline.publishSamples(200);
    let s = await stream.until((x) => (x.drift.find((g) => g.groupKey === 'all')?.windowIndex ?? 0) >= 2);
    expect(s.drift[0]?.features.every((f) => !f.drifted)).toBe(true);
    expect(s.drift[0]?.histograms.temperatureC?.edges).toHaveLength(21);
    pipeline.setShift('temperatureC', 30);
    await pipeline.publishSamples(200);
    expect(pipeline.retrainRequest).toBeDefined();
    const requestId = pipeline.retrainRequest?.requestId;
    s = await stream.until((x) => x.alarms.length > 0 && x.retrains.length > 0);
    expect(s.drift[0]?.features.find((f) => f.feature === 'temperatureC')?.drifted).toBe(true);
    expect(s.alarms[0]).toMatchObject({ kind: 'covariate', requestId });
    expect(s.retrains[0]).toMatchObject({ requestId, outcome: 'pending' });
    await promoteChallenger(pipeline, {
      registry: stack.registry,
      bus: stack.bus,
      modelName: TEST_MODEL,
      register: (metrics, info) => stack.registerVersion(metrics, { ...info, source: 'retrainer' }),
      challenger: { samples: 200, accuracy: 0.94, macroF1: 0.93 },
      champion: { samples: 200, accuracy: 0.8, macroF1: 0.76 },
    });
    s = await stream.until((x) => x.retrains[0]?.outcome === 'promoted' && x.model.champion?.version === '2');
    expect(s.retrains[0]).toMatchObject({ candidateVersion: '2', championVersion: '1' });
    expect(s.model.events[0]).toMatchObject({ type: 'model-promoted', version: '2', requestId });
    expect(s.model.history[0]).toMatchObject({ from: '1', to: '2', by: 'retrainer' });
  });
});

describe('rollback through the API', () => {
  it('refuses a viewer with 403 and leaves the registry alone', async () => {
    const viewer = await login(stack.dashboard.url, DASHBOARD_LOGINS.viewer);
    const res = await httpRequest(`${stack.dashboard.url}/api/model/rollback`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        cookie: viewer.cookie,
        'x-csrf-token': viewer.session.csrfToken,
      },
      body: JSON.stringify({ reason: 'viewer tries' }),
    });
    expect(res.status).toBe(403);
    expect((await stack.registry.getChampion(TEST_MODEL))?.version).toBe('2');
  });

  it('rolls the registry back for an operator and publishes model-rolled-back on the bus', async () => {
    const seen: ModelEvent[] = [];
    const sub = await stack.bus.subscribe(
      BUS_TOPICS.modelEvents,
      { group: 'test-observer', fromBeginning: false },
      async (m) => {
        const r = parseModelEvent(m.value);
        if (r.ok) seen.push(r.value);
      },
    );
    const headers = {
      'content-type': 'application/json',
      cookie: operator.cookie,
      'x-csrf-token': operator.session.csrfToken,
    };
    const stale = await httpRequest(`${stack.dashboard.url}/api/model/rollback`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ reason: 'x', expectedVersion: '1' }),
    });
    expect(stale.status).toBe(409);
    const res = await httpRequest(`${stack.dashboard.url}/api/model/rollback`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ reason: 'live accuracy fell after promotion', expectedVersion: '2' }),
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ from: '2', to: '1', eventPublished: true });
    expect((await stack.registry.getChampion(TEST_MODEL))?.version).toBe('1');
    const history = await stack.registry.history(TEST_MODEL);
    expect(history.at(-1)).toMatchObject({
      action: 'rollback',
      from: '2',
      to: '1',
      by: 'dashboard:olivia',
      reason: 'live accuracy fell after promotion',
    });
    await stack.bus.idle();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      type: 'model-rolled-back',
      modelName: TEST_MODEL,
      version: '1',
      fromVersion: '2',
      requestId: null,
    });
    expect(seen[0]?.correlationId).toBe(history.at(-1)?.correlationId);
    const s = await stream.until(
      (x) => x.model.champion?.version === '1' && x.model.events[0]?.type === 'model-rolled-back',
    );
    expect(s.model.history[0]?.action).toBe('rollback');
    await sub.close();
  });
});

describe('resilience', () => {
  it('reconnects to a restarted broker, shows the outage, and streams again', async () => {
    await client.endAsync(true);
    await stack.restartBroker();
    await stream.until((x) => x.connections.mqtt.state !== 'connected', 10_000);
    const s = await stream.until((x) => x.connections.mqtt.state === 'connected', 15_000);
    expect(s.connections.mqtt.state).toBe('connected');
    client = await stack.publisher();
    await publishJson(client, 'factory/after-restart/telemetry', telemetry('after-restart', 0));
    await stream.until((x) => x.machines.some((m) => m.id === 'after-restart'));
  });

  it('gives a reconnecting browser a fresh snapshot with the current state', async () => {
    const again = await openEventStream(stack.dashboard.url, operator.cookie);
    const first = await again.next(() => true);
    expect(first.event).toBe('snapshot');
    const snap = first.data as {
      machines: { id: string }[];
      model: { champion: { version: string } | null };
    };
    expect(snap.machines.map((m) => m.id)).toContain('after-restart');
    expect(snap.model.champion?.version).toBe('1');
    again.close();
  });
});
