import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { parseModelEvent, type ModelEvent } from '../../../common/events/schemas.ts';
import { loadArtifact } from '../../../common/model/artifact.ts';
import { loadTf, type Tf } from '../../../common/model/tf.ts';
import { DirectoryRegistry, type DirectoryRegistryFaults } from '../../../common/registry/directory.ts';
import { openFileSampleStore, type FileSampleStore } from '../../../common/samples/file-store.ts';
import { Rng } from '../../../common/util/rng.ts';
import type { RetrainerConfig } from '../../../retrainer/src/config.ts';
import { retrainOnce } from '../../../retrainer/src/pipeline.ts';
import { createRetrainer, type Retrainer } from '../../../retrainer/src/service.ts';
import { makeRequest, makeSamples, seedLabel } from '../../../retrainer/src/testing/fakes.ts';
import {
  createInThreadTrainer,
  createWorkerTrainer,
  trainAndSave,
  trainWorkerEntry,
  workerBootstrap,
  type Trainer,
} from '../../../retrainer/src/trainer.ts';

/**
 * The retrainer end to end on real tfjs (small data, few epochs): worker and
 * in-thread trainers, the embedded file sample store, the directory
 * registry and the in-process bus.
 */

const run = promisify(execFile);
const MODEL = 'driftline-efficiency';
const T0 = 1_700_000_000_000;
const hex = (n: number): string => n.toString(16).padStart(32, '0');
/** Concept drift: the speed thresholds of the labelling rule move down by 150 units/h. */
const drifted = (r: Parameters<typeof seedLabel>[0]): ReturnType<typeof seedLabel> => seedLabel(r, 150);

let tf: Tf;
let root: string;
/** The champion artifact, trained once on the pre-drift rule. */
let championDir: string;

beforeAll(async () => {
  ({ tf } = await loadTf());
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-retrainer-it-'));
  championDir = path.join(root, 'champion');
  const data = makeSamples(1500, { seed: 11 }).map((s) => ({ row: s.row, label: s.label }));
  await trainAndSave(tf, {
    train: data.slice(0, 1200),
    validation: data.slice(1200),
    hyperparameters: { epochs: 15, batchSize: 64, learningRate: 0.01, seed: 1, classWeight: 'none' },
    outDir: championDir,
    modelName: MODEL,
    source: { test: 'bootstrap' },
  });
});

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

interface Env {
  dir: string;
  store: FileSampleStore;
  registry: DirectoryRegistry;
  bus: InProcessBus;
  config: Partial<RetrainerConfig>;
}
const envs: Env[] = [];

