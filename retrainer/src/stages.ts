import { createHash } from 'node:crypto';
import type { RetrainRequest } from '../../common/events/schemas.ts';
import type { RetrainerConfig } from './config.ts';

/**
 * Two-stage concept retraining (docs/drift-detector-design.md, section 5,
 * finding 2). A model trained on ~600 post-drift labels is good enough to
 * heal but not to keep; one trained on ~2,000 is, but waiting for them costs
 * ~1,400 samples of a drifted champion. So a concept request runs twice:
 *
 * 1. **stage 1** on `stage1MinSamples` (600) post-drift samples, warm-started
 *    from the champion, through the unchanged gate against the drifted
 *    champion (floor, +`minGain`, macro-F1, same holdout): promoted only if
 *    better;
 * 2. **stage 2**, queued by the retainer right after stage 1 whatever its
 *    outcome (a follow-up request, same correlation id, its own request id
 *    {@link followUpRequestId}), on at least `minSamples` (2,000) samples of
 *    the same window, through the same gate against whoever is champion then
 *    — the stage-1 model when it was promoted, so it replaces it only if it
 *    beats it on its holdout.
 *
 * A covariate request, a request with `stage: 2` (a follow-up, or the edge's
 * re-request after a rejection, which asks for `minSamples`), or a config
 * whose `stage1MinSamples` is 0 or not below `minSamples`, trains once.
 */

/** How one request is trained. */
export interface StagePlan {
  /** 1: the early model of a two-stage retrain; 2: the follow-up or a re-request; undefined: one stage. */
  stage: 1 | 2 | undefined;
  /** Fewest post-drift samples for this training. */
  minSamples: number;
  /** The stage-2 request to queue once stage 1 has ended. */
  followUp?: RetrainRequest;
}

/** The request id of the stage-2 follow-up of `requestId`: sha256 of it and `:stage-2`, hex. */
export function followUpRequestId(requestId: string): string {
  return createHash('sha256').update(`${requestId}:stage-2`).digest('hex');
}

/** The plan of `request` under `config` (see the module comment). */
export function planStage(
  request: RetrainRequest,
  config: Pick<RetrainerConfig, 'minSamples' | 'maxSamples' | 'stage1MinSamples'>,
): StagePlan {
  const twoStage =
    request.kind === 'concept' &&
    request.stage === undefined &&
    request.minSamples === undefined &&
    config.stage1MinSamples > 0 &&
    config.stage1MinSamples < config.minSamples;
  if (twoStage)
    return {
      stage: 1,
      minSamples: config.stage1MinSamples,
      followUp: { ...request, requestId: followUpRequestId(request.requestId), stage: 2 },
    };
  // A request may ask for more than the configured minimum (never fewer), up to what a training uses.
  const wanted = Math.max(config.minSamples, request.minSamples ?? config.minSamples);
  return {
    stage: request.stage,
    minSamples: Math.min(wanted, Math.max(config.minSamples, config.maxSamples)),
  };
}
