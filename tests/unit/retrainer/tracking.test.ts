import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TransportError } from '../../../common/errors.ts';
import type { EpochLog } from '../../../common/model/classifier.ts';
import type { RegisterInfo } from '../../../common/registry/types.ts';
import { MemorySampleStore } from '../../../common/samples/memory-store.ts';
import type { RetrainerConfig } from '../../../retrainer/src/config.ts';
import { retrainOnce } from '../../../retrainer/src/pipeline.ts';
import {
  driftReportJson,
  type RetrainTracking,
  type TrackedRunStart,
  type TrackedRunStatus,
} from '../../../retrainer/src/tracking.ts';
import {
  FakeTrainer,
  MemoryRegistry,
  loadFakeModel,
  makeRequest,
  makeSamples,
  seedLabel,
  type FakeTrainerOptions,
} from '../../../retrainer/src/testing/fakes.ts';
import type { TrainJob, TrainResult, TrainRunOptions } from '../../../retrainer/src/trainer.ts';

const MODEL = 'driftline-efficiency';

/** A tracking fake that records every call in order. */
class FakeTracking implements RetrainTracking {
  readonly kind = 'fake-tracking';
  readonly calls: string[] = [];
  starts: TrackedRunStart[] = [];
  epochs: EpochLog[] = [];
  metrics: Record<string, number> = {};
  tags: Record<string, string> = {};
  status: TrackedRunStatus | undefined;
  failStart: Error | undefined;
  failLogMetrics: Error | undefined;

  async startRun(start: TrackedRunStart) {
    this.calls.push('startRun');
    if (this.failStart) throw this.failStart;
    this.starts.push(start);
    return {
      runId: 'run-123',
      logEpoch: (log: EpochLog) => {
        this.calls.push(`epoch ${log.epoch}`);
        this.epochs.push(log);
      },
      logMetrics: async (m: Record<string, number>) => {
        this.calls.push('logMetrics');
        if (this.failLogMetrics) throw this.failLogMetrics;
        Object.assign(this.metrics, m);
      },
      setTags: async (t: Record<string, string>) => {
        this.calls.push('setTags');
        Object.assign(this.tags, t);
      },
      finish: async (status: TrackedRunStatus) => {
        this.calls.push(`finish ${status}`);
        this.status = status;
      },
    };
  }
}

/** A fake trainer that reports `epochs` epoch logs through `onEpoch` (as the worker trainer forwards them). */
class EpochTrainer extends FakeTrainer {
  constructor(
    options: FakeTrainerOptions,
    private readonly epochCount = 3,
  ) {
    super(options);
  }
  override async train(job: TrainJob, run: TrainRunOptions): Promise<TrainResult> {
    for (let e = 1; e <= this.epochCount; e++)
      run.onEpoch?.({
        epoch: e,
        loss: 1 / e,
        learningRate: 0.01,
        valLoss: 1.1 / e,
        valAccuracy: 0.5 + e / 10,
        valMacroF1: 0.4 + e / 10,
        durationMs: 5,
      });
    return super.train(job, run);
  }
}

/** A registry that records the RegisterInfo it was given. */
class RecordingRegistry extends MemoryRegistry {
  infos: RegisterInfo[] = [];
  override async registerVersion(name: string, dir: string, info: RegisterInfo) {
    this.infos.push(info);
    return super.registerVersion(name, dir, info);
  }
}

