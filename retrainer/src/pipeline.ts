import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { RetrainRequest } from '../../common/events/schemas.ts';
import { describeError, isRetriable } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import type { EpochLog } from '../../common/model/classifier.ts';
import { evaluate, formatMetrics } from '../../common/model/evaluation.ts';
import type { ModelSigner } from '../../common/model/signature.ts';
import { signRegisteredVersion } from '../../common/registry/sign-version.ts';
import { loadTf, type Tf } from '../../common/model/tf.ts';
import type { EvalMetrics, LabelledRow, LoadedModel } from '../../common/model/types.ts';
import type { ModelRegistry, ModelVersion } from '../../common/registry/types.ts';
import type { LabelledSampleStore } from '../../common/samples/types.ts';
import { resolveRetrainerConfig, type RetrainerConfig } from './config.ts';
import { buildDataset, type Dataset, type SampleWindow } from './dataset.ts';
import { decidePromotion, type GateDecision } from './gate.ts';
import type { RetrainerMetrics } from './metrics.ts';
import {
  createInThreadTrainer,
  createWorkerTrainer,
  TrainingTimeoutError,
  type Trainer,
  type TrainResult,
} from './trainer.ts';
import {
  RetrainRun,
  retrainParams,
  retrainRunTags,
  type RetrainTracking,
  type TrainedOn,
} from './tracking.ts';

/**
 * One retrain, without the bus: dataset → train → evaluate → gate →
 * register → promote or reject. The retrainer service (`service.ts`) runs it
 * for every request; the offline evaluator (`npm run evaluate -- --retrain`)
 * calls it directly on its sample clock.
 *
 * Ordering guarantees: the challenger is registered (a `candidate`) before the
 * `champion` alias moves, so a crash or failure between the two leaves the old
 * champion serving; a rejected challenger stays registered, marked rejected
 * with the reason.
 *
 * Experiment tracking (optional, {@link RetrainOnceDeps.tracking}, see
 * `tracking.ts`): each retrain is a run; the challenger is registered from
 * that run. Tracking is best effort: a failed tracking call is logged and
 * never fails the retrain.
 *
 * Retriable infrastructure errors (the registry unreachable while the champion
 * is scored or the alias moves) are thrown, not turned into a `failed`
 * outcome, so the service retries the request later; the champion stays.
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
  /**
   * Experiment tracking of each retrain (`tracking.ts`); default none. The process
   * that builds the retrainer chooses it (`mlflowTrackingFor(registry)` in `main.ts`).
   */
  tracking?: RetrainTracking;
  /**
   * Signs each challenger's `metadata.json` before registration (`resolveSigner` in
   * `common/model/signature.ts`), and a challenger it promotes for its registry version before the alias
   * moves (`common/model/version-signature.ts`); edge workers refuse unsigned models. The services always
   * pass it; default none (tests with fake artifacts).
   */
  signer?: ModelSigner;
}

