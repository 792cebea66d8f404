import { describe, expect, it } from 'vitest';
import { FEATURES } from '../../../common/schema/features.ts';
import { STATUS_TOPICS } from '../../../common/schema/status.ts';
import { handleMqttMessage } from '../../../dashboard/src/mqtt-source.ts';
import { DashboardStore } from '../../../dashboard/src/state.ts';

/**
 * Every MQTT message is validated with the shared schemas; invalid ones are counted by source and reason,
 * never shown.
 */

const HTML_ID = '<img src=x onerror=alert(1)>';

function telemetry(machineId: string, seq = 0): Record<string, unknown> {
  return {
    machineId,
    seq,
    ts: 1_700_000_000_000,
    operationMode: 'Active',
    temperatureC: 60,
    vibrationHz: 2,
    powerKw: 5,
    networkLatencyMs: 10,
    packetLossPct: 1,
    defectRatePct: 2,
    productionSpeedUph: 300,
    maintenanceScore: 0.5,
    errorRatePct: 3,
  };
}

function status(workerId: string): Record<string, unknown> {
  return {
    workerId,
    publishedAt: 1,
    ready: true,
    modelVersion: '3',
    backend: 'tensorflow',
    validationAccuracy: 0.9,
    liveAccuracy: 0.85,
    labelled: 100,
    predictedMix: { Low: 0.6, Medium: 0.3, High: 0.1 },
    messagesInPerSec: 50,
    predictionsOutPerSec: 49,
    meanBatchSize: 8,
    latencyMs: { p50: 1, p95: 3, p99: 5 },
    queueDepth: 2,
    deadLetters: {},
    bus: 'in-process',
    registry: 'directory x',
  };
}

function send(store: DashboardStore, topic: string, value: unknown): void {
  handleMqttMessage(store, topic, Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));
}

describe('handleMqttMessage', () => {
  it('stores valid telemetry, predictions and labels, also for machine ids that contain HTML', () => {
    const s = new DashboardStore({ modelName: 'm' });
    send(s, `factory/${HTML_ID}/telemetry`, telemetry(HTML_ID));
    send(s, `factory/${HTML_ID}/prediction`, {
      machineId: HTML_ID,
      seq: 0,
      ts: 1,
      predictedAt: 2,
      efficiency: 'Medium',
      probabilities: { Low: 0.2, Medium: 0.7, High: 0.1 },
      modelVersion: '3',
      latencyMs: 1.5,
    });
    send(s, `factory/${HTML_ID}/label`, { machineId: HTML_ID, seq: 0, efficiency: 'Medium' });
    const m = s.machineView(HTML_ID);
    expect(m?.id).toBe(HTML_ID);
    expect(m?.features).toHaveLength(FEATURES.length);
    expect(m?.prediction?.efficiency).toBe('Medium');
    expect(m?.label).toBe('Medium');
    expect(s.snapshot().invalid.total).toBe(0);
  });

  it('counts invalid messages by source and reason and shows none of them', () => {
    const s = new DashboardStore({ modelName: 'm' });
    send(s, 'factory/m-1/telemetry', 'not json');
    send(s, 'factory/m-1/telemetry', { ...telemetry('m-1'), temperatureC: 9999 });
    send(s, 'factory/m-1/telemetry', telemetry('m-2')); // payload machine differs from the topic's
    send(s, 'factory/m-1/telemetry', 'x'.repeat(5000));
    send(s, 'factory/m-1/prediction', { machineId: 'm-1', efficiency: 'Great' });
    send(s, 'factory/m-1/prediction', {
      machineId: 'm-9',
      seq: 0,
      ts: 1,
      predictedAt: 2,
      efficiency: 'Low',
      probabilities: { Low: 1, Medium: 0, High: 0 },
      modelVersion: '1',
      latencyMs: 1,
    });
    send(s, 'factory/m-1/label', { machineId: 'm-1', seq: -1, efficiency: 'Low' });
    send(s, STATUS_TOPICS.driftWindow, { workerId: 'edge-1' });
    send(s, STATUS_TOPICS.alarm, '[]');
    send(s, STATUS_TOPICS.edgeStatus('edge-1'), status('edge-2'));
    send(s, 'driftline/dead-letter', { source: 1 });
    const snap = s.snapshot();
    expect(snap.invalid.bySource).toEqual({
      telemetry: { not_json: 1, out_of_range: 1, machine_id_mismatch: 1, payload_too_large: 1 },
      prediction: { invalid_schema: 1, machine_id_mismatch: 1 },
      label: { out_of_range: 1 },
      'drift-window': { invalid_schema: 1 },
      'drift-alarm': { not_object: 1 },
      'edge-status': { worker_id_mismatch: 1 },
      'dead-letter': { invalid_schema: 1 },
    });
    expect(snap.invalid.total).toBe(11);
    // The only machine is m-1, created by its refused telemetry and flagged; no reading of it is shown.
    expect(snap.machines.map((m) => [m.id, m.features, m.rejected])).toEqual([['m-1', null, 4]]);
    expect(snap.drift).toEqual([]);
    expect(snap.alarms).toEqual([]);
    expect(snap.pipeline.workers).toEqual([]);
  });

  it('stores edge status, drift windows and alarms that match their schemas', () => {
    const s = new DashboardStore({ modelName: 'm' });
    send(s, STATUS_TOPICS.edgeStatus('edge-1'), status('edge-1'));
    send(s, STATUS_TOPICS.driftWindow, {
      workerId: 'edge-1',
      groupKey: 'all',
      windowIndex: 1,
      publishedAt: 1,
      modelVersion: '3',
      from: { sampleIndex: 0, ts: 1 },
      to: { sampleIndex: 9, ts: 2 },
      features: [
        {
          feature: 'powerKw',
          statistic: 0.3,
          pvalue: 0.01,
          threshold: 1e-4,
          criticalStatistic: 0.4,
          drifted: false,
        },
      ],
      rejected: [],
    });
    send(s, STATUS_TOPICS.alarm, {
      workerId: 'edge-1',
      kind: 'concept',
      groupKey: 'all',
      publishedAt: 3,
      modelVersion: '3',
      correlationId: 'c1',
      at: { sampleIndex: 9, ts: 2 },
      onset: { sampleIndex: 0, ts: 1 },
      features: [],
      liveAccuracy: 0.6,
    });
    const snap = s.snapshot();
    expect(snap.pipeline.workers[0]?.backend).toBe('tensorflow');
    expect(snap.drift[0]?.features[0]?.feature).toBe('powerKw');
    expect(snap.alarms[0]).toMatchObject({ kind: 'concept', requestId: null, liveAccuracy: 0.6 });
  });

  it('ignores topics it does not read and never throws on odd input', () => {
    const s = new DashboardStore({ modelName: 'm' });
    send(s, 'driftline/retrainer/status', { any: 1 });
    send(s, 'factory/m-1/command', {});
    handleMqttMessage(s, 'factory/a/b/c', Buffer.from([0xff, 0xfe]));
    handleMqttMessage(s, 'factory/m-1/telemetry', new Uint8Array([0xff, 0xfe, 0x00]));
    const snap = s.snapshot();
    expect(snap.invalid.ignored).toBe(2);
    expect(snap.invalid.bySource.topic).toEqual({ invalid_topic: 1 });
    expect(snap.invalid.bySource.telemetry).toEqual({ not_json: 1 });
  });
});
