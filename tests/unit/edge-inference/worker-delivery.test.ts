import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS, type EventBus } from '../../../common/bus/types.ts';
import { TransportError } from '../../../common/errors.ts';
import { parseRetrainRequest } from '../../../common/events/schemas.ts';
import type { DriftPort } from '../../../edge-inference/src/ports.ts';
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

/**
 * What the worker promises about delivery: a repeated reading (same machineId + seq + ts: a QoS 1
 * redelivery, a device re-sending after a broker restart, a replayed retained message) is predicted and
 * counted once; nothing it owes the bus (labelled samples, the retrain request) is dropped while the bus is
 * down.
 */

const workers: EdgeWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

function make(options: Partial<EdgeWorkerOptions> & { ingest: FakeIngest; bus: EventBus }): EdgeWorker {
  const w = createEdgeWorker({ http: false, championPollMs: 0, statusIntervalMs: 0, ...options });
  workers.push(w);
  return w;
}

/** A drift detector that records the rows it is fed. */
function recordingDrift(): DriftPort & { rows: string[] } {
  const rows: string[] = [];
  return {
    rows,
    update(row, machineId) {
      rows.push(`${machineId}#${(row as { seq: number }).seq}`);
      return { tested: false, alarm: null };
    },
    reset() {},
  };
}

/** An in-process bus whose publishes to `topics` fail while `down` is true. */
class FlakyBus extends InProcessBus {
  down = true;
  failures = 0;
  constructor(private readonly failing: string[]) {
    super();
  }
  override async publish(topic: string, key: string, value: unknown): Promise<void> {
    if (this.down && this.failing.includes(topic)) {
      this.failures++;
      throw new TransportError(`kafka bus: publish to ${topic} failed: connection refused`, {
        retriable: false, // what kafkajs' NumberOfRetriesExceeded maps to: the worker retries anyway
      });
    }
    return super.publish(topic, key, value);
  }
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('edge worker delivery', () => {
  it('predicts a repeated reading (same machineId, seq and ts) once; the drift detector sees it once', async () => {
    const ingest = new FakeIngest();
    const drift = recordingDrift();
    const worker = make({
      ingest,
      bus: new InProcessBus(),
      initialModel: fakeModel('1'),
      drift,
      batchMaxWaitMs: 1,
    });
    await worker.start();
    // 10 machines × 20 readings, each delivered 3 times (a retained replay, a redelivery, a device re-send).
    for (let copy = 0; copy < 3; copy++)
      for (let m = 0; m < 10; m++)
        for (let seq = 0; seq < 20; seq++) await ingest.telemetry(makeTelemetry(`m${m}`, seq, 1_000 + seq));
    // Labels repeated too: joined and scored once.
    for (let copy = 0; copy < 2; copy++)
      for (let seq = 0; seq < 20; seq++)
        await ingest.label({
          machineId: 'm0',
          seq,
          efficiency: ruleLabel(makeTelemetry('m0', seq, 1_000 + seq)),
        });
    await worker.stop();
    const keys = ingest.predictions.map((p) => `${p.machineId}#${p.seq}`);
    expect(keys).toHaveLength(200);
    expect(new Set(keys).size).toBe(200);
    expect(drift.rows).toHaveLength(200);
    expect(new Set(drift.rows).size).toBe(200);
    expect(worker.stats().labelJoin).toMatchObject({ hits: 20, misses: 0 });
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toContain('driftline_edge_duplicates_total{kind="telemetry"} 400');
    expect(metrics).toContain('driftline_edge_duplicates_total{kind="label"} 20');
  });

  it('takes a reused seq with a new ts (a device that restarted its counter) as a new reading', async () => {
    const ingest = new FakeIngest();
    const worker = make({ ingest, bus: new InProcessBus(), initialModel: fakeModel('1'), batchMaxWaitMs: 1 });
    await worker.start();
    for (let seq = 0; seq < 5; seq++) await ingest.telemetry(makeTelemetry('m1', seq, 1_000 + seq));
    for (let seq = 0; seq < 5; seq++) await ingest.telemetry(makeTelemetry('m1', seq, 9_000 + seq));
    await worker.stop();
    expect(ingest.predictions).toHaveLength(10);
  });

  it('keeps labelled samples and the retrain request while the bus is down and delivers them when it returns', async () => {
    const bus = new FlakyBus([BUS_TOPICS.labelledSamples, BUS_TOPICS.retrainRequests]);
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      bus,
      initialModel: fakeModel('1'),
      batchSize: 50,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
      outboxMaxSamples: 100,
      driftConfig: { detector: 'windows', windowSize: 50, consecutive: 1, cooldownSamples: 50, alpha: 0.01 },
      dataQualityConfig: false, // one machine shifted by +60 °C would be a sensor fault, not fleet drift
    });
    await worker.start();
    // 300 labelled readings, shifted so the detector alarms: the outbox (100) fills and the intake waits.
    const intake = (async () => {
      for (let seq = 0; seq < 300; seq++) {
        const t = makeTelemetry('m1', seq);
        await ingest.telemetry({ ...t, temperatureC: t.temperatureC + 60 });
        await ingest.label({ machineId: 'm1', seq, efficiency: ruleLabel(t) });
      }
    })();
    await until(() => bus.failures >= 5);
    let intakeDone = false;
    void intake.then(() => (intakeDone = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(intakeDone).toBe(false); // backpressure: the intake waits instead of dropping
    bus.down = false; // the bus returns
    await intake;
    await worker.stop();
    const samples = bus
      .retained(BUS_TOPICS.labelledSamples)
      .flatMap((m) => (m.value as { samples: { seq: number }[] }).samples.map((s) => s.seq));
    expect(samples).toHaveLength(300);
    expect(new Set(samples).size).toBe(300);
    const requests = bus.retained(BUS_TOPICS.retrainRequests).map((m) => parseRetrainRequest(m.value));
    expect(requests).toHaveLength(1);
    expect(requests[0]?.ok).toBe(true);
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toMatch(
      /driftline_edge_bus_publish_retries_total\{topic="driftline.labelled-samples"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /driftline_edge_bus_publish_retries_total\{topic="driftline.retrain-requests"\} [1-9]/,
    );
    expect(metrics).toContain(
      'driftline_edge_bus_publish_dropped_total{topic="driftline.labelled-samples"} 0',
    );
  });

  it('counts and logs what is still undelivered when it stops with the bus down (never silently)', async () => {
    const bus = new FlakyBus([BUS_TOPICS.labelledSamples]);
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      bus,
      initialModel: fakeModel('1'),
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
      stopGraceMs: 300,
    });
    await worker.start();
    for (let seq = 0; seq < 10; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry(t);
      await ingest.label({ machineId: 'm1', seq, efficiency: ruleLabel(t) });
    }
    await until(() => bus.failures >= 1);
    await worker.stop();
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toMatch(
      /driftline_edge_bus_publish_dropped_total\{topic="driftline.labelled-samples"\} [1-9]/,
    );
  });
});
