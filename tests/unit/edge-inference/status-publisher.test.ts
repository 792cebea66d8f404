import { afterEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { parseRetrainRequest, type RetrainRequest } from '../../../common/events/schemas.ts';
import { EFFICIENCY_CLASSES, FEATURES, type Feature } from '../../../common/schema/features.ts';
import {
  STATUS_TOPICS,
  driftAlarmMessageSchema,
  driftWindowMessageSchema,
  edgeStatusMessageSchema,
  type DriftAlarmMessage,
  type DriftWindowMessage,
  type EdgeStatusMessage,
  type Histogram,
} from '../../../common/schema/status.ts';
import type { Telemetry } from '../../../common/schema/telemetry.ts';
import {
  FakeIngest,
  fakeModel,
  makeTelemetry,
  ruleLabel,
} from '../../../edge-inference/src/testing/fakes.ts';
import {
  createEdgeWorker,
  type EdgeWorker,
  type EdgeWorkerOptions,
} from '../../../edge-inference/src/worker.ts';

const workers: EdgeWorker[] = [];
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

function make(options: Partial<EdgeWorkerOptions> & { ingest: FakeIngest }): EdgeWorker {
  const w = createEdgeWorker({
    bus: new InProcessBus(),
    http: false,
    championPollMs: 0,
    workerId: 'edge-t1',
    ...options,
  });
  workers.push(w);
  return w;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Counts of `values` on the message's own edges (the last bin closed). */
function countOn(edges: readonly number[], values: readonly number[]): number[] {
  const bins = edges.length - 1;
  const c = new Array<number>(bins).fill(0);
  for (const v of values) {
    let b = edges.findIndex((e, i) => i > 0 && v < e) - 1;
    if (b < 0) b = bins - 1;
    c[b] = (c[b] as number) + 1;
  }
  return c;
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('edge worker status messages', () => {
  it('publishes one schema-valid drift window message per tested window, with histograms of reference and window', async () => {
    const ingest = new FakeIngest();
    const model = fakeModel('1');
    const worker = make({
      ingest,
      initialModel: model,
      batchSize: 25,
      batchMaxWaitMs: 1,
      driftConfig: { windowSize: 50 },
      driftWindowMinIntervalMs: 0,
    });
    await worker.start();
    const sent: Telemetry[] = [];
    for (let seq = 0; seq < 210; seq++) {
      const t = makeTelemetry(`m${seq % 4}`, seq);
      sent.push(t);
      await ingest.telemetry(t);
    }
    await worker.stop();
    const windows = ingest.statusOn(STATUS_TOPICS.driftWindow) as DriftWindowMessage[];
    expect(windows).toHaveLength(4); // 210 rows, windows of 50
    expect(ingest.status.filter((s) => s.topic === STATUS_TOPICS.driftWindow).every((s) => s.qos === 0)).toBe(
      true,
    );
    windows.forEach((w, i) => {
      expect(driftWindowMessageSchema.safeParse(w).success).toBe(true);
      expect(w).toMatchObject({
        workerId: 'edge-t1',
        groupKey: 'all',
        windowIndex: i + 1,
        modelVersion: '1',
      });
      expect(w.to.sampleIndex - w.from.sampleIndex).toBe(49);
      expect(w.features.map((f) => f.feature)).toEqual([...FEATURES]);
      for (const f of w.features) {
        expect(f.statistic).toBeGreaterThanOrEqual(0);
        expect(f.pvalue).toBeGreaterThanOrEqual(0);
        expect(f.threshold).toBeCloseTo(1e-3 / 9, 12); // Bonferroni over nine features
        expect(f.criticalStatistic).toBeGreaterThan(0);
        expect(f.drifted).toBe(f.pvalue !== null && f.pvalue <= f.threshold);
      }
      expect(w.rejected).toEqual(w.features.filter((f) => f.drifted).map((f) => f.feature));
      const histograms = w.histograms as Record<Feature, Histogram>;
      expect(Object.keys(histograms).sort()).toEqual([...FEATURES].sort());
      const rows = sent.slice(i * 50, i * 50 + 50);
      for (const f of FEATURES) {
        const h = histograms[f];
        expect(h.edges).toHaveLength(21);
        expect(sum(h.current)).toBe(50);
        expect(sum(h.reference)).toBe(model.reference.size);
        // the current window is exactly the rows tested, the reference the champion's sample
        expect(h.current).toEqual(
          countOn(
            h.edges,
            rows.map((r) => r[f]),
          ),
        );
        expect(h.reference).toEqual(countOn(h.edges, model.reference.features[f]));
      }
    });
    expect(worker.stats().status).toMatchObject({ failed: 0, windowsSkipped: 0 });
  });

  it('rate-limits window messages per group', async () => {
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      initialModel: fakeModel('1'),
      batchSize: 25,
      batchMaxWaitMs: 1,
      driftConfig: { windowSize: 50 },
      driftWindowMinIntervalMs: 60_000,
    });
    await worker.start();
    for (let seq = 0; seq < 200; seq++) await ingest.telemetry(makeTelemetry('m1', seq));
    await worker.stop();
    expect(ingest.statusOn(STATUS_TOPICS.driftWindow)).toHaveLength(1);
    expect(worker.stats().status.windowsSkipped).toBe(3);
  });

  it('publishes covariate alarms: correlationId and requestId for the one that opened the episode; attached ones carry the episode correlationId and no requestId', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      bus,
      initialModel: fakeModel('1'),
      batchSize: 50,
      batchMaxWaitMs: 1,
      driftConfig: { windowSize: 50, consecutive: 1, cooldownSamples: 50, alpha: 0.01 },
      driftWindowMinIntervalMs: 0,
    });
    await worker.start();
    for (let seq = 0; seq < 400; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry({ ...t, temperatureC: t.temperatureC + 60 });
    }
    await worker.stop();
    const alarms = ingest.statusOn(STATUS_TOPICS.alarm) as DriftAlarmMessage[];
    expect(alarms.length).toBe(worker.stats().alarms.covariate);
    expect(alarms.length).toBeGreaterThan(1);
    expect(ingest.status.filter((s) => s.topic === STATUS_TOPICS.alarm).every((s) => s.qos === 1)).toBe(true);
    for (const a of alarms) {
      expect(driftAlarmMessageSchema.safeParse(a).success).toBe(true);
      expect(a).toMatchObject({ workerId: 'edge-t1', kind: 'covariate', groupKey: 'all', modelVersion: '1' });
      expect(a.features.map((f) => f.feature)).toContain('temperatureC');
      expect(a.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    }
    const requests = bus.retained(BUS_TOPICS.retrainRequests).map((m) => parseRetrainRequest(m.value));
    expect(requests).toHaveLength(1);
    const request = (requests[0] as { ok: true; value: RetrainRequest }).value;
    const [first, ...attached] = alarms as [DriftAlarmMessage, ...DriftAlarmMessage[]];
    expect(first.requestId).toBe(request.requestId);
    expect(first.correlationId).toBe(request.correlationId);
    for (const a of attached) {
      expect(a.requestId).toBeUndefined();
      expect('requestId' in a).toBe(false);
      // An attached alarm carries the open episode's correlation id, so observers link it to the retrain it joined.
      expect(a.correlationId).toBe(first.correlationId);
    }
    // every window was tested and published, the alarming ones before their alarm
    const order = ingest.status.map((s) => s.topic).filter((t) => t !== STATUS_TOPICS.edgeStatus('edge-t1'));
    expect(order[0]).toBe(STATUS_TOPICS.driftWindow);
    expect(order.filter((t) => t === STATUS_TOPICS.driftWindow)).toHaveLength(8);
  });

  it('publishes a concept alarm from the accuracy monitor with the live accuracy', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      bus,
      initialModel: fakeModel('1'),
      drift: false,
      batchSize: 10,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
      accuracyConfig: { windowSize: 50, minLabels: 20 },
    });
    await worker.start();
    for (let seq = 0; seq < 60; seq++) await ingest.telemetry(makeTelemetry('m1', seq));
    await waitFor(() => ingest.predictions.length === 60, '60 predictions');
    // every label disagrees with the prediction: live accuracy 0
    for (const p of ingest.predictions)
      await ingest.label({
        machineId: p.machineId,
        seq: p.seq,
        efficiency: p.efficiency === 'Low' ? 'High' : 'Low',
      });
    await worker.stop();
    const alarms = ingest.statusOn(STATUS_TOPICS.alarm) as DriftAlarmMessage[];
    expect(alarms).toHaveLength(1);
    const a = alarms[0] as DriftAlarmMessage;
    expect(driftAlarmMessageSchema.safeParse(a).success).toBe(true);
    expect(a).toMatchObject({ kind: 'concept', groupKey: 'all', features: [], liveAccuracy: 0 });
    const request = parseRetrainRequest(bus.retained(BUS_TOPICS.retrainRequests)[0]?.value);
    expect(request.ok && request.value.requestId).toBe(a.requestId);
  });

  it('publishes the worker status at the interval with rates over the interval', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      initialModel: fakeModel('1'),
      backend: 'cpu',
      batchSize: 10,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
      statusIntervalMs: 1000,
    });
    await worker.start();
    const now = Date.now();
    // latency = predictedAt − ts; the clock stands still, so latencies are 0..9 ms, ten of each
    for (let seq = 0; seq < 100; seq++)
      await ingest.telemetry(makeTelemetry(`m${seq % 5}`, seq, now - (seq % 10)));
    await waitFor(() => ingest.predictions.length === 100, '100 predictions');
    for (let seq = 0; seq < 40; seq++)
      await ingest.label({
        machineId: `m${seq % 5}`,
        seq,
        efficiency: ruleLabel(makeTelemetry(`m${seq % 5}`, seq)),
      });
    await worker.deadLetters.reject('factory/m1/telemetry', '{', 'not_json', 'test');
    const topic = STATUS_TOPICS.edgeStatus('edge-t1');
    expect(ingest.statusOn(topic)).toHaveLength(0);

    vi.advanceTimersByTime(1000);
    await waitFor(() => ingest.statusOn(topic).length === 1, 'the first status');
    const s = ingest.statusOn(topic)[0] as EdgeStatusMessage;
    expect(edgeStatusMessageSchema.safeParse(s).success).toBe(true);
    expect(ingest.status.find((x) => x.topic === topic)?.qos).toBe(0);
    const batches = worker.stats().batches;
    const mix = Object.fromEntries(
      EFFICIENCY_CLASSES.map((c) => [c, ingest.predictions.filter((p) => p.efficiency === c).length / 100]),
    );
    expect(s).toMatchObject({
      workerId: 'edge-t1',
      publishedAt: now + 1000,
      ready: true,
      modelVersion: '1',
      backend: 'cpu',
      validationAccuracy: 0.9,
      liveAccuracy: 1,
      labelled: 40,
      predictedMix: mix,
      messagesInPerSec: 140, // 100 telemetry + 40 labels in 1 s
      predictionsOutPerSec: 100,
      meanBatchSize: 100 / batches,
      latencyMs: { p50: 4, p95: 9, p99: 9 },
      queueDepth: 0,
      deadLetters: { not_json: 1 },
      bus: 'in-process',
      registry: 'none',
    });

    // a quiet interval: rates 0, no latencies; then half the traffic over the next
    vi.advanceTimersByTime(1000);
    await waitFor(() => ingest.statusOn(topic).length === 2, 'the second status');
    expect(ingest.statusOn(topic)[1]).toMatchObject({
      messagesInPerSec: 0,
      predictionsOutPerSec: 0,
      meanBatchSize: 0,
      latencyMs: { p50: null, p95: null, p99: null },
    });
    for (let seq = 100; seq < 150; seq++) await ingest.telemetry(makeTelemetry('m1', seq, Date.now()));
    await waitFor(() => ingest.predictions.length === 150, '150 predictions');
    vi.advanceTimersByTime(1000);
    await waitFor(() => ingest.statusOn(topic).length === 3, 'the third status');
    expect(ingest.statusOn(topic)[2]).toMatchObject({
      messagesInPerSec: 50,
      predictionsOutPerSec: 50,
      latencyMs: { p50: 0, p95: 0, p99: 0 },
    });

    // stopping: a last status, not ready
    await worker.stop();
    const last = ingest.statusOn(topic).at(-1) as EdgeStatusMessage;
    expect(ingest.statusOn(topic)).toHaveLength(4);
    expect(last.ready).toBe(false);
    expect(edgeStatusMessageSchema.safeParse(last).success).toBe(true);
    expect(worker.stats().status).toMatchObject({ published: 4, failed: 0 });
  });

  it('status publishing is best effort: failures are counted, predictions keep flowing', async () => {
    const ingest = new FakeIngest();
    ingest.failStatus = new Error('broker gone');
    const worker = make({
      ingest,
      initialModel: fakeModel('1'),
      batchSize: 25,
      batchMaxWaitMs: 1,
      driftConfig: { windowSize: 50 },
      driftWindowMinIntervalMs: 0,
      statusIntervalMs: 5,
    });
    await worker.start();
    for (let seq = 0; seq < 100; seq++) await ingest.telemetry(makeTelemetry('m1', seq));
    await new Promise((r) => setTimeout(r, 30));
    await worker.stop();
    expect(ingest.predictions).toHaveLength(100);
    expect(ingest.status).toHaveLength(0);
    const { failed, published } = worker.stats().status;
    expect(published).toBe(0);
    expect(failed).toBeGreaterThanOrEqual(3); // two windows and at least one status
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toContain('driftline_edge_status_publish_failures_total{kind="drift-window"} 2');
  });

  it('works with a transport that cannot publish status, and checks the worker id', async () => {
    const ingest = new FakeIngest();
    Object.defineProperty(ingest, 'publishStatus', { value: undefined });
    const worker = make({
      ingest,
      initialModel: fakeModel('1'),
      batchSize: 25,
      batchMaxWaitMs: 1,
      driftConfig: { windowSize: 50 },
      statusIntervalMs: 5,
    });
    await worker.start();
    for (let seq = 0; seq < 100; seq++) await ingest.telemetry(makeTelemetry('m1', seq));
    await worker.stop();
    expect(ingest.predictions).toHaveLength(100);
    expect(worker.stats().status).toEqual({ published: 0, failed: 0, windowsSkipped: 0 });

    expect(() =>
      createEdgeWorker({ bus: new InProcessBus(), ingest: new FakeIngest(), http: false, workerId: 'a/b' }),
    ).toThrow(/workerId/);
    expect(() =>
      createEdgeWorker({
        bus: new InProcessBus(),
        ingest: new FakeIngest(),
        http: false,
        histogramBins: 101,
      }),
    ).toThrow(/histogramBins/);
  });
});
