import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  modelEventSchema,
  type ModelEvent,
  type ModelMetrics,
  type RetrainRequest,
} from '../../common/events/schemas.ts';
import { describeError, isRetriable } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import type { EpochLog } from '../../common/model/classifier.ts';
import { evaluate, formatMetrics } from '../../common/model/evaluation.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import type { EvalMetrics, LabelledRow, LoadedModel } from '../../common/model/types.ts';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';
import type { ModelRegistry, ModelVersion } from '../../common/registry/types.ts';
import type { LabelledSampleStore } from '../../common/samples/types.ts';
import { resolveRetrainerConfig, type RetrainerConfig } from './config.ts';
import { buildDataset, type Dataset, type SampleWindow } from './dataset.ts';
import { decidePromotion, type GateDecision } from './gate.ts';
import type { RetrainerMetrics } from './metrics.ts';
import { createMlflowTracking, driftReportJson } from './mlflow-tracking.ts';
import {
  createInThreadTrainer,
  createWorkerTrainer,
  TrainingTimeoutError,
  type Trainer,
  type TrainResult,
} from './trainer.ts';

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
 *
 * Experiment tracking (optional, {@link RetrainOnceDeps.tracking}; automatic
 * with an `MlflowRegistry`): each retrain is a run with the hyper-parameters,
 * window and sample counts as params, the per-epoch curves, the holdout
 * metrics of champion and challenger, the request's correlation id and drift
 * report as tags; the challenger is registered from that run. Tracking is
 * best effort: a failed tracking call is logged and never fails the retrain.
 *
 * Retriable infrastructure errors (the registry unreachable while the champion
 * is scored or the alias moves) are thrown, not turned into a `failed`
 * outcome, so the service retries the request later; the champion stays.
 */

/** Status a tracked run ends with. */
export type TrackedRunStatus = 'FINISHED' | 'FAILED' | 'KILLED';

/** What a tracked retrain records when it starts. */
export interface TrackedRunStart {
  /** Run name (`retrain-<request id prefix>`). */
  runName: string;
  /** Hyper-parameters, window bounds, sample counts, warm-start version… (immutable). */
  params: Record<string, string | number | boolean>;
  /** Correlation id, request id, drift kind, drift report (JSON)… */
  tags: Record<string, string>;
}

/** One tracked retrain (an MLflow run). Calls other than `startRun` may fail; the retrain logs and goes on. */
export interface TrackedRun {
  /** The run id; the challenger is registered from this run. */
  readonly runId: string;
  /** One finished epoch (fire and forget: the tracker queues the write). */
  logEpoch(log: EpochLog): void;
  /** Metrics at step 0 (holdout scores); waits for queued epoch writes first. */
  logMetrics(metrics: Record<string, number>): Promise<void>;
  /** Adds or overwrites tags (outcome, registered version). */
  setTags(tags: Record<string, string>): Promise<void>;
  /** Ends the run. */
  finish(status: TrackedRunStatus): Promise<void>;
}

/** Experiment tracking of retrains (see the module comment). */
export interface RetrainTracking {
  /** For logs: `mlflow http://…`. */
  readonly kind: string;
  /** Starts the run of one retrain. */
  startRun(start: TrackedRunStart): Promise<TrackedRun>;
}

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
  /**
   * Experiment tracking of each retrain. Default: an MLflow run (experiment
   * `driftline`) when `registry` is an `MlflowRegistry`, none otherwise;
   * `false` turns it off.
   */
  tracking?: RetrainTracking | false;
}

/** The tracking a retrain uses: the given one, MLflow runs for an `MlflowRegistry`, or none. */
export function resolveTracking(
  deps: Pick<RetrainOnceDeps, 'tracking' | 'registry' | 'logger'>,
): RetrainTracking | undefined {
  if (deps.tracking === false) return undefined;
  if (deps.tracking) return deps.tracking;
  return deps.registry instanceof MlflowRegistry
    ? createMlflowTracking(deps.registry, deps.logger ? { logger: deps.logger } : {})
    : undefined;
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
  if (windowBy === 'sample' && w.sampleFrom !== undefined)
    return { fromSample: w.sampleFrom, toSample: w.sampleTo };
  return { fromTs: w.fromTs, toTs: w.toTs };
}