/** Per-call options of {@link retrainOnce}. */
export interface RetrainOnceOptions {
  /**
   * Use every sample since the window's start instead of stopping at its end (the service does on retries for
   * more data). Default false.
   */
  extendToLatest?: boolean;
  /**
   * Select the window by `ts` (default: global across edge workers) or by the worker's sample clock
   * (`sampleFrom`/`sampleTo`, falls back to ts when absent).
   */
  windowBy?: 'ts' | 'sample';
  /** Stops the training (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Fewest samples for this training (a stage of `stages.ts`); default `config.minSamples`. */
  minSamples?: number;
  /**
   * The stage of a two-stage concept retrain (`stages.ts`): stage 1 trains with the `stage1*` hyper-parameters
   * (a short fine-tune); default: the configured ones.
   */
  stage?: 1 | 2;
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
  /** The recent data trained on: ts range (`from`/`to`), count, sample-index range, pre-window samples, split sizes. */
  trainedOn: TrainedOn;
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
export function defaultTrainer(
  config: Pick<RetrainerConfig, 'inThread'>,
  tf?: Tf,
  options: { prewarm?: boolean } = {},
): Trainer {
  return config.inThread
    ? createInThreadTrainer(tf ? { tf } : {})
    : createWorkerTrainer({ prewarm: options.prewarm ?? false });
}

/** What the steps of one retrain share. */
interface RetrainContext {
  request: RetrainRequest;
  deps: RetrainOnceDeps;
  config: RetrainerConfig;
  /** Carries the request's correlation id, request id and model name. */
  log: Logger;
  run: RetrainRun;
  trainedOn: TrainedOn;
  championAtStart: ModelVersion | undefined;
}

/** The hyper-parameters of a training ({@link hyperparametersFor}). */
export interface Hyperparameters {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  classWeight: RetrainerConfig['classWeight'];
}

/**
 * The hyper-parameters of one training. Stage 1 of a concept retrain is a short fine-tune (`stage1Epochs`,
 * `stage1BatchSize`, `stage1LearningRate`: about 100 steps instead of ~360 on its ~500 rows, so it serves
 * sooner; docs/drift-detector-design.md, section 5); any other training uses the configured epochs and batch
 * size, and the warm-start learning rate when warm-started.
 */
export function hyperparametersFor(
  config: RetrainerConfig,
  stage: 1 | 2 | undefined,
  warm: boolean,
): Hyperparameters {
  if (stage === 1)
    return {
      epochs: config.stage1Epochs,
      batchSize: config.stage1BatchSize,
      learningRate: config.stage1LearningRate,
      seed: config.seed,
      classWeight: config.classWeight,
    };
  return {
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: warm ? config.warmLearningRate : config.learningRate,
    seed: config.seed,
    classWeight: config.classWeight,
  };
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
      championVersion: request.championVersion,
    },
    {
      minSamples: options.minSamples ?? config.minSamples,
      maxSamples: config.maxSamples,
      oldDataShare: config.oldDataShare,
      oldDataShareConcept: config.oldDataShareConcept,
      conceptReplay: config.conceptReplay,
      conceptRecentWeight: config.conceptRecentWeight,
      // Stage 1 trains on every label it has but the holdout (dataset.ts, `trainOnValidation`).
      trainOnValidation: options.stage === 1,
      holdoutShare: config.holdoutShare,
      validationShare: config.validationShare,
      seed: config.seed,
    },
  );
  const trainedOn = trainedOnOf(dataset);
  const championAtStart: ModelVersion | undefined = await deps.registry.getChampion(name);
  const base = {
    requestId: request.requestId,
    correlationId: request.correlationId,
    modelName: name,
    trainedOn,
    ...(championAtStart ? { previousVersion: championAtStart.version } : {}),
  };
  /** The outcome, counted in the metrics and tagged on the run. */
  const finish = (outcome: Omit<RetrainOutcome, keyof typeof base | 'durationMs'>): RetrainOutcome => {
    const result: RetrainOutcome = { ...base, ...outcome, durationMs: performance.now() - started };
    metrics?.trainings.inc({ outcome: result.status });
    metrics?.retrainDuration.observe(result.durationMs / 1000);
    if (result.status === 'promoted') metrics?.promotions.inc();
    else
      metrics?.rejections.inc({
        cause: result.decision?.causes[0] ?? (result.status === 'timed-out' ? 'timed-out' : 'failed'),
      });
    return run.outcome(result);
  };

  const trainer = deps.trainer ?? defaultTrainer(config, deps.tf);
  const workDir = path.resolve(deps.workDir ?? path.join(config.stateDir, 'work'));
  await fs.mkdir(workDir, { recursive: true });
  const jobDir = await fs.mkdtemp(path.join(workDir, 'job-'));
  const loaded: LoadedModel[] = [];
  const warmStartVersion = config.warmStart && championAtStart ? championAtStart.version : undefined;
  const hyperparameters = hyperparametersFor(config, options.stage, warmStartVersion !== undefined);
  const run = await RetrainRun.start(
    deps.tracking,
    {
      runName: `retrain-${request.requestId.slice(0, 12)}`,
      params: retrainParams(hyperparameters, trainedOn, {
        trainer: trainer.kind,
        warmStartVersion,
        championVersion: championAtStart?.version,
        config,
      }),
      tags: retrainRunTags(request, championAtStart?.version),
    },
    log,
  );
  const ctx: RetrainContext = { request, deps, config, log, run, trainedOn, championAtStart };

  // The champion is scored on the holdout while the challenger trains (it does not depend on it).
  let championScore: Promise<ChampionScore> | undefined;
  try {
    championScore = scoreChampion(ctx, dataset.holdout, loaded);
    // ---- train ------------------------------------------------------------------
    const training = await trainChallenger(ctx, dataset, trainer, {
      startedAt: started,
      hyperparameters,
      warmStartVersion,
      outDir: path.join(jobDir, 'artifact'),
      signal: options.signal,
    });
    if (!training.ok)
      return finish({
        status: training.status,
        champion: null,
        challenger: null,
        promoted: false,
        reason: training.reason,
        trainingMs: training.trainingMs,
      });
    const { trained, trainingMs } = training;

    // ---- evaluate both on the same holdout ----------------------------------------
    const scores = await evaluateBoth(ctx, dataset.holdout, trained, await championScore, loaded);
    if (!scores.ok)
      return finish({
        status: 'failed',
        champion: null,
        challenger: null,
        promoted: false,
        reason: scores.reason,
        trainingMs,
      });
    const { championMetrics, challengerMetrics, decision } = scores;
    // The registry contract's names (what the bootstrap records too): quality on the recent holdout.
    const versionMetrics = registeredMetrics(
      challengerMetrics,
      championMetrics,
      trained,
      trainedOn,
      trainingMs,
    );
    await run.logMetrics('logging the holdout metrics', {
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
    });

    // ---- sign: the edge serves only artifacts whose metadata this key signed -------
    if (deps.signer) {
      const signature = await deps.signer.signArtifact(trained.dir);
      log.info(`challenger signed with key ${signature.keyId}`, {
        action: 'artifact-signed',
        keyId: signature.keyId,
      });
    }

    // ---- register before any alias move -----------------------------------------
    const registered = await deps.registry.registerVersion(name, trained.dir, {
      correlationId: request.correlationId,
      requestId: request.requestId,
      source: 'retrainer',
      ...(run.runId !== undefined ? { runId: run.runId } : {}),
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
    run.registered(version);
    const evaluated = {
      champion: championMetrics,
      challenger: challengerMetrics,
      decision,
      trainingMs,
      version,
    };

    if (!decision.promote) {
      await rejectChallenger(ctx, version, decision);
      return finish({ ...evaluated, status: 'rejected', promoted: false, reason: decision.reason });
    }

    // ---- sign the registry version, then promote -----------------------------------
    // The version number exists only now: the signature binds name, number and checksum, so the edge
    // refuses this artifact registered again under another number. A rejected challenger gets none.
    if (deps.signer) {
      await signRegisteredVersion(deps.registry, deps.signer, registered, trained.dir);
      log.info(`${name} v${version} signed for its registry version`, { action: 'version-signed', version });
    }
    const promotion = await promoteChallenger(ctx, version, decision);
    if (!promotion.ok)
      return finish({ ...evaluated, status: 'failed', promoted: false, reason: promotion.reason });
    return finish({ ...evaluated, status: 'promoted', promoted: true, reason: decision.reason });
  } catch (err) {
    run.error(err);
    throw err;
  } finally {
    // A training that failed did not wait for the champion's score: let it settle before disposing.
    await championScore;
    for (const m of loaded) m.dispose();
    await fs.rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
    await run.finish();
  }
}

/** The provenance of a dataset, as the outcome and the tracked run report it. */
function trainedOnOf(dataset: Dataset): TrainedOn {
  const p = dataset.provenance;
  return {
    from: p.fromTs,
    to: p.toTs,
    samples: p.samples,
    ...(p.fromSample !== undefined ? { fromSample: p.fromSample, toSample: p.toSample } : {}),
    oldSamples: p.oldSamples,
    train: dataset.train.length,
    validation: dataset.validation.length,
    holdout: dataset.holdout.length,
  };
}

/** Trains the challenger (warm-started from the champion when configured); a failure or timeout is an outcome. */
async function trainChallenger(
  ctx: RetrainContext,
  dataset: Dataset,
  trainer: Trainer,
  job: {
    /** `performance.now()` when the retrain began. */
    startedAt: number;
    hyperparameters: Hyperparameters;
    warmStartVersion: string | undefined;
    outDir: string;
    signal: AbortSignal | undefined;
  },
): Promise<
  | { ok: true; trained: TrainResult; trainingMs: number }
  | { ok: false; status: 'failed' | 'timed-out'; reason: string; trainingMs: number }
> {
  const { request, deps, config, log, run, trainedOn } = ctx;
  const metrics = deps.metrics;
  log.info('training started', {
    action: 'training-started',
    trainer: trainer.kind,
    // Since the retrain began: reading the window and building the dataset (the part of the wait for data
    // that is not waiting).
    preparedMs: Math.round(performance.now() - job.startedAt),
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
    ...(run.runId !== undefined ? { runId: run.runId } : {}),
  });
  metrics?.inProgress.inc();
  let trained: TrainResult;
  const trainStart = performance.now();
  const epochs: EpochLog[] = [];
  try {
    // Warm start: fine-tune the champion (verified artifact) rather than learn the task again from a small window.
    const warmStartDir =
      job.warmStartVersion !== undefined
        ? await deps.registry.fetchArtifact(request.modelName, job.warmStartVersion)
        : undefined;
    const onEpoch = (epoch: EpochLog): void => {
      epochs.push(epoch);
      run.logEpoch(epoch);
    };
    trained = await trainer.train(
      {
        train: dataset.train,
        validation: dataset.validation,
        ...(dataset.reference ? { reference: dataset.reference } : {}),
        hyperparameters: job.hyperparameters,
        ...(warmStartDir !== undefined ? { warmStartDir } : {}),
        outDir: job.outDir,
        modelName: request.modelName,
        source: {
          trainer: 'retrainer',
          requestId: request.requestId,
          correlationId: request.correlationId,
          driftKind: request.kind,
          championVersion: request.championVersion,
          warmStartFrom: job.warmStartVersion ?? null,
          window: {
            fromTs: trainedOn.from,
            toTs: trainedOn.to,
            fromSample: trainedOn.fromSample,
            toSample: trainedOn.toSample,
          },
          samples: trainedOn.samples,
          oldSamples: trainedOn.oldSamples,
          ...(run.runId !== undefined ? { runId: run.runId } : {}),
        },
      },
      { timeoutMs: config.timeoutMs, signal: job.signal, onEpoch },
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
    await run.logMetrics('logging the training time', {
      training_ms: Math.round(trainingMs),
      epochs_run: epochs.length,
    });
    return { ok: false, status: timedOut ? 'timed-out' : 'failed', reason, trainingMs };
  } finally {
    metrics?.inProgress.dec();
  }
  const trainingMs = performance.now() - trainStart;
  metrics?.trainingDuration.observe({ outcome: 'success' }, trainingMs / 1000);
  log.info('training finished', {
    action: 'training-finished',
    outcome: 'success',
    durationMs: Math.round(trainingMs),
    // The training itself, in the trainer's thread (the rest: fetching the warm start, the thread's hand-over).
    trainerMs: Math.round(trained.durationMs),
    epochs: trained.epochs,
    bestEpoch: trained.bestEpoch,
    backend: trained.backend,
    validationAccuracy: trained.validation.accuracy,
    validationMacroF1: trained.validation.macroF1,
  });
  return { ok: true, trained, trainingMs };
}

/** The champion's score on the holdout, or why there is none ({@link scoreChampion}). */
type ChampionScore =
  { ok: true; metrics: EvalMetrics | null } | { ok: false; reason: string } | { ok: false; thrown: unknown };

/**
 * Loads the champion of the retrain's start and scores it on the holdout. It does not depend on the
 * challenger, so it runs while the challenger trains (in its worker thread), off the critical path. Never
 * rejects: a champion that cannot be evaluated is a reason (the retrain fails, the champion stays), a
 * registry that is only unreachable for now is returned as `thrown` (rethrown after the training: retried).
 */
async function scoreChampion(
  ctx: RetrainContext,
  holdout: readonly LabelledRow[],
  loaded: LoadedModel[],
): Promise<ChampionScore> {
  const { deps, log, championAtStart, request } = ctx;
  if (!championAtStart) return { ok: true, metrics: null };
  try {
    const model = await loaderOf(ctx)(
      await deps.registry.fetchArtifact(request.modelName, championAtStart.version),
    );
    loaded.push(model);
    return { ok: true, metrics: scoreModel(model, holdout) };
  } catch (err) {
    // The registry is unreachable for now: the request is retried later (the champion stays meanwhile).
    if (isRetriable(err)) return { ok: false, thrown: err };
    // Fail safe: without the champion's score there is no fair comparison, and the champion stays.
    const reason = `cannot evaluate champion ${championAtStart.version}: ${describeError(err)}`;
    log.error('evaluation failed', { action: 'evaluation', outcome: 'failure', reason });
    return { ok: false, reason };
  }
}

/** How models are loaded for scoring: `deps.loadModel`, else `loadArtifact` (checksums verified). */
function loaderOf(ctx: RetrainContext): (dir: string) => Promise<LoadedModel> {
  const { deps, log } = ctx;
  return deps.loadModel ?? (async (dir: string) => loadArtifact(dir, deps.tf ?? (await loadTf(log)).tf));
}

/**
 * Scores the challenger on the holdout the champion was scored on ({@link scoreChampion}) and applies the
 * gate. Without the champion's score there is no fair comparison: a champion that cannot be evaluated
 * fails the retrain (the champion stays), unless the registry is only unreachable for now (thrown: retried).
 */
async function evaluateBoth(
  ctx: RetrainContext,
  holdout: readonly LabelledRow[],
  trained: TrainResult,
  champion: ChampionScore,
  loaded: LoadedModel[],
): Promise<
  | { ok: true; championMetrics: EvalMetrics | null; challengerMetrics: EvalMetrics; decision: GateDecision }
  | { ok: false; reason: string }
> {
  const { deps, config, log, championAtStart } = ctx;
  const metrics = deps.metrics;
  if (!champion.ok) {
    if ('thrown' in champion) throw champion.thrown;
    return { ok: false, reason: champion.reason };
  }
  const championMetrics = champion.metrics;
  const challengerModel = await loaderOf(ctx)(trained.dir);
  loaded.push(challengerModel);
  const challengerMetrics = scoreModel(challengerModel, holdout);
  if (championMetrics) metrics?.lastHoldoutAccuracy.set({ role: 'champion' }, championMetrics.accuracy);
  metrics?.lastHoldoutAccuracy.set({ role: 'challenger' }, challengerMetrics.accuracy);
  const decision = decidePromotion(championMetrics ?? undefined, challengerMetrics, {
    minGain: config.minGain,
    maxMacroF1Drop: config.maxMacroF1Drop,
    minAccuracy: config.minAccuracy,
  });
  log.info('evaluation', {
    action: 'evaluation',
    holdout: holdout.length,
    championVersion: championAtStart?.version,
    champion: championMetrics ? formatMetrics(championMetrics) : 'none',
    challenger: formatMetrics(challengerMetrics),
    championAccuracy: championMetrics?.accuracy,
    challengerAccuracy: challengerMetrics.accuracy,
    championMacroF1: championMetrics?.macroF1,
    challengerMacroF1: challengerMetrics.macroF1,
    promote: decision.promote,
  });
  return { ok: true, championMetrics, challengerMetrics, decision };
}

/** The metrics a challenger is registered with: the registry contract's names, then the holdout detail. */
function registeredMetrics(
  challenger: EvalMetrics,
  champion: EvalMetrics | null,
  trained: TrainResult,
  trainedOn: TrainedOn,
  trainingMs: number,
): Record<string, number> {
  return {
    accuracy: challenger.accuracy,
    macroF1: challenger.macroF1,
    samples: challenger.samples,
    logLoss: challenger.logLoss,
    holdout_accuracy: challenger.accuracy,
    holdout_macro_f1: challenger.macroF1,
    holdout_log_loss: challenger.logLoss,
    holdout_samples: challenger.samples,
    validation_accuracy: trained.validation.accuracy,
    validation_macro_f1: trained.validation.macroF1,
    train_samples: trained.samples,
    old_samples: trainedOn.oldSamples,
    training_ms: Math.round(trainingMs),
    ...(champion
      ? {
          champion_holdout_accuracy: champion.accuracy,
          champion_holdout_macro_f1: champion.macroF1,
        }
      : {}),
  };
}

/** Marks a rejected challenger in the registry (kept for audit; a failure to mark it is only logged). */
async function rejectChallenger(ctx: RetrainContext, version: string, decision: GateDecision): Promise<void> {
  const { deps, request, log, championAtStart } = ctx;
  try {
    await deps.registry.markRejected(request.modelName, version, decision.reason, request.correlationId);
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
}

/**
 * Moves the champion alias to the registered challenger. A failed move is an outcome (the champion
 * stays), unless the registry is only unreachable for now (thrown: the request is retried later).
 */
async function promoteChallenger(
  ctx: RetrainContext,
  version: string,
  decision: GateDecision,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const { deps, request, log, championAtStart } = ctx;
  const name = request.modelName;
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
      return { ok: false, reason };
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
  return { ok: true };
}
