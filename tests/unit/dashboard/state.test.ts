import { describe, expect, it } from 'vitest';
import { FEATURES } from '../../../common/schema/features.ts';
import type {
  DriftAlarmMessage,
  DriftWindowMessage,
  EdgeStatusMessage,
} from '../../../common/schema/status.ts';
import type { Telemetry } from '../../../common/schema/telemetry.ts';
import type { ModelPromoted, ModelRejected, RetrainRequest } from '../../../common/events/schemas.ts';
import { DashboardStore, RateMeter } from '../../../dashboard/src/state.ts';
import { describeRetrain, RetrainIndex } from '../../../dashboard/src/shared/join.ts';

/** The dashboard's state store: machines, health flags, rates, drift, joins, updates. Pure logic with a fake clock. */

function clock(start = 1_700_000_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function telemetry(machineId: string, seq: number, over: Partial<Telemetry> = {}): Telemetry {
  return {
    machineId,
    seq,
    ts: 1_700_000_000_000 + seq,
    operationMode: 'Active',
    temperatureC: 50 + (seq % 7),
    vibrationHz: 1 + (seq % 5) / 10,
    powerKw: 3 + (seq % 3),
    networkLatencyMs: 10 + seq,
    packetLossPct: (seq % 4) / 10,
    defectRatePct: 1 + (seq % 6) / 10,
    productionSpeedUph: 200 + seq,
    maintenanceScore: (seq % 10) / 10,
    errorRatePct: 1 + (seq % 9) / 10,
    ...over,
  };
}

function windowMsg(
  index: number,
  drifted: boolean,
  over: Partial<DriftWindowMessage> = {},
): DriftWindowMessage {
  return {
    workerId: 'edge-1',
    groupKey: 'all',
    windowIndex: index,
    publishedAt: 1000 + index,
    modelVersion: '1',
    from: { sampleIndex: (index - 1) * 100, ts: 1 },
    to: { sampleIndex: index * 100 - 1, ts: 2 },
    features: FEATURES.map((f, i) => ({
      feature: f,
      statistic: i === 0 && drifted ? 0.5 : 0.05,
      pvalue: i === 0 && drifted ? 1e-12 : 0.6,
      threshold: 1e-4,
      criticalStatistic: 0.2,
      drifted: i === 0 && drifted,
    })),
    rejected: drifted ? ['temperatureC'] : [],
    histograms: { temperatureC: { edges: [0, 1, 2], reference: [5, 5], current: [1, 9] } },
    ...over,
  };
}

const REQUEST_ID = 'ab'.repeat(32);

function request(over: Partial<RetrainRequest> = {}): RetrainRequest {
  return {
    type: 'retrain-request',
    requestId: REQUEST_ID,
    correlationId: 'corr-1',
    modelName: 'm',
    championVersion: '1',
    kind: 'covariate',
    requestedAt: 5000,
    features: [{ feature: 'temperatureC', statistic: 0.5, pvalue: 1e-12 }],
    window: { fromTs: 1, toTs: 2 },
    liveAccuracy: 0.8,
    validationAccuracy: 0.9,
    groupKey: 'all',
    ...over,
  };
}

function promoted(over: Partial<ModelPromoted> = {}): ModelPromoted {
  return {
    type: 'model-promoted',
    modelName: 'm',
    correlationId: 'corr-1',
    requestId: REQUEST_ID,
    reason: 'challenger better',
    at: 6000,
    version: '2',
    previousVersion: '1',
    metrics: { samples: 100, accuracy: 0.93, macroF1: 0.92 },
    previousMetrics: { samples: 100, accuracy: 0.8, macroF1: 0.75 },
    ...over,
  };
}

function alarm(over: Partial<DriftAlarmMessage> = {}): DriftAlarmMessage {
  return {
    workerId: 'edge-1',
    kind: 'covariate',
    groupKey: 'all',
    publishedAt: 4000,
    modelVersion: '1',
    correlationId: 'corr-1',
    requestId: REQUEST_ID,
    at: { sampleIndex: 10, ts: 1 },
    onset: { sampleIndex: 1, ts: 1 },
    features: [{ feature: 'temperatureC', statistic: 0.5, pvalue: 1e-12 }],
    liveAccuracy: 0.8,
    ...over,
  };
}

describe('DashboardStore: machines', () => {
  it('creates a machine on its first reading, with features in FEATURES order', () => {
    const c = clock();
    const s = new DashboardStore({ modelName: 'm', now: c.now });
    s.onTelemetry(telemetry('m-1', 0));
    const m = s.machineView('m-1');
    expect(m?.features).toEqual(FEATURES.map((f) => telemetry('m-1', 0)[f]));
    expect(m).toMatchObject({
      id: 'm-1',
      seq: 0,
      mode: 'Active',
      stale: false,
      faults: [],
      lastSeen: c.now(),
    });
  });

  it('keeps untrusted machine ids verbatim (they are shown as text)', () => {
    const s = new DashboardStore({ modelName: 'm' });
    const id = '<img src=x onerror=alert(1)>';
    s.onTelemetry(telemetry(id, 0));
    expect(s.snapshot().machines.map((m) => m.id)).toEqual([id]);
  });

  it('flags a machine stale after staleAfterMs without messages, and clears it on the next message', () => {
    const c = clock();
    const s = new DashboardStore({ modelName: 'm', staleAfterMs: 5000, now: c.now });
    s.onTelemetry(telemetry('m-1', 0));
    s.takeUpdate();
    c.advance(4000);
    s.tick();
    expect(s.machineView('m-1')?.stale).toBe(false);
    c.advance(1500);
    s.tick();
    expect(s.machineView('m-1')?.stale).toBe(true);
    expect(s.takeUpdate()?.machines?.map((m) => [m.id, m.stale])).toEqual([['m-1', true]]);
    s.onTelemetry(telemetry('m-1', 1));
    expect(s.machineView('m-1')?.stale).toBe(false);
  });

  it('flags a feature stuck at one value over the last K messages, and unflags it when it moves', () => {
    const s = new DashboardStore({ modelName: 'm', stuckAfter: 5 });
    for (let i = 0; i < 4; i++) s.onTelemetry(telemetry('m-1', i, { vibrationHz: 2.5 }));
    expect(s.machineView('m-1')?.faults).toEqual([]);
    s.onTelemetry(telemetry('m-1', 4, { vibrationHz: 2.5 }));
    expect(s.machineView('m-1')?.faults).toEqual(['vibrationHz stuck at 2.5 for 5 messages']);
    s.onTelemetry(telemetry('m-1', 5, { vibrationHz: 2.6 }));
    expect(s.machineView('m-1')?.faults).toEqual([]);
  });

  it('flags a machine faulty while it has recent dead letters, attributed by topic; the flag expires', () => {
    const c = clock();
    const s = new DashboardStore({ modelName: 'm', faultWindowMs: 60_000, now: c.now });
    s.onTelemetry(telemetry('m-1', 0));
    s.onDeadLetter({
      source: 'edge-inference',
      topic: 'factory/m-1/telemetry',
      reason: 'out_of_range',
      detail: 'too hot',
      rejectedAt: c.now(),
      payload: '{}',
      payloadBytes: 2,
    });
    s.onDeadLetter({
      source: 'edge-inference',
      topic: 'not-a-machine-topic',
      reason: 'invalid_topic',
      detail: '',
      rejectedAt: c.now(),
      payload: '',
      payloadBytes: 0,
    });
    expect(s.machineView('m-1')?.faults).toEqual(['1 rejected message in the last 60 s (out_of_range)']);
    expect(s.machineView('m-1')?.rejected).toBe(1);
    const snap = s.snapshot();
    expect(snap.deadLetters.total).toBe(2);
    expect(snap.deadLetters.byReason).toEqual({ out_of_range: 1, invalid_topic: 1 });
    expect(snap.deadLetters.recent[0]?.machineId).toBeNull();
    expect(snap.deadLetters.recent[1]?.machineId).toBe('m-1');
    c.advance(61_000);
    s.tick();
    expect(s.machineView('m-1')?.faults).toEqual([]);
  });

  it('counts rejections seen by both the edge and the dashboard once (the larger view)', () => {
    const s = new DashboardStore({ modelName: 'm' });
    for (let i = 0; i < 3; i++) {
      s.onInvalid('telemetry', 'out_of_range', 'm-1');
      s.onDeadLetter({
        source: 'edge-inference',
        topic: 'factory/m-1/telemetry',
        reason: 'out_of_range',
        detail: '',
        rejectedAt: 0,
        payload: '',
        payloadBytes: 0,
      });
    }
    expect(s.machineView('m-1')?.rejected).toBe(3);
    expect(s.machineView('m-1')?.features).toBeNull();
    expect(s.snapshot().invalid.bySource).toEqual({ telemetry: { out_of_range: 3 } });
  });

  it("measures each machine's message rate over the last seconds, decaying to zero when it stops", () => {
    const c = clock(1_700_000_000_000);
    const s = new DashboardStore({ modelName: 'm', now: c.now });
    for (let i = 0; i < 50; i++) {
      s.onTelemetry(telemetry('m-1', i));
      c.advance(100); // 10 Hz
    }
    s.tick();
    expect(s.machineView('m-1')?.ratePerSec).toBeCloseTo(10, 0);
    c.advance(15_000);
    s.tick();
    expect(s.machineView('m-1')?.ratePerSec).toBe(0);
  });

  it('stops tracking new machines beyond maxMachines and counts them', () => {
    const s = new DashboardStore({ modelName: 'm', maxMachines: 2 });
    for (const id of ['a', 'b', 'c']) s.onTelemetry(telemetry(id, 0));
    expect(s.machineCount).toBe(2);
    expect(s.snapshot().invalid.bySource.telemetry).toEqual({ machine_limit: 1 });
  });

  it('joins predictions with delayed labels into an observed accuracy', () => {
    const s = new DashboardStore({ modelName: 'm', accuracyWindow: 4 });
    const pred = (seq: number, efficiency: 'Low' | 'High') => ({
      machineId: 'm-1',
      seq,
      ts: 1,
      predictedAt: 2,
      efficiency,
      probabilities: { Low: 0.1, Medium: 0.1, High: 0.8 },
      modelVersion: '1',
      latencyMs: 1,
    });
    s.onPrediction(pred(1, 'High'));
    s.onLabel({ machineId: 'm-1', seq: 1, efficiency: 'High' });
    s.onLabel({ machineId: 'm-1', seq: 2, efficiency: 'Low' }); // label before its prediction
    s.onPrediction(pred(2, 'High'));
    expect(s.snapshot().pipeline.observedAccuracy).toEqual({ accuracy: 0.5, labelled: 2, window: 4 });
    expect(s.machineView('m-1')?.prediction?.probabilities).toEqual([0.1, 0.1, 0.8]);
    expect(s.machineView('m-1')?.label).toBe('Low');
  });
});

describe('RateMeter', () => {
  it('is 0 before any message and counts per second buckets', () => {
    const r = new RateMeter();
    expect(r.rate(0)).toBe(0);
    const t0 = 1_000_000;
    for (let i = 0; i < 20; i++) r.add(t0 + i * 500);
    expect(r.rate(t0 + 10_000)).toBeCloseTo(2, 1);
  });
});

describe('DashboardStore: drift', () => {
  it('keeps the latest window per group, a bounded history per feature, and the histograms', () => {
    const s = new DashboardStore({ modelName: 'm', historyWindows: 3 });
    for (let i = 1; i <= 5; i++) s.onDriftWindow(windowMsg(i, i >= 4));
    const g = s.snapshot().drift[0];
    expect(g?.windowIndex).toBe(5);
    expect(g?.windows).toBe(5);
    expect(g?.history.temperatureC?.windowIndex).toEqual([3, 4, 5]);
    expect(g?.history.temperatureC?.drifted).toEqual([false, true, true]);
    expect(g?.features.find((f) => f.feature === 'temperatureC')?.drifted).toBe(true);
    expect(g?.histograms.temperatureC).toEqual({ edges: [0, 1, 2], reference: [5, 5], current: [1, 9] });
  });

  it('drops histograms whose counts do not match their edges, counting them as invalid', () => {
    const s = new DashboardStore({ modelName: 'm' });
    s.onDriftWindow(
      windowMsg(1, false, { histograms: { powerKw: { edges: [0, 1, 2], reference: [1], current: [1, 2] } } }),
    );
    expect(s.snapshot().drift[0]?.histograms).toEqual({});
    expect(s.snapshot().invalid.bySource['drift-window']).toEqual({ histogram_shape: 1 });
  });

  it('keeps at most maxGroups groups, dropping the least recently updated', () => {
    const c = clock();
    const s = new DashboardStore({ modelName: 'm', maxGroups: 2, now: c.now });
    for (const key of ['a', 'b', 'c']) {
      s.onDriftWindow(windowMsg(1, false, { groupKey: key }));
      c.advance(10);
    }
    expect(
      s
        .snapshot()
        .drift.map((g) => g.groupKey)
        .sort(),
    ).toEqual(['b', 'c']);
  });

  it('records alarms once (redelivery is ignored)', () => {
    const s = new DashboardStore({ modelName: 'm' });
    s.onAlarm(alarm());
    s.onAlarm(alarm());
    s.onAlarm(alarm({ publishedAt: 4001, requestId: undefined }));
    expect(s.snapshot().alarms.map((a) => a.requestId)).toEqual([REQUEST_ID, null]);
  });
});

describe('DashboardStore: retrains and their join with alarms', () => {
  it('joins a retrain request with its promotion by requestId', () => {
    const s = new DashboardStore({ modelName: 'm' });
    s.onRetrainRequest(request());
    expect(s.snapshot().retrains[0]).toMatchObject({
      outcome: 'pending',
      kind: 'covariate',
      championVersion: '1',
    });
    s.onModelEvent(promoted());
    const r = s.snapshot().retrains[0];
    expect(r).toMatchObject({
      outcome: 'promoted',
      candidateVersion: '2',
      reason: 'challenger better',
      requestedAt: 5000,
      decidedAt: 6000,
    });
    expect(r?.candidateMetrics?.macroF1).toBe(0.92);
    expect(r?.championMetrics?.macroF1).toBe(0.75);
    expect(s.snapshot().model.events.map((e) => e.type)).toEqual(['model-promoted']);
  });

  it('accepts the decision before the request (different topics are not ordered)', () => {
    const s = new DashboardStore({ modelName: 'm' });
    const rejected: ModelRejected = {
      type: 'model-rejected',
      modelName: 'm',
      correlationId: 'corr-1',
      requestId: REQUEST_ID,
      reason: 'not better',
      at: 6000,
      version: '2',
      championVersion: '1',
      metrics: { samples: 10, accuracy: 0.7, macroF1: 0.6 },
    };
    s.onModelEvent(rejected);
    s.onRetrainRequest(request());
    expect(s.snapshot().retrains).toHaveLength(1);
    expect(s.snapshot().retrains[0]).toMatchObject({
      outcome: 'rejected',
      kind: 'covariate',
      requestedAt: 5000,
      candidateVersion: '2',
    });
  });

  it('ignores other models and does not turn operator events into retrains', () => {
    const s = new DashboardStore({ modelName: 'm' });
    s.onRetrainRequest(request({ modelName: 'other' }));
    s.onModelEvent(promoted({ requestId: null, correlationId: 'bootstrap' }));
    s.onModelEvent({
      type: 'model-rolled-back',
      modelName: 'm',
      correlationId: 'op',
      requestId: null,
      reason: 'bad',
      at: 1,
      version: '1',
      fromVersion: '2',
    });
    const snap = s.snapshot();
    expect(snap.retrains).toEqual([]);
    expect(snap.model.events.map((e) => e.type)).toEqual(['model-rolled-back', 'model-promoted']);
  });

  it('RetrainIndex joins alarms by requestId, or by correlationId when the alarm joined an open episode', () => {
    const s = new DashboardStore({ modelName: 'm' });
    s.onRetrainRequest(request());
    s.onModelEvent(promoted());
    s.onAlarm(alarm());
    s.onAlarm(alarm({ publishedAt: 4500, requestId: undefined }));
    s.onAlarm(alarm({ publishedAt: 4600, requestId: undefined, correlationId: 'unknown' }));
    const snap = s.snapshot();
    const index = new RetrainIndex(snap.retrains);
    expect(snap.alarms.map((a) => describeRetrain(index.forAlarm(a)))).toEqual([
      'promoted v2',
      'promoted v2',
      'no retrain seen',
    ]);
  });
});

describe('DashboardStore: updates', () => {
  it('sends only what changed since the last update, and nothing when nothing changed', () => {
    const c = clock();
    const s = new DashboardStore({ modelName: 'm', now: c.now });
    s.onTelemetry(telemetry('a', 0));
    s.onTelemetry(telemetry('b', 0));
    const first = s.takeUpdate();
    expect(first?.machines?.map((m) => m.id).sort()).toEqual(['a', 'b']);
    expect(s.takeUpdate()).toBeUndefined();
    s.onTelemetry(telemetry('b', 1));
    const u = s.takeUpdate();
    expect(u?.machines?.map((m) => m.id)).toEqual(['b']);
    expect(u?.alarms).toBeUndefined();
    expect(u?.model).toBeUndefined();
  });

  it('reports registry changes once and connection changes', () => {
    const s = new DashboardStore({ modelName: 'm' });
    s.takeUpdate();
    const v = {
      name: 'm',
      version: '1',
      createdAt: 'x',
      checksum: 'c',
      status: 'champion' as const,
      metrics: {},
      tags: {},
    };
    s.setRegistry(v, [v], []);
    expect(s.takeUpdate()?.model?.champion?.version).toBe('1');
    s.setRegistry(v, [v], []);
    expect(s.takeUpdate()?.model).toBeUndefined();
    s.setConnection('mqtt', 'reconnecting', 'broker unreachable');
    expect(s.takeUpdate()?.connections?.mqtt).toMatchObject({
      state: 'reconnecting',
      detail: 'broker unreachable',
    });
  });

  it('samples throughput once per tick', () => {
    const c = clock();
    const s = new DashboardStore({ modelName: 'm', now: c.now });
    for (let i = 0; i < 30; i++) s.onTelemetry(telemetry('a', i));
    c.advance(1000);
    s.tick();
    const u = s.takeUpdate();
    expect(u?.throughput).toEqual([{ t: c.now(), telemetry: 30, predictions: 0, labels: 0 }]);
    expect(s.snapshot().pipeline.throughput).toHaveLength(1);
  });

  it('keeps the latest status per edge worker and sums their dead letters', () => {
    const s = new DashboardStore({ modelName: 'm' });
    const status = (workerId: string, n: number): EdgeStatusMessage => ({
      workerId,
      publishedAt: 1,
      ready: true,
      modelVersion: '1',
      backend: 'wasm',
      validationAccuracy: 0.9,
      liveAccuracy: 0.8,
      labelled: 5,
      predictedMix: { Low: 0.5, Medium: 0.3, High: 0.2 },
      messagesInPerSec: 10,
      predictionsOutPerSec: 10,
      meanBatchSize: 4,
      latencyMs: { p50: 1, p95: 2, p99: 3 },
      queueDepth: 0,
      deadLetters: { out_of_range: n },
      bus: 'in-process',
      registry: 'directory x',
    });
    s.onEdgeStatus(status('e1', 2));
    s.onEdgeStatus(status('e2', 3));
    s.onEdgeStatus(status('e1', 4));
    const snap = s.snapshot();
    expect(snap.pipeline.workers.map((w) => w.workerId)).toEqual(['e1', 'e2']);
    expect(snap.deadLetters.edgeByReason).toEqual({ out_of_range: 7 });
  });
});
