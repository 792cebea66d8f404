import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import type { Prediction } from '../../../common/schema/telemetry.ts';
import {
  FakeDelivery,
  FakeIngest,
  fakeModel,
  makeTelemetry,
} from '../../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../../edge-inference/src/worker.ts';

/**
 * When the worker acknowledges a telemetry message (releases its delivery, i.e. the MQTT PUBACK): only once it
 * is safe — its prediction published and acknowledged by the broker, or dead-lettered, or a repeat of a reading
 * whose prediction is — so a worker killed before then gets it again. Predictions made from a redelivery are
 * marked.
 */

/** A transport whose prediction publishes wait until `open()` (the broker's PUBACK), or fail. */
class GatedIngest extends FakeIngest {
  attempts = 0;
  fail = false;
  private opened = false;
  private waiting: (() => void)[] = [];
  override async publishPrediction(p: Prediction): Promise<void> {
    this.attempts++;
    if (!this.opened) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.fail) throw new Error('publish failed: connection closed');
    await super.publishPrediction(p);
  }
  open(): void {
    this.opened = true;
    for (const w of this.waiting.splice(0)) w();
  }
}

const workers: EdgeWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

async function start(ingest: FakeIngest, model = fakeModel('1')): Promise<EdgeWorker> {
  const w = createEdgeWorker({
    bus: new InProcessBus(),
    ingest,
    initialModel: model,
    http: false,
    championPollMs: 0,
    statusIntervalMs: 0,
    drift: false,
    accuracy: false,
    batchMaxWaitMs: 1,
  });
  workers.push(w);
  await w.start();
  return w;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const metric = async (w: EdgeWorker, name: string): Promise<number> =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await w.metrics.registry.metrics())?.[1]);

describe('edge worker acknowledgements', () => {
  it('releases a reading only after the broker acknowledged its prediction', async () => {
    const ingest = new GatedIngest();
    await start(ingest);
    const deliveries = Array.from({ length: 5 }, () => new FakeDelivery());
    for (const [seq, d] of deliveries.entries()) await ingest.telemetry(makeTelemetry('m1', seq), d);
    await until(() => ingest.attempts === 5); // predicted, publishes in flight
    await new Promise((r) => setTimeout(r, 20));
    expect(deliveries.map((d) => d.released)).toEqual([0, 0, 0, 0, 0]);
    ingest.open();
    await until(() => deliveries.every((d) => d.released === 1));
    expect(ingest.predictions).toHaveLength(5);
  });

  it('marks a prediction made from a redelivery and counts it', async () => {
    const ingest = new FakeIngest();
    const w = await start(ingest);
    await ingest.telemetry(makeTelemetry('m1', 1), new FakeDelivery(true));
    await ingest.telemetry(makeTelemetry('m1', 2), new FakeDelivery(false));
    await until(() => ingest.predictions.length === 2);
    expect(ingest.predictions.map((p) => [p.seq, p.redelivered])).toEqual([
      [1, true],
      [2, undefined],
    ]);
    expect(await metric(w, 'driftline_edge_redelivered_total')).toBe(1);
  });

  it('acknowledges a repeat together with its original, not before; a later repeat at once', async () => {
    const ingest = new GatedIngest();
    const w = await start(ingest);
    const t = makeTelemetry('m1', 7);
    const original = new FakeDelivery();
    const repeat = new FakeDelivery(true);
    await ingest.telemetry(t, original);
    await ingest.telemetry(t, repeat); // a reconnect's redelivery overtaking its original
    await until(() => ingest.attempts === 1);
    expect([original.released, repeat.released]).toEqual([0, 0]);
    ingest.open();
    await until(() => repeat.released === 1);
    expect(original.released).toBe(1);
    const late = new FakeDelivery(true);
    await ingest.telemetry(t, late);
    expect(late.released).toBe(1);
    expect(ingest.predictions).toHaveLength(1);
    expect(w.stats().predictions).toBe(1);
  });

  it('does not acknowledge a reading whose prediction could not be published (redelivered next session)', async () => {
    const ingest = new GatedIngest();
    const w = await start(ingest);
    ingest.fail = true;
    const d = new FakeDelivery();
    await ingest.telemetry(makeTelemetry('m1', 1), d);
    ingest.open();
    for (let i = 0; i < 500 && (await metric(w, 'driftline_edge_publish_failures_total')) !== 1; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(await metric(w, 'driftline_edge_publish_failures_total')).toBe(1);
    expect(d.released).toBe(0);
  });

  it('acknowledges a reading the model could not predict once it is dead-lettered', async () => {
    const ingest = new FakeIngest();
    const model = fakeModel('1');
    const broken = Object.assign(Object.create(model) as typeof model, {
      predict: () => {
        throw new Error('model exploded');
      },
    });
    await start(ingest, broken);
    const d = new FakeDelivery();
    await ingest.telemetry(makeTelemetry('m1', 1), d);
    await until(() => d.released === 1);
    expect(ingest.deadLetters.map((x) => x.record.reason)).toEqual(['predict_failed']);
  });
});