/** Scores a model on labelled rows (batched predictions). */
export function scoreModel(model: LoadedModel, rows: readonly LabelledRow[], batch = 4096): EvalMetrics {
  const probabilities: number[][] = [];
  for (let i = 0; i < rows.length; i += batch) {
    const part = rows.slice(i, i + batch);
    for (const p of model.predict(part.map((r) => r.row)))
      probabilities.push([p.probabilities.Low, p.probabilities.Medium, p.probabilities.High]);
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
export async function retrainOnce(
  request: RetrainRequest,
  deps: RetrainOnceDeps,
  options: RetrainOnceOptions = {},
): Promise<RetrainOutcome> {
  const started = performance.now();
  const config = resolveRetrainerConfig(deps.config);
  const log = (deps.logger ?? silentLogger()).child({
    correlationId: request.correlationId,
    requestId: request.requestId,
    modelName: request.modelName,
  });
  const metrics = deps.metrics;
  const name = request.modelName;

  const dataset: Dataset = await buildDataset(
    deps.store,
    {
      window: requestWindow(request, options.windowBy),
      kind: request.kind,
      extendToLatest: options.extendToLatest,
    },
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
    else
      metrics?.rejections.inc({
        cause: result.decision?.causes[0] ?? (result.status === 'timed-out' ? 'timed-out' : 'failed'),
      });
    return result;
  };

  const trainer = deps.trainer ?? defaultTrainer(config, deps.tf);
  const workDir = path.resolve(deps.workDir ?? path.join(config.stateDir, 'work'));
  await fs.mkdir(workDir, { recursive: true });
  const jobDir = await fs.mkdtemp(path.join(workDir, 'job-'));
  const loaded: LoadedModel[] = [];
  const warmStartVersion = config.warmStart && championAtStart ? championAtStart.version : undefined;
  const hyperparameters = {
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: warmStartVersion !== undefined ? config.warmLearningRate : config.learningRate,
    seed: config.seed,
    classWeight: config.classWeight,
  };

  // ---- tracking (best effort) -------------------------------------------------
  const tracking = resolveTracking(deps);
  let run: TrackedRun | undefined;
  const tracked = async (what: string, call: (r: TrackedRun) => Promise<void>): Promise<void> => {
    if (!run) return;
    try {
      await call(run);
    } catch (err) {
      log.warn(`experiment tracking: ${what} failed`, { runId: run.runId, err: describeError(err) });
    }
  };
  if (tracking) {
    try {
      run = await tracking.startRun({
        runName: `retrain-${request.requestId.slice(0, 12)}`,
        params: retrainParams(hyperparameters, trainedOn, {
          trainer: trainer.kind,
          warmStartVersion,
          championVersion: championAtStart?.version,
          config,
        }),
        tags: retrainRunTags(request, championAtStart?.version),
      });
      log.info('experiment run started', {
        action: 'tracking-started',
        tracking: tracking.kind,
        runId: run.runId,
      });
    } catch (err) {
      log.warn('experiment tracking: cannot start the run; the retrain goes on untracked', {
        tracking: tracking.kind,
        err: describeError(err),
      });
    }
  }
  let runStatus: TrackedRunStatus = 'FAILED';
  const endTags: Record<string, string> = {};
  const outcomeTags = (outcome: RetrainOutcome): RetrainOutcome => {
    runStatus = outcome.status === 'promoted' || outcome.status === 'rejected' ? 'FINISHED' : 'FAILED';
    Object.assign(endTags, {
      'driftline.outcome': outcome.status,
      'driftline.promoted': String(outcome.promoted),
      'driftline.reason': outcome.reason.slice(0, 5000),
      ...(outcome.version !== undefined ? { 'driftline.model_version': outcome.version } : {}),
      ...(outcome.status === 'rejected' ? { 'driftline.rejected': outcome.reason.slice(0, 5000) } : {}),
    });
    return outcome;
  };

  try {
    // ---- train ---------------------------------------------------------------
    log.info('training started', {
      action: 'training-started',
      trainer: trainer.kind,
      train: trainedOn.train,
      validation: trainedOn.validation,
      holdout: trainedOn.holdout,
      oldSamples: trainedOn.oldSamples,
      window: {
        fromTs: trainedOn.from,
        toTs: trainedOn.to,
        fromSample: trainedOn.fromSample,
        toSample: trainedOn.toSample,
      },
      kind: request.kind,
      timeoutMs: config.timeoutMs,
      ...(run ? { runId: run.runId } : {}),
    });
    metrics?.inProgress.inc();
    let trained: TrainResult;
    const trainStart = performance.now();
    const epochs: EpochLog[] = [];
    try {
      // Warm start: fine-tune the champion (verified artifact) rather than learn the task again from a small window.
      const warmStartDir =
        warmStartVersion !== undefined
          ? await deps.registry.fetchArtifact(name, warmStartVersion)
          : undefined;
      const onEpoch = (epoch: EpochLog): void => {
        epochs.push(epoch);
        try {
          run?.logEpoch(epoch);
        } catch (err) {
          log.warn('experiment tracking: logging an epoch failed', {
            epoch: epoch.epoch,
            err: describeError(err),
          });
        }
      };
      trained = await trainer.train(
        {
          train: dataset.train,
          validation: dataset.validation,
          hyperparameters,
          ...(warmStartDir !== undefined ? { warmStartDir } : {}),
          outDir: path.join(jobDir, 'artifact'),
          modelName: name,
          source: {
            trainer: 'retrainer',
            requestId: request.requestId,
            correlationId: request.correlationId,
            driftKind: request.kind,
            championVersion: request.championVersion,
            warmStartFrom: warmStartVersion ?? null,
            window: {
              fromTs: trainedOn.from,
              toTs: trainedOn.to,
              fromSample: trainedOn.fromSample,
              toSample: trainedOn.toSample,
            },
            samples: trainedOn.samples,
            oldSamples: trainedOn.oldSamples,
            ...(run ? { runId: run.runId } : {}),
          },
        },
        { timeoutMs: config.timeoutMs, signal: options.signal, onEpoch },
      );
    } catch (err) {
      const trainingMs = performance.now() - trainStart;
      const timedOut = err instanceof TrainingTimeoutError;
      const reason = timedOut
        ? `training timed out after ${config.timeoutMs} ms`
        : `training failed: ${describeError(err).replace(/^\w*Error: (training failed: )?/, '')}`;
      metrics?.trainingDuration.observe({ outcome: timedOut ? 'timed-out' : 'failed' }, trainingMs / 1000);
      log.error(timedOut ? 'training timed out' : 'training failed', {
        action: 'training-finished',
        outcome: 'failure',
        reason,
        durationMs: Math.round(trainingMs),
      });
      await tracked('logging the training time', (r) =>
        r.logMetrics({ training_ms: Math.round(trainingMs), epochs_run: epochs.length }),
      );
      return outcomeTags(
        finish({
          status: timedOut ? 'timed-out' : 'failed',
          champion: null,
          challenger: null,
          promoted: false,
          reason,
          trainingMs,
        }),
      );
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
    const loadModel =
      deps.loadModel ?? (async (dir: string) => loadArtifact(dir, deps.tf ?? (await loadTf(log)).tf));
    let championMetrics: EvalMetrics | null = null;
    if (championAtStart) {
      try {
        const model = await loadModel(await deps.registry.fetchArtifact(name, championAtStart.version));
        loaded.push(model);
        championMetrics = scoreModel(model, dataset.holdout);
      } catch (err) {
        // The registry is unreachable for now: the request is retried later (the champion stays meanwhile).
        if (isRetriable(err)) throw err;
        // Fail safe: without the champion's score there is no fair comparison, and the champion stays.
        const reason = `cannot evaluate champion ${championAtStart.version}: ${describeError(err)}`;
        log.error('evaluation failed', { action: 'evaluation', outcome: 'failure', reason });
        return outcomeTags(
          finish({ status: 'failed', champion: null, challenger: null, promoted: false, reason, trainingMs }),
        );
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

    // The registry contract's names (what the bootstrap records too): quality on the recent holdout.
    const versionMetrics: Record<string, number> = {
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
      ...(championMetrics
        ? {
            champion_holdout_accuracy: championMetrics.accuracy,
            champion_holdout_macro_f1: championMetrics.macroF1,
          }
        : {}),
    };
    await tracked('logging the holdout metrics', (r) =>
      r.logMetrics({
        ...versionMetrics,
        epochs_run: trained.epochs,
        best_epoch: trained.bestEpoch,
        ...(championMetrics
          ? {
              champion_holdout_log_loss: championMetrics.logLoss,
              champion_holdout_samples: championMetrics.samples,
              holdout_accuracy_gain: challengerMetrics.accuracy - championMetrics.accuracy,
              holdout_macro_f1_gain: challengerMetrics.macroF1 - championMetrics.macroF1,
            }
          : {}),
        promote: decision.promote ? 1 : 0,
      }),
    );

    // ---- register before any alias move ---------------------------------------
    const registered = await deps.registry.registerVersion(name, trained.dir, {
      correlationId: request.correlationId,
      requestId: request.requestId,
      source: 'retrainer',
      ...(run ? { runId: run.runId } : {}),
      metrics: versionMetrics,
      tags: {
        'retrain.kind': request.kind,
        'retrain.champion_version': championAtStart?.version ?? 'none',
        'retrain.window_from_ts': String(trainedOn.from),
        'retrain.window_to_ts': String(trainedOn.to),
        'retrain.backend': trained.backend,
      },
    });
    const version = registered.version;
    endTags['driftline.model_version'] = version;
    const evaluated = {
      champion: championMetrics,
      challenger: challengerMetrics,
      decision,
      trainingMs,
      version,
    };

    if (!decision.promote) {
      try {
        await deps.registry.markRejected(name, version, decision.reason, request.correlationId);
      } catch (err) {
        log.warn('could not mark the challenger rejected in the registry', {
          version,
          err: describeError(err),
        });
      }
      log.info('rejected', {
        action: 'rejected',
        outcome: 'rejected',
        version,
        championVersion: championAtStart?.version,
        reason: decision.reason,
      });
      return outcomeTags(
        finish({ ...evaluated, status: 'rejected', promoted: false, reason: decision.reason }),
      );
    }

    // ---- promote ---------------------------------------------------------------
    try {
      await deps.registry.setChampion(name, version, {
        by: 'retrainer',
        reason: decision.reason,
        correlationId: request.correlationId,
      });
    } catch (err) {
      // The alias may have moved before the error (e.g. the history append failed): ask the registry.
      const now = await deps.registry.getChampion(name).catch(() => undefined);
      if (now?.version !== version) {
        if (isRetriable(err)) {
          // The registry is unreachable for now: the old champion keeps serving and the request is retried
          // later; the registered challenger stays a candidate.
          log.error('promotion failed for now; the champion stays and the request will be retried', {
            action: 'promoted',
            outcome: 'failure',
            version,
            championVersion: now?.version,
            err: describeError(err),
          });
          throw err;
        }
        const reason = `promotion failed: ${describeError(err)}`;
        log.error('promotion failed; the champion stays', {
          action: 'promoted',
          outcome: 'failure',
          version,
          championVersion: now?.version,
          reason,
        });
        return outcomeTags(finish({ ...evaluated, status: 'failed', promoted: false, reason }));
      }
      log.warn('setChampion reported an error but the alias moved', { version, err: describeError(err) });
    }
    log.info('promoted', {
      action: 'promoted',
      outcome: 'success',
      version,
      previousVersion: championAtStart?.version,
      reason: decision.reason,
    });
    return outcomeTags(finish({ ...evaluated, status: 'promoted', promoted: true, reason: decision.reason }));
  } catch (err) {
    runStatus = 'FAILED';
    endTags['driftline.outcome'] = 'error';
    endTags['driftline.error'] = describeError(err).slice(0, 5000);
    throw err;
  } finally {
    for (const m of loaded) m.dispose();
    await fs.rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
    if (run) {
      await tracked('tagging the outcome', (r) => r.setTags(endTags));
      await tracked('finishing the run', (r) => r.finish(runStatus));
    }
  }
}

/** The params of a retrain's tracked run: hyper-parameters, window bounds, sample counts, warm start, gate settings. */
export function retrainParams(
  hyperparameters: {
    epochs: number;
    batchSize: number;
    learningRate: number;
    seed: number;
    classWeight: string;
  },
  trainedOn: RetrainOutcome['trainedOn'],
  context: {
    trainer: string;
    warmStartVersion?: string;
    championVersion?: string;
    config: Pick<RetrainerConfig, 'minGain' | 'maxMacroF1Drop' | 'minAccuracy' | 'timeoutMs'>;
  },
): Record<string, string | number | boolean> {
  return {
    epochs: hyperparameters.epochs,
    batch_size: hyperparameters.batchSize,
    learning_rate: hyperparameters.learningRate,
    seed: hyperparameters.seed,
    class_weight: hyperparameters.classWeight,
    trainer: context.trainer,
    warm_start: context.warmStartVersion !== undefined,
    warm_start_version: context.warmStartVersion ?? 'none',
    champion_version: context.championVersion ?? 'none',
    window_from_ts: trainedOn.from,
    window_to_ts: trainedOn.to,
    ...(trainedOn.fromSample !== undefined ? { window_from_sample: trainedOn.fromSample } : {}),
    ...(trainedOn.toSample !== undefined ? { window_to_sample: trainedOn.toSample } : {}),
    samples: trainedOn.samples,
    old_samples: trainedOn.oldSamples,
    train_samples: trainedOn.train,
    validation_samples: trainedOn.validation,
    holdout_samples: trainedOn.holdout,
    min_gain: context.config.minGain,
    max_macro_f1_drop: context.config.maxMacroF1Drop,
    min_accuracy: context.config.minAccuracy,
    timeout_ms: context.config.timeoutMs,
  };
}

/** The tags a retrain's tracked run starts with: correlation and request ids, drift kind and report. */
export function retrainRunTags(
  request: RetrainRequest,
  championVersion: string | undefined,
): Record<string, string> {
  return {
    'driftline.correlation_id': request.correlationId,
    'driftline.request_id': request.requestId,
    'driftline.model_name': request.modelName,
    'driftline.drift_kind': request.kind,
    'driftline.drift_report': driftReportJson(request),
    'driftline.group_key': request.groupKey,
    'driftline.champion_version': championVersion ?? 'none',
    'driftline.source': 'retrainer',
  };
}

/** Metrics for a model event (the schema's subset of EvalMetrics). */
export function eventMetrics(m: EvalMetrics | null | undefined): ModelMetrics {
  if (!m) return { samples: 0, accuracy: 0, macroF1: 0 };
  const clip = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);
  return {
    samples: m.samples,
    accuracy: clip(m.accuracy),
    macroF1: clip(m.macroF1),
    ...(Number.isFinite(m.logLoss) && m.logLoss >= 0 ? { logLoss: m.logLoss } : {}),
  };
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
  const common = {
    modelName: outcome.modelName,
    correlationId: outcome.correlationId,
    requestId: outcome.requestId,
    reason: outcome.reason.slice(0, 1000),
    at,
  };
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
