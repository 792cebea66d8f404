import { promises as fs } from 'node:fs';
import path from 'node:path';
import { modelEventSchema, type ModelEvent, type ModelMetrics, type RetrainRequest } from '../../common/events/schemas.ts';
import { describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import { evaluate, formatMetrics } from '../../common/model/metrics.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import type { EvalMetrics, LabelledRow, LoadedModel } from '../../common/model/types.ts';
import type { ModelRegistry, ModelVersion } from '../../common/registry/types.ts';
import type { LabelledSampleStore } from '../../common/samples/types.ts';
import { resolveRetrainerConfig, type RetrainerConfig } from './config.ts';
import { buildDataset, type Dataset, type SampleWindow } from './dataset.ts';
import { decidePromotion, type GateDecision } from './gate.ts';
import type { RetrainerMetrics } from './metrics.ts';
import { createInThreadTrainer, createWorkerTrainer, TrainingTimeoutError, type Trainer, type TrainResult } from './trainer.ts';

/**
 * One retrain, without the bus: dataset → train → evaluate → gate →
 * register → promote or reject. The retrainer service runs it for every
 * request; the offline evaluator (`npm run evaluate -- --retrain`) calls it
 * directly on its sample clock.
 *
 * Ordering guarantees: the challenger is registered (a `candidate`) before the
 * `champion` alias moves, so a crash or failure between the two leaves the old
 * champion serving; a rejected challenger stays registered, marked rejected
 * with the reason.
 */

/** What {@link retrainOnce} needs. */
export interface RetrainOnceDeps {
  /** Labelled samples the dataset is read from. */
  store: LabelledSampleStore;
  /** Where the champion comes from and the challenger goes. */
  registry: ModelRegistry;
  /** Logs one line per step, each with the request's correlation id. Default silent. */
  logger?: Logger;
  /** Settings; missing ones take the `retrainerConfigSpec` defaults. */
  config?: Partial<RetrainerConfig>;
  /** Runs the training. Default: a worker thread (`createWorkerTrainer`), or in-thread when `config.inThread`. */
  trainer?: Trainer;
  /** tfjs used to score champion and challenger on the holdout. Default `loadTf()`. */
  tf?: Tf;
  /** Loads an artifact directory to score it on the holdout. Default `loadArtifact(dir, tf)` (checksums verified). */
  loadModel?: (dir: string) => Promise<LoadedModel>;
  /** Scratch directory for training output before registration. Default `<stateDir>/work`. */
  workDir?: string;
  /** Counters and histograms to update. Default none. */
  metrics?: RetrainerMetrics;
}

/** Per-call options of {@link retrainOnce}. */
export interface RetrainOnceOptions {
  /** Use every sample since the window's start instead of stopping at its end (the service does on retries for more data). Default false. */
  extendToLatest?: boolean;
  /** Select the window by `ts` (default: global across edge workers) or by the worker's sample clock (`sampleFrom`/`sampleTo`, falls back to ts when absent). */
  windowBy?: 'ts' | 'sample';
  /** Stops the training (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** How a retrain ended. */
export type RetrainStatus = 'promoted' | 'rejected' | 'failed' | 'timed-out';

/** The result of {@link retrainOnce}. */
export interface RetrainOutcome {
  /** The request's idempotency key. */
  requestId: string;
  /** The request's correlation id (also on every log line of the retrain). */
  correlationId: string;
  /** The registered model retrained. */
  modelName: string;
  /** How it ended; `promoted` is the only status that moved the champion alias. */
  status: RetrainStatus;
  /** The recent data trained on: ts range (`from`/`to`), count, sample-index range, pre-window samples mixed in, split sizes. */
  trainedOn: {
    from: number;
    to: number;
    samples: number;
    fromSample?: number;
    toSample?: number;
    oldSamples: number;
    train: number;
    validation: number;
    holdout: number;
  };
  /** The champion scored on the holdout; null when there was none (or the training failed first). */
  champion: EvalMetrics | null;
  /** The challenger scored on the same holdout; null when the training failed or timed out. */
  challenger: EvalMetrics | null;
  /** True when the challenger is now the champion. */
  promoted: boolean;
  /** Why, in one sentence (the gate's reason, or what failed). */
  reason: string;
  /** The challenger's registered version (promoted or rejected); absent when it never got registered. */
  version?: string;
  /** The champion when the retrain started; absent when there was none. */
  previousVersion?: string;
  /** The gate's detail (rules failed, gains); absent when no evaluation happened. */
  decision?: GateDecision;
  /** The training step alone, ms; absent when it did not start. */
  trainingMs?: number;
  /** The whole retrain, ms. */
  durationMs: number;
}

/** Converts the request's data window for the dataset builder. */
export function requestWindow(request: RetrainRequest, windowBy: 'ts' | 'sample' = 'ts'): SampleWindow {
  const w = request.window;
  if (windowBy === 'sample' && w.sampleFrom !== undefined) return { fromSample: w.sampleFrom, toSample: w.sampleTo };
  return { fromTs: w.fromTs, toTs: w.toTs };
}

/** Scores a model on labelled rows (batched predictions). */
export function scoreModel(model: LoadedModel, rows: readonly LabelledRow[], batch = 4096): EvalMetrics {
  const probabilities: number[][] = [];
  for (let i = 0; i < rows.length; i += batch) {
    const part = rows.slice(i, i + batch);
    for (const p of model.predict(part.map((r) => r.row))) probabilities.push([p.probabilities.Low, p.probabilities.Medium, p.probabilities.High]);
  }
  return evaluate(
    probabilities,
    rows.map((r) => r.label),
  );
}

/** The defaults of {@link RetrainOnceDeps.trainer}. */
export function defaultTrainer(config: Pick<RetrainerConfig, 'inThread'>, tf?: Tf): Trainer {
  return config.inThread ? createInThreadTrainer(tf ? { tf } : {}) : createWorkerTrainer();
}

/**
 * Runs one retrain for `request` (see the module comment). Throws
 * `NotEnoughDataError` (retriable) when the window holds fewer than
 * `minSamples` samples, and registry/store errors it cannot handle; a failed
 * or timed-out training, a rejected challenger or a failed promotion are
 * outcomes, not errors.
 */
export async function retrainOnce(request: RetrainRequest, deps: RetrainOnceDeps, options: RetrainOnceOptions = {}): Promise<RetrainOutcome> {
  const started = performance.now();
  const config = resolveRetrainerConfig(deps.config);
  const log = (deps.logger ?? silentLogger()).child({ correlationId: request.correlationId, requestId: request.requestId, modelName: request.modelName });
  const metrics = deps.metrics;
  const name = request.modelName;

  const dataset: Dataset = await buildDataset(
    deps.store,
    { window: requestWindow(request, options.windowBy), kind: request.kind, extendToLatest: options.extendToLatest },
    {
      minSamples: config.minSamples,
      maxSamples: config.maxSamples,
      oldDataShare: config.oldDataShare,
      oldDataShareConcept: config.oldDataShareConcept,
      holdoutShare: config.holdoutShare,
      validationShare: config.validationShare,
      seed: config.seed,
    },
  );
  const p = dataset.provenance;
  const trainedOn: RetrainOutcome['trainedOn'] = {
    from: p.fromTs,
    to: p.toTs,
    samples: p.samples,
    ...(p.fromSample !== undefined ? { fromSample: p.fromSample, toSample: p.toSample } : {}),
    oldSamples: p.oldSamples,
    train: dataset.train.length,
    validation: dataset.validation.length,
    holdout: dataset.holdout.length,
  };
  const championAtStart: ModelVersion | undefined = await deps.registry.getChampion(name);
  const base = {
    requestId: request.requestId,
    correlationId: request.correlationId,
    modelName: name,
    trainedOn,
    ...(championAtStart ? { previousVersion: championAtStart.version } : {}),
  };
  const finish = (outcome: Omit<RetrainOutcome, keyof typeof base | 'durationMs'>): RetrainOutcome => {
    const result: RetrainOutcome = { ...base, ...outcome, durationMs: performance.now() - started };
    metrics?.trainings.inc({ outcome: result.status });
    metrics?.retrainDuration.observe(result.durationMs / 1000);
    if (result.status === 'promoted') metrics?.promotions.inc();
    else metrics?.rejections.inc({ cause: result.decision?.causes[0] ?? (result.status === 'timed-out' ? 'timed-out' : 'failed') });
    return result;
  };

  const trainer = deps.trainer ?? defaultTrainer(config, deps.tf);
  const workDir = path.resolve(deps.workDir ?? path.join(config.stateDir, 'work'));
  await fs.mkdir(workDir, { recursive: true });
  const jobDir = await fs.mkdtemp(path.join(workDir, 'job-'));
  const loaded: LoadedModel[] = [];
  try {
    // ---- train ---------------------------------------------------------------
    log.info('training started', {
      action: 'training-started',
      trainer: trainer.kind,
      train: trainedOn.train,
      validation: trainedOn.validation,
      holdout: trainedOn.holdout,
      oldSamples: trainedOn.oldSamples,
      window: { fromTs: trainedOn.from, toTs: trainedOn.to, fromSample: trainedOn.fromSample, toSample: trainedOn.toSample },
      kind: request.kind,
      timeoutMs: config.timeoutMs,
    });
    metrics?.inProgress.inc();
    let trained: TrainResult;
    const trainStart = performance.now();
    try {
      // Warm start: fine-tune the champion (verified artifact) rather than learn the task again from a small window.
      const warmStartDir = config.warmStart && championAtStart ? await deps.registry.fetchArtifact(name, championAtStart.version) : undefined;
      trained = await trainer.train(
        {
          train: dataset.train,
          validation: dataset.validation,
          hyperparameters: {
            epochs: config.epochs,
            batchSize: config.batchSize,
            learningRate: warmStartDir !== undefined ? config.warmLearningRate : config.learningRate,
            seed: config.seed,
            classWeight: config.classWeight,
          },
          ...(warmStartDir !== undefined ? { warmStartDir } : {}),
          outDir: path.join(jobDir, 'artifact'),
          modelName: name,
          source: {
            trainer: 'retrainer',
            requestId: request.requestId,
            correlationId: request.correlationId,
            driftKind: request.kind,
            championVersion: request.championVersion,
            warmStartFrom: config.warmStart && championAtStart ? championAtStart.version : null,
            window: { fromTs: trainedOn.from, toTs: trainedOn.to, fromSample: trainedOn.fromSample, toSample: trainedOn.toSample },
            samples: trainedOn.samples,
            oldSamples: trainedOn.oldSamples,
          },
        },
        { timeoutMs: config.timeoutMs, signal: options.signal },
      );
    } catch (err) {
      const trainingMs = performance.now() - trainStart;
      const timedOut = err instanceof TrainingTimeoutError;
      const reason = timedOut ? `training timed out after ${config.timeoutMs} ms` : `training failed: ${describeError(err).replace(/^\w*Error: (training failed: )?/, '')}`;
      metrics?.trainingDuration.observe({ outcome: timedOut ? 'timed-out' : 'failed' }, trainingMs / 1000);
      log.error(timedOut ? 'training timed out' : 'training failed', { action: 'training-finished', outcome: 'failure', reason, durationMs: Math.round(trainingMs) });
      return finish({ status: timedOut ? 'timed-out' : 'failed', champion: null, challenger: null, promoted: false, reason, trainingMs });
    } finally {
      metrics?.inProgress.dec();
    }
    const trainingMs = performance.now() - trainStart;
    metrics?.trainingDuration.observe({ outcome: 'success' }, trainingMs / 1000);
    log.info('training finished', {
      action: 'training-finished',
      outcome: 'success',
      durationMs: Math.round(trainingMs),
      epochs: trained.epochs,
      bestEpoch: trained.bestEpoch,
      backend: trained.backend,
      validationAccuracy: trained.validation.accuracy,
      validationMacroF1: trained.validation.macroF1,
    });

    // ---- evaluate both on the same holdout ------------------------------------
    const loadModel = deps.loadModel ?? (async (dir: string) => loadArtifact(dir, deps.tf ?? (await loadTf(log)).tf));
    let championMetrics: EvalMetrics | null = null;
    if (championAtStart) {
      try {
        const model = await loadModel(await deps.registry.fetchArtifact(name, championAtStart.version));
        loaded.push(model);
        championMetrics = scoreModel(model, dataset.holdout);
      } catch (err) {
        // Fail safe: without the champion's score there is no fair comparison, and the champion stays.
        const reason = `cannot evaluate champion ${championAtStart.version}: ${describeError(err)}`;
        log.error('evaluation failed', { action: 'evaluation', outcome: 'failure', reason });
        return finish({ status: 'failed', champion: null, challenger: null, promoted: false, reason, trainingMs });
      }
    }
    const challengerModel = await loadModel(trained.dir);
    loaded.push(challengerModel);
    const challengerMetrics = scoreModel(challengerModel, dataset.holdout);
    if (championMetrics) metrics?.lastHoldoutAccuracy.set({ role: 'champion' }, championMetrics.accuracy);
    metrics?.lastHoldoutAccuracy.set({ role: 'challenger' }, challengerMetrics.accuracy);
    const decision = decidePromotion(championMetrics ?? undefined, challengerMetrics, {
      minGain: config.minGain,
      maxMacroF1Drop: config.maxMacroF1Drop,
      minAccuracy: config.minAccuracy,
    });
    log.info('evaluation', {
      action: 'evaluation',
      holdout: dataset.holdout.length,
      championVersion: championAtStart?.version,
      champion: championMetrics ? formatMetrics(championMetrics) : 'none',
      challenger: formatMetrics(challengerMetrics),
      championAccuracy: championMetrics?.accuracy,
      challengerAccuracy: challengerMetrics.accuracy,
      championMacroF1: championMetrics?.macroF1,
      challengerMacroF1: challengerMetrics.macroF1,
      promote: decision.promote,
    });

    // ---- register before any alias move ---------------------------------------
    const registered = await deps.registry.registerVersion(name, trained.dir, {
      correlationId: request.correlationId,
      requestId: request.requestId,
      source: 'retrainer',
      metrics: {
        // The registry contract's names (what the bootstrap records too): quality on the recent holdout.
        accuracy: challengerMetrics.accuracy,
        macroF1: challengerMetrics.macroF1,
        samples: challengerMetrics.samples,
        logLoss: challengerMetrics.logLoss,
        holdout_accuracy: challengerMetrics.accuracy,
        holdout_macro_f1: challengerMetrics.macroF1,
        holdout_log_loss: challengerMetrics.logLoss,
        holdout_samples: challengerMetrics.samples,
        validation_accuracy: trained.validation.accuracy,
        validation_macro_f1: trained.validation.macroF1,
        train_samples: trained.samples,
        old_samples: trainedOn.oldSamples,
        training_ms: Math.round(trainingMs),
        ...(championMetrics ? { champion_holdout_accuracy: championMetrics.accuracy, champion_holdout_macro_f1: championMetrics.macroF1 } : {}),
      },
      tags: {
        'retrain.kind': request.kind,
        'retrain.champion_version': championAtStart?.version ?? 'none',
        'retrain.window_from_ts': String(trainedOn.from),
        'retrain.window_to_ts': String(trainedOn.to),
        'retrain.backend': trained.backend,
      },
    });
    const version = registered.version;
    const evaluated = { champion: championMetrics, challenger: challengerMetrics, decision, trainingMs, version };

    if (!decision.promote) {
      try {
        await deps.registry.markRejected(name, version, decision.reason, request.correlationId);
      } catch (err) {
        log.warn('could not mark the challenger rejected in the registry', { version, err: describeError(err) });
      }
      log.info('rejected', { action: 'rejected', outcome: 'rejected', version, championVersion: championAtStart?.version, reason: decision.reason });
      return finish({ ...evaluated, status: 'rejected', promoted: false, reason: decision.reason });
    }

    // ---- promote ---------------------------------------------------------------
    try {
      await deps.registry.setChampion(name, version, { by: 'retrainer', reason: decision.reason, correlationId: request.correlationId });
    } catch (err) {
      // The alias may have moved before the error (e.g. the history append failed): ask the registry.
      const now = await deps.registry.getChampion(name).catch(() => undefined);
      if (now?.version !== version) {
        const reason = `promotion failed: ${describeError(err)}`;
        log.error('promotion failed; the champion stays', { action: 'promoted', outcome: 'failure', version, championVersion: now?.version, reason });
        return finish({ ...evaluated, status: 'failed', promoted: false, reason });
      }
      log.warn('setChampion reported an error but the alias moved', { version, err: describeError(err) });
    }
    log.info('promoted', { action: 'promoted', outcome: 'success', version, previousVersion: championAtStart?.version, reason: decision.reason });
    return finish({ ...evaluated, status: 'promoted', promoted: true, reason: decision.reason });
  } finally {
    for (const m of loaded) m.dispose();
    await fs.rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Metrics for a model event (the schema's subset of EvalMetrics). */
export function eventMetrics(m: EvalMetrics | null | undefined): ModelMetrics {
  if (!m) return { samples: 0, accuracy: 0, macroF1: 0 };
  const clip = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);
  return { samples: m.samples, accuracy: clip(m.accuracy), macroF1: clip(m.macroF1), ...(Number.isFinite(m.logLoss) && m.logLoss >= 0 ? { logLoss: m.logLoss } : {}) };
}

/** The version a model-rejected event names when no version was registered. */
export function provisionalVersion(requestId: string): string {
  return `candidate-${requestId.slice(0, 12)}`;
}

/**
 * The `model-promoted` or `model-rejected` event describing an outcome
 * (failed and timed-out trainings are reported as `model-rejected` with the
 * reason). Validated against the event schema.
 */
export function modelEventFor(outcome: RetrainOutcome, request: RetrainRequest, at: number): ModelEvent {
  const common = { modelName: outcome.modelName, correlationId: outcome.correlationId, requestId: outcome.requestId, reason: outcome.reason.slice(0, 1000), at };
  const event: ModelEvent = outcome.promoted
    ? {
        type: 'model-promoted',
        ...common,
        version: outcome.version as string,
        previousVersion: outcome.previousVersion ?? null,
        metrics: eventMetrics(outcome.challenger),
        ...(outcome.champion ? { previousMetrics: eventMetrics(outcome.champion) } : {}),
      }
    : {
        type: 'model-rejected',
        ...common,
        version: outcome.version ?? provisionalVersion(outcome.requestId),
        championVersion: outcome.previousVersion ?? request.championVersion,
        metrics: eventMetrics(outcome.challenger),
        ...(outcome.champion ? { championMetrics: eventMetrics(outcome.champion) } : {}),
      };
  return modelEventSchema.parse(event);
}

/** A `model-rejected` event for a request that ended without a training (not enough data, an unexpected error). */
export function failureEvent(request: RetrainRequest, reason: string, at: number): ModelEvent {
  return modelEventSchema.parse({
    type: 'model-rejected',
    modelName: request.modelName,
    correlationId: request.correlationId,
    requestId: request.requestId,
    reason: reason.slice(0, 1000),
    at,
    version: provisionalVersion(request.requestId),
    championVersion: request.championVersion,
    metrics: eventMetrics(null),
  });
}
