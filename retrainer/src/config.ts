import {
  bool,
  int,
  list,
  loadConfig,
  num,
  oneOf,
  optionalUrl,
  str,
  type ConfigOf,
} from '../../common/config/env.ts';
import { keysDirField, signingKeyField } from '../../common/model/signature.ts';
import { DEFAULT_MODEL_NAME } from '../../common/model/types.ts';

/**
 * Settings of the retrainer, read from the environment by `main.ts` and
 * filled with the same defaults by {@link resolveRetrainerConfig} for the
 * programmatic API (`npm start`, the offline evaluator, tests).
 */
export const retrainerConfigSpec = {
  /** Registered model the retrainer trains and promotes. */
  modelName: str('MODEL_NAME', {
    description: 'registered model name the retrainer trains and promotes',
    default: DEFAULT_MODEL_NAME,
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    allowed: "letters, digits, '.', '_' and '-'",
  }),
  /** Directory of the embedded model registry (used unless MLFLOW_TRACKING_URI is set). */
  registryDir: str('REGISTRY_DIR', {
    description: 'directory of the embedded model registry',
    default: '.driftline/registry',
  }),
  /** Private key signing each challenger (unset: the embedded default key under `keysDir`). */
  signingKey: signingKeyField(),
  /** Directory of the embedded default signing key pair. */
  keysDir: keysDirField(),
  /** Directory of the embedded labelled-sample store. */
  samplesDir: str('SAMPLES_DIR', {
    description: 'directory of the embedded labelled-sample store',
    default: '.driftline/samples',
  }),
  /** Samples retained by the embedded sample store; the oldest segments are deleted beyond it. */
  samplesMax: int('SAMPLES_MAX', {
    description: 'labelled samples kept on disk (oldest segments deleted beyond)',
    default: 500_000,
    min: 1000,
  }),
  /** Directory of the retrainer's own state (handled request ids). */
  stateDir: str('RETRAINER_STATE_DIR', {
    description: 'directory of the retrainer state (handled request ids)',
    default: '.driftline/retrainer',
  }),
  /** Requests waiting behind the running one, at most; beyond, a request is coalesced into the newest waiting. */
  maxQueued: int('RETRAINER_MAX_QUEUED', {
    description:
      'retrain requests waiting behind the running one, at most (beyond, coalesced into the newest waiting)',
    default: 4,
    min: 1,
    max: 1000,
  }),
  /** Finished requests the ledger keeps (idempotency memory); the oldest are compacted away. */
  ledgerMaxFinished: int('RETRAINER_LEDGER_MAX_FINISHED', {
    description: 'finished retrain requests remembered in the ledger (oldest dropped beyond)',
    default: 1000,
    min: 10,
    max: 1_000_000,
  }),
  /** Fewest recent samples a retrain needs; fewer and the request waits for more data. */
  minSamples: int('RETRAIN_MIN_SAMPLES', {
    description: 'fewest recent (post-drift) samples to train on',
    default: 2000,
    min: 20,
  }),
  /** Two-stage concept retraining: samples of the first stage (0 or >= minSamples: one stage). */
  stage1MinSamples: int('RETRAIN_STAGE1_MIN_SAMPLES', {
    description:
      'post-drift samples of the first stage of a concept retrain (promoted if it beats the drifted champion, ' +
      'then retrained on RETRAIN_MIN_SAMPLES and promoted only if better again); 0: one stage',
    default: 600,
    min: 0,
  }),
  /** Most recent samples used (the newest of the window). */
  maxSamples: int('RETRAIN_MAX_SAMPLES', {
    description: 'most recent samples used from the window (newest kept)',
    default: 20_000,
    min: 20,
  }),
  /** Share of older (pre-window) data in the training set after covariate drift. */
  oldDataShare: num('RETRAIN_OLD_DATA_SHARE', {
    description: 'share of pre-drift samples mixed into training after covariate drift',
    default: 0.2,
    min: 0,
    max: 0.9,
  }),
  /** Share of older data after concept drift (old samples carry the old labelling: default none). */
  oldDataShareConcept: num('RETRAIN_OLD_DATA_SHARE_CONCEPT', {
    description: 'share of pre-drift samples mixed into training after concept drift',
    default: 0,
    min: 0,
    max: 0.9,
  }),
  /** Selective replay after concept drift: pool of older samples, as a multiple of the recent training rows. */
  conceptReplay: num('RETRAIN_CONCEPT_REPLAY', {
    description:
      'after concept drift, older samples of the classes the change did not shrink are replayed in training, from ' +
      'the newest RETRAIN_CONCEPT_REPLAY x (recent training rows) before the window; 0: none',
    default: 1,
    min: 0,
    max: 10,
  }),
  /** Loss weight of a recent training row relative to an older (replayed) one. */
  conceptRecentWeight: num('RETRAIN_CONCEPT_RECENT_WEIGHT', {
    description: 'loss weight of a recent training row relative to a replayed older one (concept drift)',
    default: 2,
    min: 1,
    max: 100,
  }),
  /** Share of the recent window held out for the champion/challenger comparison. */
  holdoutShare: num('RETRAIN_HOLDOUT_SHARE', {
    description: 'share of the recent window held out to compare champion and challenger',
    default: 0.15,
    min: 0.05,
    max: 0.5,
  }),
  /** Share of the recent window used for validation (early stopping/best epoch). */
  validationShare: num('RETRAIN_VALIDATION_SHARE', {
    description: 'share of the recent window used for validation',
    default: 0.15,
    min: 0.05,
    max: 0.5,
  }),
  /** Training epochs. */
  epochs: int('RETRAIN_EPOCHS', { description: 'training epochs', default: 40, min: 1, max: 1000 }),
  /** Mini-batch size. */
  batchSize: int('RETRAIN_BATCH_SIZE', { description: 'mini-batch size', default: 64, min: 1, max: 65_536 }),
  /** Initial Adam learning rate. */
  learningRate: num('RETRAIN_LEARNING_RATE', {
    description: 'initial Adam learning rate',
    default: 0.01,
    min: 1e-6,
    max: 1,
  }),
  /** Seed of the split, the shuffles and the initialisers. */
  seed: int('RETRAIN_SEED', {
    description: 'seed of the data split and the training',
    default: 42,
    min: 0,
    max: 2 ** 31 - 1,
  }),
  /** Fine-tune the champion instead of training from scratch. */
  warmStart: bool('RETRAIN_WARM_START', {
    description: "fine-tune from the champion's weights and scaler instead of training from scratch",
    default: true,
  }),
  /** Initial Adam learning rate when warm-starting (stage 1 of a concept retrain: `stage1LearningRate`). */
  warmLearningRate: num('RETRAIN_WARM_LEARNING_RATE', {
    description: 'initial Adam learning rate when warm-starting from the champion',
    default: 0.003,
    min: 1e-6,
    max: 1,
  }),
  /** Stage 1 of a concept retrain: training epochs (a short fine-tune of the champion on few samples). */
  stage1Epochs: int('RETRAIN_STAGE1_EPOCHS', {
    description: 'training epochs of the first stage of a concept retrain',
    default: 20,
    min: 1,
    max: 1000,
  }),
  /** Stage 1 of a concept retrain: mini-batch size. */
  stage1BatchSize: int('RETRAIN_STAGE1_BATCH_SIZE', {
    description: 'mini-batch size of the first stage of a concept retrain',
    default: 128,
    min: 1,
    max: 65_536,
  }),
  /** Stage 1 of a concept retrain: initial Adam learning rate (warm-started or not). */
  stage1LearningRate: num('RETRAIN_STAGE1_LEARNING_RATE', {
    description: 'initial Adam learning rate of the first stage of a concept retrain',
    default: 0.01,
    min: 1e-6,
    max: 1,
  }),
  /** Class weighting of the loss. */
  classWeight: oneOf('RETRAIN_CLASS_WEIGHT', ['none', 'balanced'] as const, {
    description: 'class weighting of the training loss',
    default: 'none',
  }),
  /** Time limit of one training, ms; the worker is terminated beyond it. */
  timeoutMs: int('RETRAIN_TIMEOUT_MS', {
    description: 'time limit of one training (ms); the worker is terminated beyond it',
    default: 120_000,
    min: 100,
  }),
  /** Wait before asking the store again when a window has too few samples, ms. */
  dataRetryMs: int('RETRAIN_DATA_RETRY_MS', {
    description: 'wait before retrying a request that had too few samples (ms)',
    default: 250,
    min: 10,
  }),
  /** Attempts for a request that has too few samples before it is given up. */
  dataMaxAttempts: int('RETRAIN_DATA_MAX_ATTEMPTS', {
    description: 'attempts before a request with too few samples is given up',
    default: 480,
    min: 1,
    max: 10_000,
  }),
  /** Keep a training worker thread started (tfjs loaded) ahead of the next training. */
  prewarmWorker: bool('RETRAIN_PREWARM_WORKER', {
    description:
      'keep one training worker thread started, with tfjs loaded, ahead of the next training (saves its ~1 s start-up)',
    default: true,
  }),
  /** Train on the service's own thread instead of a worker thread (debugging). */
  inThread: bool('RETRAIN_IN_THREAD', {
    description: 'train on the main thread instead of a worker thread (debugging only)',
    default: false,
  }),
  /** Minimum accuracy gain over the champion for a promotion. */
  minGain: num('PROMOTION_MIN_GAIN', {
    description: 'minimum holdout accuracy gain over the champion to promote',
    default: 0.005,
    min: 0,
    max: 1,
  }),
  /** Largest tolerated macro-F1 drop versus the champion. */
  maxMacroF1Drop: num('PROMOTION_MAX_MACRO_F1_DROP', {
    description: 'largest tolerated holdout macro-F1 drop versus the champion',
    default: 0.01,
    min: 0,
    max: 1,
  }),
  /** Accuracy floor a challenger must clear. */
  minAccuracy: num('PROMOTION_MIN_ACCURACY', {
    description: 'holdout accuracy a challenger must reach to be promoted',
    default: 0.9,
    min: 0,
    max: 1,
  }),
  /** Port of /healthz, /readyz and /metrics. */
  httpPort: int('RETRAINER_HTTP_PORT', {
    description: 'port of /healthz, /readyz and /metrics (0: any free port)',
    default: 9103,
    min: 0,
    max: 65_535,
  }),
  /** Interface of the ops server. */
  httpHost: str('RETRAINER_HTTP_HOST', { description: 'interface of the ops server', default: '127.0.0.1' }),
  /** Kafka brokers; empty: the in-process bus (Kafka factory arrives later). */
  kafkaBrokers: list('KAFKA_BROKERS', {
    description: 'Kafka brokers host:port,…; unset uses the embedded in-process bus',
    pattern: /^[^\s,]+:\d+$/,
    allowed: 'host:port,host:port',
  }),
  /** MLflow tracking server; unset: the directory registry. */
  mlflowTrackingUri: optionalUrl('MLFLOW_TRACKING_URI', {
    description: 'MLflow tracking server; unset uses the embedded directory registry',
    protocols: ['http:', 'https:'],
  }),
};

/** The retrainer's validated settings. */
export type RetrainerConfig = ConfigOf<typeof retrainerConfigSpec>;

/** The defaults of every setting (what an empty environment gives). */
export function defaultRetrainerConfig(): RetrainerConfig {
  return loadConfig(retrainerConfigSpec, {});
}

/** Defaults overlaid with `overrides` (the programmatic API takes partial configs). */
export function resolveRetrainerConfig(overrides: Partial<RetrainerConfig> = {}): RetrainerConfig {
  const defined = Object.fromEntries(
    Object.entries(overrides).filter(([, v]) => v !== undefined),
  ) as Partial<RetrainerConfig>;
  return { ...defaultRetrainerConfig(), ...defined };
}
