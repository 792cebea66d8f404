import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { ArtifactError } from '../../../common/errors.ts';
import { parseRetrainRequest } from '../../../common/events/schemas.ts';
import type { LoadedModel } from '../../../common/model/types.ts';
import { labelledSampleSchema, type LabelledSample } from '../../../common/samples/types.ts';
import { predictionSchema, type Telemetry } from '../../../common/schema/telemetry.ts';
import type { ChampionRef, RegistryPort } from '../../../edge-inference/src/ports.ts';
import {
  FakeIngest,
  fakeModel,
  makeTelemetry,
  ruleLabel,
  type FakeModel,
  type PredictCall,
} from '../../../edge-inference/src/testing/fakes.ts';
import {
  createEdgeWorker,
  type EdgeWorker,
  type EdgeWorkerOptions,
} from '../../../edge-inference/src/worker.ts';

const workers: EdgeWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

function make(options: Partial<EdgeWorkerOptions> & { ingest: FakeIngest; bus: InProcessBus }): EdgeWorker {
  const w = createEdgeWorker({ http: false, championPollMs: 0, ...options });
  workers.push(w);
  return w;
}

/** A started worker on model 1 with 1 ms batch waits (or `options`), its bus and ingest: the label-join tests' set-up. */
async function startLabelWorker(
  options: Omit<Partial<EdgeWorkerOptions>, 'ingest' | 'bus'> = {},
): Promise<{ bus: InProcessBus; ingest: FakeIngest; worker: EdgeWorker }> {
  const bus = new InProcessBus();
  const ingest = new FakeIngest();
  const worker = make({
    ingest,
    bus,
    initialModel: fakeModel('1'),
    batchMaxWaitMs: 1,
    sampleBatchMaxWaitMs: 1,
    ...options,
  });
  await worker.start();
  return { bus, ingest, worker };
}

/** Every labelled sample the worker published on the bus, in order. */
function labelledSamples(bus: InProcessBus): LabelledSample[] {
  return bus
    .retained(BUS_TOPICS.labelledSamples)
    .flatMap((m) => (m.value as { samples: LabelledSample[] }).samples);
}

/** A registry whose artifacts are fake models; `corrupt` versions fail their checksum. */
function fakeRegistry(
  champion: string | undefined,
  log?: PredictCall[],
  corrupt: string[] = [],
): RegistryPort & { champion: string | undefined; models: Map<string, FakeModel> } {
  const models = new Map<string, FakeModel>();
  const reg = {
    champion,
    models,
    async getChampion(name: string): Promise<ChampionRef | undefined> {
      return reg.champion === undefined ? undefined : { name, version: reg.champion };
    },
    async fetchArtifact(_name: string, version: string): Promise<string> {
      if (corrupt.includes(version))
        throw new ArtifactError(`version ${version}: weights.bin sha256 mismatch`);
      return `/registry/${version}`;
    },
    async getVersion() {
      return {}; // signatures are not checked here (no modelTrust)
    },
  };
  return reg;
}

function loaderFor(
  reg: { models: Map<string, FakeModel> },
  log?: PredictCall[],
): (dir: string) => Promise<LoadedModel> {
  return async (dir) => {
    const version = dir.split('/').pop() as string;
    const m = fakeModel(`artifact-${version}`, log ? { log } : {});
    reg.models.set(version, m);
    return m;
  };
}

