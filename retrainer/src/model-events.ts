import {
  modelEventSchema,
  type ModelEvent,
  type ModelMetrics,
  type RetrainRequest,
} from '../../common/events/schemas.ts';
import type { EvalMetrics } from '../../common/model/types.ts';
import type { RetrainOutcome } from './pipeline.ts';

/**
 * The `driftline.model-events` the retrainer publishes: `model-promoted` for a
 * promotion, `model-rejected` for everything else (a rejected challenger, a
 * failed or timed-out training, a request that ended without a training),
 * each validated against the event schema.
 */

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
export function modelEventFor(
  outcome: RetrainOutcome,
  request: RetrainRequest,
  at: number,
  stage: { stage?: 1 | 2; followUpRequestId?: string } = {},
): ModelEvent {
  const common = {
    ...(stage.stage !== undefined ? { stage: stage.stage } : {}),
    ...(stage.followUpRequestId !== undefined ? { followUpRequestId: stage.followUpRequestId } : {}),
    ...(outcome.challenger !== null ? { trainedSamples: outcome.trainedOn.samples } : {}),
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
