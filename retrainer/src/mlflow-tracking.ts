import { describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import type { MlflowClient } from '../../common/mlflow/client.ts';
import type { EpochLog } from '../../common/model/classifier.ts';
import { MlflowRegistry } from '../../common/registry/mlflow.ts';
import type { ModelRegistry } from '../../common/registry/types.ts';
import {
  TAG_VALUE_MAX_CHARS,
  type RetrainTracking,
  type TrackedRun,
  type TrackedRunStart,
  type TrackedRunStatus,
} from './tracking.ts';

/**
 * The retrainer's experiment tracking on MLflow: each retrain is a run in the
 * registry's experiment (default `driftline`) with the retrain's params, the
 * per-epoch curves (`loss`, `val_loss`, `val_accuracy`, `val_macro_f1`,
 * `learning_rate`, `epoch_ms` at step = epoch), the holdout metrics and the
 * tags (`driftline.correlation_id`, `driftline.request_id`,
 * `driftline.drift_kind`, `driftline.drift_report`, …). `retrainOnce` then
 * registers the challenger with the run's id, so the model version's source
 * is `runs:/<run>/model` and its files are uploaded into that run through the
 * artifact proxy.
 *
 * Chosen by the process that builds the retrainer (`main.ts`, the all-in-one
 * runner) through {@link mlflowTrackingFor}: MLflow runs when the registry is
 * an `MlflowRegistry`.
 */

/** MLflow's limit on a run tag value (`MAX_TAG_VAL_LENGTH`): what every tracker must accept. */
export const MLFLOW_TAG_VALUE_LIMIT = TAG_VALUE_MAX_CHARS;
/** MLflow's limit on a param value (`MAX_PARAM_VAL_LENGTH`). */
export const MLFLOW_PARAM_VALUE_LIMIT = 6000;

/** The part of `MlflowRegistry` the tracking uses (a fake in unit tests). */
export type MlflowRunLogger = Pick<
  MlflowRegistry,
  'kind' | 'startRun' | 'logMetrics' | 'logEpochMetrics' | 'finishRun'
> & {
  readonly client: Pick<MlflowClient, 'logBatch'>;
};

/** Options of {@link createMlflowTracking}. */
export interface MlflowTrackingOptions {
  /** Experiment of the runs. Default: the registry's (`driftline`). */
  experiment?: string;
  /** Logs failed epoch writes (which are fire and forget). Default silent. */
  logger?: Logger;
}

/** The metrics of one epoch, by their MLflow names. */
export function epochMetrics(log: EpochLog): Record<string, number> {
  return {
    loss: log.loss,
    val_loss: log.valLoss,
    val_accuracy: log.valAccuracy,
    val_macro_f1: log.valMacroF1,
    learning_rate: log.learningRate,
    epoch_ms: log.durationMs,
  };
}

/** Clips tag and param values to MLflow's limits. */
function clip<T extends string | number | boolean>(
  values: Record<string, T>,
  limit: number,
): Record<string, T | string> {
  const out: Record<string, T | string> = {};
  for (const [key, value] of Object.entries(values))
    out[key] = typeof value === 'string' && value.length > limit ? value.slice(0, limit) : value;
  return out;
}

/** Experiment tracking of retrains on the MLflow server behind `registry`. */
export function createMlflowTracking(
  registry: MlflowRunLogger,
  options: MlflowTrackingOptions = {},
): RetrainTracking {
  const logger = options.logger ?? silentLogger();
  return {
    kind: registry.kind,
    async startRun(start: TrackedRunStart): Promise<TrackedRun> {
      const { runId } = await registry.startRun({
        ...(options.experiment !== undefined ? { experiment: options.experiment } : {}),
        runName: start.runName,
        params: clip(start.params, MLFLOW_PARAM_VALUE_LIMIT),
        tags: clip(start.tags, MLFLOW_TAG_VALUE_LIMIT) as Record<string, string>,
      });
      // Epoch writes are queued in order and never block the training; later calls wait for them.
      let queue: Promise<void> = Promise.resolve();
      const drain = (): Promise<void> => queue;
      return {
        runId,
        logEpoch(log: EpochLog): void {
          queue = queue
            .then(() => registry.logEpochMetrics(runId, [epochMetrics(log)], log.epoch))
            .catch((err: unknown) => {
              logger.warn('MLflow: logging an epoch failed', {
                runId,
                epoch: log.epoch,
                err: describeError(err),
              });
            });
        },
        async logMetrics(metrics: Record<string, number>): Promise<void> {
          await drain();
          await registry.logMetrics(runId, metrics);
        },
        async setTags(tags: Record<string, string>): Promise<void> {
          const list = Object.entries(clip(tags, MLFLOW_TAG_VALUE_LIMIT)).map(([key, value]) => ({
            key,
            value: String(value),
          }));
          for (let i = 0; i < list.length; i += 100)
            await registry.client.logBatch(runId, { tags: list.slice(i, i + 100) });
        },
        async finish(status: TrackedRunStatus): Promise<void> {
          await drain();
          await registry.finishRun(runId, status);
        },
      };
    },
  };
}

/**
 * The experiment tracking that goes with `registry`: MLflow runs (experiment
 * `driftline`) in the registry's MLflow server when it is an `MlflowRegistry`,
 * none otherwise.
 */
export function mlflowTrackingFor(registry: ModelRegistry, logger?: Logger): RetrainTracking | undefined {
  return registry instanceof MlflowRegistry
    ? createMlflowTracking(registry, logger ? { logger } : {})
    : undefined;
}