describe('edge worker (fake transport)', () => {
  it('never mixes two models in one batch while models are swapped under load', async () => {
    const log: PredictCall[] = [];
    const ingest = new FakeIngest();
    const models = ['1', '2', '3', '4', '5'].map((v) => fakeModel(v, { log }));
    const worker = make({
      ingest,
      bus: new InProcessBus(),
      initialModel: models[0] as FakeModel,
      batchSize: 16,
      batchMaxWaitMs: 1,
      maxQueue: 64,
    });
    await worker.start();
    const total = 2000;
    let swaps = 0;
    for (let seq = 0; seq < total; seq++) {
      await ingest.telemetry(makeTelemetry(`m${seq % 7}`, seq));
      if (seq % 500 === 250) worker.holder.swap(models[++swaps] as FakeModel);
    }
    await worker.stop();
    // every seq predicted exactly once
    const seqs = ingest.predictions.map((p) => p.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i));
    // each predict call is one model; each prediction reports the model that predicted it
    const versionOfSeq = new Map<number, string>();
    for (const call of log) for (const r of call.rows) versionOfSeq.set((r as Telemetry).seq, call.version);
    for (const p of ingest.predictions) {
      expect(predictionSchema.safeParse(p).success).toBe(true);
      expect(p.modelVersion).toBe(versionOfSeq.get(p.seq));
    }
    // versions change only at batch boundaries, and only forwards
    const order = log.map((c) => Number(c.version));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(new Set(order).size).toBe(5);
    for (const m of models.slice(0, 4)) expect(m.disposed).toBe(true);
  });

  it('joins delayed labels and publishes labelled samples; counts misses', async () => {
    const { bus, ingest, worker } = await startLabelWorker();
    for (let seq = 0; seq < 10; seq++) await ingest.telemetry(makeTelemetry('m1', seq));
    await new Promise((r) => setTimeout(r, 20));
    for (let seq = 0; seq < 10; seq++)
      await ingest.label({ machineId: 'm1', seq, efficiency: ruleLabel(makeTelemetry('m1', seq)) });
    await ingest.label({ machineId: 'm1', seq: 999, efficiency: 'Low' });
    await worker.stop();
    const samples = labelledSamples(bus);
    expect(samples).toHaveLength(10);
    for (const s of samples) expect(labelledSampleSchema.safeParse(s).success).toBe(true);
    expect(samples[0]).toMatchObject({ machineId: 'm1', seq: 0, modelVersion: '1', sampleIndex: 0 });
    // seq 999 never had a reading: its label waits for one (held), not yet a miss.
    expect(worker.stats().labelJoin).toMatchObject({ hits: 10, misses: 0, early: 1, earlyJoined: 0 });
    expect(worker.stats().liveAccuracy).toBe(1);
  });

  it('joins a label that overtook its reading (another topic, another publisher) once the reading comes', async () => {
    const { bus, ingest, worker } = await startLabelWorker();
    // Labels first, for readings 0-9; then the readings.
    for (let seq = 0; seq < 10; seq++)
      await ingest.label({ machineId: 'm1', seq, efficiency: ruleLabel(makeTelemetry('m1', seq)) });
    expect(worker.stats().labelJoin).toMatchObject({ hits: 0, misses: 0, early: 10 });
    for (let seq = 0; seq < 10; seq++) await ingest.telemetry(makeTelemetry('m1', seq));
    await new Promise((r) => setTimeout(r, 20));
    await worker.stop();
    const samples = labelledSamples(bus);
    expect(samples.map((s) => s.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    for (const s of samples) {
      expect(labelledSampleSchema.safeParse(s).success).toBe(true);
      expect(s.label).toBe(ruleLabel(makeTelemetry('m1', s.seq)));
      expect(s.prediction).toBeDefined();
    }
    expect(worker.stats().labelJoin).toMatchObject({
      hits: 10,
      misses: 0,
      early: 0,
      earlyJoined: 10,
      pending: 0,
    });
    expect(worker.stats().liveAccuracy).toBe(1);
  });

  it('counts a held label as a miss once it waited longer than labelJoinEarlyMaxAgeMs', async () => {
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      bus: new InProcessBus(),
      initialModel: fakeModel('1'),
      labelJoinEarlyMaxAgeMs: 30,
    });
    await worker.start();
    await ingest.label({ machineId: 'm1', seq: 7, efficiency: 'Low' });
    expect(worker.stats().labelJoin).toMatchObject({ misses: 0, early: 1 });
    await new Promise((r) => setTimeout(r, 60));
    expect(worker.stats().labelJoin).toMatchObject({ misses: 1, early: 0 });
    // Its reading, late: predicted, and waits for a label like any other.
    await ingest.telemetry(makeTelemetry('m1', 7));
    await worker.stop();
    expect(worker.stats().labelJoin).toMatchObject({ hits: 0, misses: 1, earlyJoined: 0 });
  });

  it('dead-letters a batch the model fails on instead of losing it, and keeps going', async () => {
    const ingest = new FakeIngest();
    const broken = fakeModel('1');
    const predict = broken.predict.bind(broken);
    let fail = true;
    (broken as { predict: typeof predict }).predict = (rows) => {
      if (fail) throw new Error('tensor shape mismatch');
      return predict(rows);
    };
    const worker = make({
      ingest,
      bus: new InProcessBus(),
      initialModel: broken,
      batchSize: 4,
      batchMaxWaitMs: 1,
    });
    await worker.start();
    for (let seq = 0; seq < 4; seq++) await ingest.telemetry(makeTelemetry('m3', seq));
    await new Promise((r) => setTimeout(r, 20));
    fail = false;
    for (let seq = 4; seq < 8; seq++) await ingest.telemetry(makeTelemetry('m3', seq));
    await worker.stop();
    expect(ingest.deadLetters.map((d) => d.record.reason)).toEqual([
      'predict_failed',
      'predict_failed',
      'predict_failed',
      'predict_failed',
    ]);
    expect(ingest.predictions.map((p) => p.seq)).toEqual([4, 5, 6, 7]);
  });

  it('matches a label that overtakes its reading still queued for prediction', async () => {
    const { bus, ingest, worker } = await startLabelWorker({ batchSize: 64, batchMaxWaitMs: 60_000 });
    for (let seq = 0; seq < 5; seq++) await ingest.telemetry(makeTelemetry('m2', seq));
    expect(ingest.predictions).toHaveLength(0); // still queued
    for (let seq = 0; seq < 5; seq++) await ingest.label({ machineId: 'm2', seq, efficiency: 'Low' });
    await worker.stop(); // drains the batch: predictions made, the parked labels complete their samples
    const samples = labelledSamples(bus);
    expect(samples).toHaveLength(5);
    expect(samples.map((x) => (x as { seq: number }).seq).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(worker.stats().labelJoin).toMatchObject({ hits: 5, misses: 0, pending: 0 });
  });

  it('raises a covariate alarm on shifted data and publishes one retrain request per episode', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = make({
      ingest,
      bus,
      initialModel: fakeModel('1'),
      batchSize: 50,
      batchMaxWaitMs: 1,
      driftConfig: { detector: 'windows', windowSize: 50, consecutive: 1, cooldownSamples: 50, alpha: 0.01 },
    });
    await worker.start();
    for (let seq = 0; seq < 400; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry({ ...t, temperatureC: t.temperatureC + 60 });
    }
    await worker.stop();
    const requests = bus.retained(BUS_TOPICS.retrainRequests).map((m) => parseRetrainRequest(m.value));
    expect(worker.stats().alarms.covariate).toBeGreaterThan(1);
    expect(requests).toHaveLength(1);
    const r = requests[0];
    expect(r?.ok).toBe(true);
    if (!r?.ok) return;
    expect(r.value).toMatchObject({
      kind: 'covariate',
      modelName: 'driftline-efficiency',
      championVersion: '1',
      groupKey: 'all',
    });
    expect(r.value.features.map((f) => f.feature)).toContain('temperatureC');
    expect(r.value.correlationId).toMatch(/^[0-9a-f-]{36}$/);
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toMatch(/driftline_edge_drift_p_value\{feature="temperatureC"\} [0-9.e-]+/);
    expect(metrics).toContain('driftline_edge_retrain_requests_total 1');
  });

  it('loads a promoted champion from the registry; refuses a corrupt one and keeps serving', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const reg = fakeRegistry('1', undefined, ['3']);
    const worker = make({ ingest, bus, modelRegistry: reg, loader: loaderFor(reg), batchMaxWaitMs: 1 });
    await worker.start();
    expect(worker.holder.version).toBe('1');
    const event = (type: string, version: string): Record<string, unknown> => ({
      type,
      modelName: 'driftline-efficiency',
      version,
      ...(type === 'model-promoted'
        ? { previousVersion: '1', metrics: { samples: 10, accuracy: 0.9, macroF1: 0.9 } }
        : { fromVersion: '2' }),
      correlationId: 'corr-1',
      requestId: null,
      reason: 'test',
      at: Date.now(),
    });
    reg.champion = '2';
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', event('model-promoted', '2'));
    await bus.idle();
    expect(worker.holder.version).toBe('2');
    expect(reg.models.get('1')?.disposed).toBe(true);
    reg.champion = '3';
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', event('model-promoted', '3'));
    await bus.idle();
    expect(worker.holder.version).toBe('2');
    expect(worker.stats().refusedLoads).toBe(1);
    await ingest.telemetry(makeTelemetry('m1', 1));
    await new Promise((r) => setTimeout(r, 20));
    expect(ingest.predictions.at(-1)?.modelVersion).toBe('2');
    reg.champion = '1';
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', event('model-rolled-back', '1'));
    await bus.idle();
    expect(worker.holder.version).toBe('1');
  });

  it('acts on the registry champion only: a forged model-promoted event for a rejected version moves nothing', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    // The registry knows versions 1 (champion) and 2 (marked rejected); the event names 2.
    const reg = fakeRegistry('1');
    const worker = make({ ingest, bus, modelRegistry: reg, loader: loaderFor(reg), batchMaxWaitMs: 1 });
    await worker.start();
    const forged = {
      type: 'model-promoted',
      modelName: 'driftline-efficiency',
      version: '2',
      previousVersion: '1',
      metrics: { samples: 10, accuracy: 0.99, macroF1: 0.99 },
      correlationId: 'forged',
      requestId: null,
      reason: 'forged',
      at: Date.now(),
    };
    for (let i = 0; i < 3; i++) await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', forged);
    await bus.idle();
    expect(worker.holder.version).toBe('1');
    expect(reg.models.has('2')).toBe(false); // never even fetched
    await ingest.telemetry(makeTelemetry('m1', 1));
    await new Promise((r) => setTimeout(r, 20));
    expect(ingest.predictions.at(-1)?.modelVersion).toBe('1');
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toContain('driftline_edge_model_events_ignored_total{reason="not_champion"} 3');
    // A hint is still a hint: an event (even a stale one) makes the worker look, and it follows the alias.
    reg.champion = '4';
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', forged);
    await bus.idle();
    expect(worker.holder.version).toBe('4');
  });

  it('is not ready until a champion exists, then loads it', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const reg = fakeRegistry(undefined);
    const worker = make({ ingest, bus, modelRegistry: reg, loader: loaderFor(reg), championPollMs: 50 });
    const starting = worker.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(worker.ready()).toBe(false);
    expect(ingest.connected).toBe(false);
    reg.champion = '7';
    await starting;
    expect(worker.ready()).toBe(true);
    expect(worker.holder.version).toBe('7');
  });
});
