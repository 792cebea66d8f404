import type { RetrainRequest } from '../../common/events/schemas.ts';
import { describeError } from '../../common/errors.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { EpochLog } from '../../common/model/classifier.ts';
import type { RetrainerConfig } from './config.ts';

/**
 * Experiment tracking of retrains: the port the retrain pipeline talks to (the
 * style of `edge-inference/src/ports.ts`), and what a tracked retrain records.
 * `mlflow-tracking.ts` implements it on MLflow; `main.ts` (and the all-in-one
 * runner) choose the implementation, the pipeline only sees the interface.
 *
 * Each retrain is a run with the hyper-parameters, window and sample counts as
 * params, the per-epoch curves, the holdout metrics of champion and
 * challenger, and the request's correlation id and drift report as tags; the
 * challenger is registered from that run. Tracking is best effort: a failed
 * tracking call is logged and never fails the retrain.
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

/** The longest tag value every tracker must accept (MLflow's limit, the smallest of the trackers). */
export const TAG_VALUE_MAX_CHARS = 8000;

/** How a retrain ended, as the run's end tags see it. */
export interface TrackedOutcome {
  status: 'promoted' | 'rejected' | 'failed' | 'timed-out';
  promoted: boolean;
  reason: string;
  version?: string;
}

/**
 * The tracked run of one retrain, or nothing when tracking is off or the run
 * could not start: every call is best effort (logged at warn, never thrown).
 */
export class RetrainRun {
  private status: TrackedRunStatus = 'FAILED';
  private readonly endTags: Record<string, string> = {};

  private constructor(
    private readonly run: TrackedRun | undefined,
    private readonly log: Logger,
  ) {}

  /** Starts the run on `tracking` (none when undefined); a run that cannot start leaves the retrain untracked. */
  static async start(
    tracking: RetrainTracking | undefined,
    start: TrackedRunStart,
    log: Logger,
  ): Promise<RetrainRun> {
    if (!tracking) return new RetrainRun(undefined, log);
    try {
      const run = await tracking.startRun(start);
      log.info('experiment run started', {
        action: 'tracking-started',
        tracking: tracking.kind,
        runId: run.runId,
      });
      return new RetrainRun(run, log);
    } catch (err) {
      log.warn('experiment tracking: cannot start the run; the retrain goes on untracked', {
        tracking: tracking.kind,
        err: describeError(err),
      });
      return new RetrainRun(undefined, log);
    }
  }

  /** The run's id, when tracked. */
  get runId(): string | undefined {
    return this.run?.runId;
  }

  /** One finished epoch. */
  logEpoch(epoch: EpochLog): void {
    try {
      this.run?.logEpoch(epoch);
    } catch (err) {
      this.log.warn('experiment tracking: logging an epoch failed', {
        epoch: epoch.epoch,
        err: describeError(err),
      });
    }
  }

  /** Metrics at step 0; `what` names the call in the warning when it fails. */
  async logMetrics(what: string, metrics: Record<string, number>): Promise<void> {
    await this.call(what, (r) => r.logMetrics(metrics));
  }

  /** The version the challenger was registered as (also when the retrain fails later). */
  registered(version: string): void {
    this.endTags['driftline.model_version'] = version;
  }

  /** How the retrain ended: the run finishes FINISHED for a promotion or a rejection, FAILED otherwise. */
  outcome<T extends TrackedOutcome>(outcome: T): T {
    this.status = outcome.status === 'promoted' || outcome.status === 'rejected' ? 'FINISHED' : 'FAILED';
    Object.assign(this.endTags, {
      'driftline.outcome': outcome.status,
      'driftline.promoted': String(outcome.promoted),
      'driftline.reason': outcome.reason.slice(0, 5000),
      ...(outcome.version !== undefined ? { 'driftline.model_version': outcome.version } : {}),
      ...(outcome.status === 'rejected' ? { 'driftline.rejected': outcome.reason.slice(0, 5000) } : {}),
    });
    return outcome;
  }

  /** The retrain threw: the run fails with the error as a tag. */
  error(err: unknown): void {
    this.status = 'FAILED';
    this.endTags['driftline.outcome'] = 'error';
    this.endTags['driftline.error'] = describeError(err).slice(0, 5000);
  }

  /** Tags the outcome and ends the run. */
  async finish(): Promise<void> {
    if (!this.run) return;
    await this.call('tagging the outcome', (r) => r.setTags(this.endTags));
    await this.call('finishing the run', (r) => r.finish(this.status));
  }

  private async call(what: string, call: (r: TrackedRun) => Promise<void>): Promise<void> {
    if (!this.run) return;
    try {
      await call(this.run);
    } catch (err) {
      this.log.warn(`experiment tracking: ${what} failed`, {
        runId: this.run.runId,
        err: describeError(err),
      });
    }
  }
}

/**
 * The data a retrain trained on: the window (ts and sample-index bounds), its samples, pre-window samples
 * mixed in, split sizes.
 */
export interface TrainedOn {
  from: number;
  to: number;
  samples: number;
  fromSample?: number;
  toSample?: number;
  oldSamples: number;
  train: number;
  validation: number;
  holdout: number;
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
  trainedOn: TrainedOn,
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

/**
 * The drift report of a request as JSON of at most `maxChars` characters:
 * kind, detector group, champion, live and validation accuracy, window and the
 * drifted features with their KS statistic and p-value (most significant
 * first). When too long, the least significant features are dropped (counted
 * in `droppedFeatures`), so the value stays valid JSON.
 */
export function driftReportJson(request: RetrainRequest, maxChars = TAG_VALUE_MAX_CHARS): string {
  const base = {
    kind: request.kind,
    groupKey: request.groupKey,
    championVersion: request.championVersion,
    requestedAt: request.requestedAt,
    ...(request.sampleIndex !== undefined ? { sampleIndex: request.sampleIndex } : {}),
    liveAccuracy: request.liveAccuracy,
    validationAccuracy: request.validationAccuracy,
    window: request.window,
  };
  const features = request.features.map((f) => ({
    feature: f.feature,
    statistic: f.statistic,
    pvalue: f.pvalue,
  }));
  for (let keep = features.length; keep >= 0; keep--) {
    const dropped = features.length - keep;
    const json = JSON.stringify({
      ...base,
      features: features.slice(0, keep),
      ...(dropped > 0 ? { droppedFeatures: dropped } : {}),
    });
    if (json.length <= maxChars) return json;
  }
  return JSON.stringify({ kind: request.kind, truncated: true }).slice(0, maxChars);
}