/** A fresh registry holding the champion as version 1, and a store holding `samples`. */
async function setup(
  name: string,
  options: { concept: boolean; samples?: number; faults?: DirectoryRegistryFaults },
): Promise<Env> {
  const dir = path.join(root, name);
  const registry = new DirectoryRegistry({
    root: path.join(dir, 'registry'),
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const v = await registry.registerVersion(MODEL, championDir, {
    correlationId: 'bootstrap',
    metrics: {},
    source: 'test',
  });
  await registry.setChampion(MODEL, v.version, { by: 'test', reason: 'bootstrap' });
  const store = await openFileSampleStore({ dir: path.join(dir, 'samples') });
  await store.append(
    makeSamples(options.samples ?? 2000, { seed: 5, ...(options.concept ? { label: drifted } : {}) }),
  );
  const env: Env = {
    dir,
    store,
    registry,
    bus: new InProcessBus(),
    config: {
      stateDir: path.join(dir, 'state'),
      minSamples: 500,
      epochs: 15,
      minAccuracy: 0.85,
      timeoutMs: 60_000,
    },
  };
  envs.push(env);
  return env;
}

/** A retrainer on env's bus, registry and store with `trainer` (and env's config with `config` over it), started. */
async function startRetrainer(
  env: Env,
  trainer: Trainer,
  config: Partial<Env['config']> = {},
): Promise<Retrainer> {
  const retrainer = createRetrainer({
    bus: env.bus,
    registry: env.registry,
    store: env.store,
    tf,
    config: { ...env.config, ...config },
    trainer,
  });
  await retrainer.start();
  return retrainer;
}

afterEach(async () => {
  for (const e of envs.splice(0)) {
    await e.bus.close();
    await e.store.close();
    await e.registry.close();
  }
});

function modelEvents(bus: InProcessBus): ModelEvent[] {
  return bus.retained(BUS_TOPICS.modelEvents).map((m) => {
    const p = parseModelEvent(m.value);
    if (!p.ok) throw new Error(p.reason);
    return p.value;
  });
}

/** A trainer that shuffles the training labels before training: a challenger that must lose. */
function shuffledLabels(inner: Trainer): Trainer {
  return {
    kind: `shuffled(${inner.kind})`,
    train(job, run) {
      const labels = new Rng(9).shuffle(job.train.map((d) => d.label));
      return inner.train(
        { ...job, train: job.train.map((d, i) => ({ row: d.row, label: labels[i] ?? d.label })) },
        run,
      );
    },
  };
}

describe('retrainer on real tfjs', () => {
  it('trains in the built training thread (dist/train-worker.mjs, plain node, no tsx) as the images and npm start run it', async () => {
    const outdir = `dist/.test-${process.pid}-retrainer`;
    await run(process.execPath, ['scripts/build.mjs', '--outdir', outdir, 'train-worker']);
    onTestFinished(() => fs.rm(outdir, { recursive: true, force: true }));
    const entry = pathToFileURL(path.resolve(outdir, 'train-worker.mjs'));
    expect(trainWorkerEntry(pathToFileURL(path.resolve(outdir, 'retrainer.mjs')).href).href).toBe(entry.href);
    expect(workerBootstrap(entry)).not.toMatch(/tsx/);
    const env = await setup('built', { concept: true });
    const retrainer = await startRetrainer(env, createWorkerTrainer({ entry }));
    await env.bus.publish(
      BUS_TOPICS.retrainRequests,
      MODEL,
      makeRequest({
        requestId: hex(9),
        correlationId: 'built',
        window: { fromTs: T0, toTs: T0 + 2000 * 1000 },
      }),
    );
    await env.bus.idle();
    await retrainer.idle();
    const rec = retrainer.record(hex(9));
    expect(rec?.status, rec?.reason).toBe('promoted');
    await retrainer.close();
  });

  it('promotes a better challenger trained in a worker thread and publishes model-promoted with the correlation id', async () => {
    const env = await setup('promote', { concept: true });
    const retrainer = await startRetrainer(env, createWorkerTrainer());
    const req = makeRequest({
      requestId: hex(1),
      correlationId: 'drift-episode-1',
      window: { fromTs: T0, toTs: T0 + 2000 * 1000 },
    });
    await env.bus.publish(BUS_TOPICS.retrainRequests, MODEL, req);
    await env.bus.idle();
    await retrainer.idle();
    await env.bus.idle();

    const rec = retrainer.record(hex(1));
    expect(rec?.status, rec?.reason).toBe('promoted');
    const champion = await env.registry.getChampion(MODEL);
    expect(champion?.version).toBe('2');
    expect(champion?.tags['driftline.correlation_id']).toBe('drift-episode-1');
    // The stored challenger verifies and loads (what the edge does next).
    const loaded = await loadArtifact(await env.registry.fetchArtifact(MODEL, '2'), tf);
    loaded.dispose();
    const [ev] = modelEvents(env.bus);
    expect(ev).toMatchObject({
      type: 'model-promoted',
      version: '2',
      previousVersion: '1',
      correlationId: 'drift-episode-1',
      requestId: hex(1),
    });
    if (ev?.type === 'model-promoted')
      expect(ev.metrics.accuracy).toBeGreaterThan(ev.previousMetrics?.accuracy ?? 1);
    await retrainer.close();
  });

  it('rejects a worse challenger (shuffled training labels); the champion stays', async () => {
    const env = await setup('reject', { concept: false });
    const outcome = await retrainOnce(
      makeRequest({
        requestId: hex(2),
        kind: 'covariate',
        features: [{ feature: 'temperatureC', statistic: 0.3, pvalue: 0.001 }],
      }),
      {
        store: env.store,
        registry: env.registry,
        tf,
        config: env.config,
        trainer: shuffledLabels(createInThreadTrainer({ tf })),
      },
    );
    expect(outcome.status).toBe('rejected');
    expect(outcome.promoted).toBe(false);
    expect(outcome.challenger?.accuracy).toBeLessThan(outcome.champion?.accuracy ?? 0);
    expect(outcome.reason).toMatch(/not better/);
    expect((await env.registry.getChampion(MODEL))?.version).toBe('1');
    const rejected = await env.registry.getVersion(MODEL, outcome.version as string);
    expect(rejected).toMatchObject({ status: 'rejected', rejectedReason: outcome.reason });
  });

  it('leaves the old champion intact when the process fails between writing the artifact and moving the alias', async () => {
    const crash = { armed: false };
    const env = await setup('crash', {
      concept: true,
      faults: {
        beforeAliasRename: () => {
          if (crash.armed) throw new Error('simulated crash before the alias rename');
        },
      },
    });
    crash.armed = true;
    const outcome = await retrainOnce(makeRequest({ requestId: hex(3) }), {
      store: env.store,
      registry: env.registry,
      tf,
      config: env.config,
      trainer: createInThreadTrainer({ tf }),
    });
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toMatch(/promotion failed: .*simulated crash/);
    expect((await env.registry.getChampion(MODEL))?.version).toBe('1');
    expect((await env.registry.getVersion(MODEL, '2'))?.status).toBe('candidate');
    expect((await env.registry.history(MODEL)).map((h) => h.to)).toEqual(['1']);
    // A new process reading the same registry still gets a verified champion 1.
    const reopened = new DirectoryRegistry({ root: path.join(env.dir, 'registry') });
    expect((await reopened.getChampion(MODEL))?.version).toBe('1');
    (await loadArtifact(await reopened.fetchArtifact(MODEL, '1'), tf)).dispose();
    await reopened.close();
  });

  it('stops a training at the time limit, reports it and keeps the champion', async () => {
    const env = await setup('timeout', { concept: true });
    const retrainer = await startRetrainer(env, createWorkerTrainer(), { timeoutMs: 200 });
    const started = Date.now();
    await retrainer.submit(makeRequest({ requestId: hex(4) }));
    await retrainer.idle();
    await env.bus.idle();
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(retrainer.record(hex(4))?.status).toBe('timed-out');
    expect(modelEvents(env.bus)).toEqual([
      expect.objectContaining({
        type: 'model-rejected',
        reason: 'training timed out after 200 ms',
        championVersion: '1',
      }),
    ]);
    expect((await env.registry.getChampion(MODEL))?.version).toBe('1');
    expect(await env.registry.listVersions(MODEL)).toHaveLength(1);
    await retrainer.close();
  });

  it('trains on a prewarmed spare worker, starts the next spare after a training, and close() ends it', async () => {
    const starts: string[] = [];
    const trainer = createWorkerTrainer({
      prewarm: true,
      prewarmDelayMs: 0,
      onWorkerStart: (role) => starts.push(role),
    });
    const rows = makeSamples(300, { seed: 3, label: drifted }).map((x) => ({ row: x.row, label: x.label }));
    const job = (n: number) => ({
      train: rows.slice(0, 240),
      validation: rows.slice(240),
      hyperparameters: {
        epochs: 3,
        batchSize: 128,
        learningRate: 0.01,
        seed: 1,
        classWeight: 'none' as const,
      },
      outDir: path.join(root, `prewarm-${n}`),
      modelName: MODEL,
      source: {},
      warmStartDir: championDir,
    });
    trainer.prepare?.();
    trainer.prepare?.();
    expect(starts).toEqual(['spare']);
    const first = await trainer.train(job(1), { timeoutMs: 60_000 });
    expect(starts).toEqual(['spare']);
    await vi.waitFor(() => expect(starts).toEqual(['spare', 'spare']), { timeout: 5_000 });
    const second = await trainer.train(job(2), { timeoutMs: 60_000 });
    expect(starts).toEqual(['spare', 'spare']);
    for (const r of [first, second]) {
      expect(r.epochs).toBe(3);
      (await loadArtifact(r.dir, tf)).dispose();
    }
    // The same job trains the same model on a spare as in-thread (the warm-up leaves nothing behind).
    const inThread = await createInThreadTrainer({ tf }).train(job(3), { timeoutMs: 60_000 });
    expect(inThread.validation).toEqual(first.validation);
    await vi.waitFor(() => expect(starts).toHaveLength(3), { timeout: 5_000 });
    await trainer.close?.();
    // After close(): a training still runs, in a thread of its own, and no spare follows it.
    await trainer.train(job(4), { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 100));
    expect(starts).toEqual(['spare', 'spare', 'spare', 'job']);
  });

  it('reports an error raised inside the training worker', async () => {
    const rows = makeSamples(50).map((x) => ({ row: x.row, label: x.label }));
    const job = {
      train: rows,
      validation: rows,
      hyperparameters: {
        epochs: 0,
        batchSize: 64,
        learningRate: 0.01,
        seed: 1,
        classWeight: 'none' as const,
      },
      outDir: path.join(root, 'bad'),
      modelName: MODEL,
      source: {},
    };
    await expect(createWorkerTrainer().train(job, { timeoutMs: 30_000 })).rejects.toMatchObject({
      code: 'TRAINING_FAILED',
      message: expect.stringMatching(/^training failed: RangeError: epochs must be a positive integer/),
    });
  });

  it('trains once when the same request is delivered twice', async () => {
    const env = await setup('duplicate', { concept: true });
    const retrainer = await startRetrainer(env, createInThreadTrainer({ tf }));
    const req = makeRequest({ requestId: hex(5) });
    await env.bus.publish(BUS_TOPICS.retrainRequests, MODEL, req);
    await env.bus.publish(BUS_TOPICS.retrainRequests, MODEL, req);
    await env.bus.idle();
    await retrainer.idle();
    await env.bus.idle();
    expect(await env.registry.listVersions(MODEL)).toHaveLength(2);
    expect(modelEvents(env.bus)).toHaveLength(1);
    await retrainer.close();
  });
});