describe('retrainOnce experiment tracking (fake tracker)', () => {
  let dir: string;
  let store: MemorySampleStore;
  let registry: RecordingRegistry;
  let tracking: FakeTracking;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-tracking-'));
    store = new MemorySampleStore();
    await store.append(makeSamples(1000, { label: (r) => seedLabel(r, 150) }));
    registry = new RecordingRegistry();
    await registry.seedChampion(MODEL, { kind: 'oracle' });
    tracking = new FakeTracking();
  });
  afterEach(async () => {
    await registry.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const config = (over: Partial<RetrainerConfig> = {}): Partial<RetrainerConfig> => ({
    stateDir: path.join(dir, 'state'),
    minSamples: 200,
    timeoutMs: 5000,
    ...over,
  });
  const request = makeRequest({
    requestId: 'a'.repeat(32),
    correlationId: 'corr-tracking-1',
    kind: 'covariate',
    features: [
      { feature: 'vibrationHz', statistic: 0.42, pvalue: 1e-9 },
      { feature: 'temperatureC', statistic: 0.2, pvalue: 0.001 },
    ],
    window: { fromTs: 1_700_000_000_000, toTs: 1_700_000_000_000 + 10_000_000, sampleFrom: 0, sampleTo: 999 },
  });

  it('records params, per-epoch metrics, holdout metrics and tags, and registers the version from the run', async () => {
    const outcome = await retrainOnce(request, {
      store,
      registry,
      trainer: new EpochTrainer({ spec: { kind: 'oracle', speedShift: 150 } }),
      loadModel: loadFakeModel,
      config: config(),
      tracking,
    });
    expect(outcome.status).toBe('promoted');

    expect(tracking.calls).toEqual([
      'startRun',
      'epoch 1',
      'epoch 2',
      'epoch 3',
      'logMetrics',
      'setTags',
      'finish FINISHED',
    ]);
    const start = tracking.starts[0];
    expect(start?.runName).toBe(`retrain-${'a'.repeat(12)}`);
    expect(start?.params).toMatchObject({
      epochs: expect.any(Number),
      batch_size: expect.any(Number),
      learning_rate: expect.any(Number),
      warm_start: true,
      warm_start_version: '1',
      champion_version: '1',
      window_from_ts: outcome.trainedOn.from,
      window_to_ts: outcome.trainedOn.to,
      samples: outcome.trainedOn.samples,
      train_samples: outcome.trainedOn.train,
      holdout_samples: outcome.trainedOn.holdout,
    });
    expect(start?.tags).toMatchObject({
      'driftline.correlation_id': 'corr-tracking-1',
      'driftline.request_id': 'a'.repeat(32),
      'driftline.drift_kind': 'covariate',
    });
    const report = JSON.parse(start?.tags['driftline.drift_report'] ?? '{}') as {
      features: { feature: string; statistic: number; pvalue: number }[];
    };
    expect(report.features).toEqual([
      { feature: 'vibrationHz', statistic: 0.42, pvalue: 1e-9 },
      { feature: 'temperatureC', statistic: 0.2, pvalue: 0.001 },
    ]);

    expect(tracking.epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
    expect(tracking.metrics).toMatchObject({
      holdout_accuracy: outcome.challenger?.accuracy,
      holdout_macro_f1: outcome.challenger?.macroF1,
      champion_holdout_accuracy: outcome.champion?.accuracy,
      champion_holdout_macro_f1: outcome.champion?.macroF1,
      promote: 1,
    });
    expect(tracking.tags).toMatchObject({
      'driftline.outcome': 'promoted',
      'driftline.model_version': outcome.version,
      'driftline.promoted': 'true',
    });
    expect(registry.infos.at(-1)?.runId).toBe('run-123');
  });

  it('finishes the run with the rejection when the gate says no', async () => {
    const outcome = await retrainOnce(request, {
      store,
      registry,
      trainer: new EpochTrainer({ spec: { kind: 'constant', label: 'Low' } }, 1),
      loadModel: loadFakeModel,
      config: config(),
      tracking,
    });
    expect(outcome.status).toBe('rejected');
    expect(tracking.status).toBe('FINISHED');
    expect(tracking.tags['driftline.outcome']).toBe('rejected');
    expect(tracking.tags['driftline.rejected']).toBe(outcome.reason);
    expect(tracking.metrics.promote).toBe(0);
    expect((await registry.getVersion(MODEL, outcome.version as string))?.status).toBe('rejected');
  });

  it('fails the run when the training fails', async () => {
    const outcome = await retrainOnce(request, {
      store,
      registry,
      trainer: new FakeTrainer({ fail: new Error('boom') }),
      loadModel: loadFakeModel,
      config: config(),
      tracking,
    });
    expect(outcome.status).toBe('failed');
    expect(tracking.status).toBe('FAILED');
    expect(tracking.tags['driftline.outcome']).toBe('failed');
    expect(registry.infos).toHaveLength(1); // the seed only
  });

  it('goes on untracked when the run cannot start or a tracking call fails', async () => {
    tracking.failStart = new Error('tracking down');
    const a = await retrainOnce(request, {
      store,
      registry,
      trainer: new EpochTrainer({ spec: { kind: 'oracle', speedShift: 150 } }),
      loadModel: loadFakeModel,
      config: config(),
      tracking,
    });
    expect(a.status).toBe('promoted');
    expect(registry.infos.at(-1)?.runId).toBeUndefined();

    const other = new FakeTracking();
    other.failLogMetrics = new Error('metrics refused');
    const b = await retrainOnce(makeRequest({ requestId: 'b'.repeat(32) }), {
      store,
      registry,
      trainer: new EpochTrainer({ spec: { kind: 'oracle', speedShift: 150 } }),
      loadModel: loadFakeModel,
      config: config(),
      tracking: other,
    });
    expect(b.status).toBe('rejected'); // the new champion already is the shifted oracle: no gain
    expect(other.status).toBe('FINISHED');
    expect(registry.infos.at(-1)?.runId).toBe('run-123');
  });

  it('throws (retriable) instead of failing when the registry is unreachable at promotion; the champion stays', async () => {
    registry.failSetChampion = new TransportError('registry unreachable');
    const err = await retrainOnce(request, {
      store,
      registry,
      trainer: new EpochTrainer({ spec: { kind: 'oracle', speedShift: 150 } }),
      loadModel: loadFakeModel,
      config: config(),
      tracking,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((await registry.getChampion(MODEL))?.version).toBe('1');
    expect(tracking.status).toBe('FAILED');
    expect(tracking.tags['driftline.outcome']).toBe('error');
  });

  it('runs untracked without a tracker', async () => {
    const outcome = await retrainOnce(request, {
      store,
      registry,
      trainer: new FakeTrainer({ spec: { kind: 'oracle', speedShift: 150 } }),
      loadModel: loadFakeModel,
      config: config(),
    });
    expect(outcome.status).toBe('promoted');
    expect(registry.infos.at(-1)?.runId).toBeUndefined();
  });
});

describe('driftReportJson', () => {
  it('keeps the drift report valid JSON within the tag limit by dropping the least significant features', () => {
    const r = makeRequest({
      kind: 'covariate',
      features: [
        { feature: 'vibrationHz', statistic: 0.5, pvalue: 1e-12 },
        { feature: 'temperatureC', statistic: 0.3, pvalue: 1e-5 },
        { feature: 'powerKw', statistic: 0.1, pvalue: 0.01 },
      ],
    });
    const full = driftReportJson(r);
    expect(JSON.parse(full)).toMatchObject({
      kind: 'covariate',
      features: [{ feature: 'vibrationHz' }, { feature: 'temperatureC' }, { feature: 'powerKw' }],
    });
    const short = driftReportJson(r, full.length - 10);
    expect(short.length).toBeLessThanOrEqual(full.length - 10);
    expect(JSON.parse(short)).toMatchObject({
      droppedFeatures: 1,
      features: [{ feature: 'vibrationHz' }, { feature: 'temperatureC' }],
    });
  });
});
