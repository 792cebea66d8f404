/**
 * What the edge does when the retrainer rejects the challenger of an open
 * *concept* episode (docs/drift-detector-design.md, section 5, finding 2). A
 * covariate rejection may mean the champion handles the shift (the detector
 * then adopts it, `RetrainTrigger.challengerRejected`); a concept rejection
 * means the champion is still wrong and nothing new is serving, so waiting for
 * the episode's TTL (100,000 samples) would leave it drifted. Instead:
 *
 * - a stage-1 rejection whose event names a stage-2 follow-up
 *   (`followUpRequestId`, `retrainer/src/stages.ts`): wait for that one — the
 *   open episode now answers to it;
 * - a final rejection of a trained challenger: re-request at once with twice
 *   the samples it was trained on (`DriftEpisodeManager.reRequest`), at most
 *   `maxReRequests` times per episode;
 * - a rejection without a training (not enough data, a failure), or the
 *   re-requests used up: nothing; the episode expires as before.
 *
 * The same decision drives the offline evaluator (`bin/lib/replay.ts`).
 */

/** What a rejection of the open concept request says. */
export interface ConceptRejectionFacts {
  /** The stage-2 retrain the retrainer queued after this one, if any. */
  followUpRequestId?: string | undefined;
  /** Samples the rejected challenger was trained on; absent when nothing was trained. */
  trainedSamples?: number | undefined;
}

export type ConceptRejectionAction =
  | { action: 'await-follow-up'; requestId: string }
  | { action: 're-request'; minSamples: number; attempt: number }
  | { action: 'give-up'; reason: string };

/** Default most re-requests per concept episode (`CONCEPT_REREQUEST_MAX`). */
export const DEFAULT_CONCEPT_REREQUESTS = 3;

/** The decision of the module comment; `made` re-requests were already made in the episode. */
export function onConceptRejected(
  facts: ConceptRejectionFacts,
  made: number,
  maxReRequests: number,
): ConceptRejectionAction {
  if (facts.followUpRequestId !== undefined)
    return { action: 'await-follow-up', requestId: facts.followUpRequestId };
  if (facts.trainedSamples === undefined || facts.trainedSamples <= 0)
    return { action: 'give-up', reason: 'no challenger was trained (not enough data, or a failure)' };
  if (made >= maxReRequests)
    return { action: 'give-up', reason: `${made} re-request(s) made, the most per episode` };
  return { action: 're-request', minSamples: 2 * facts.trainedSamples, attempt: made + 1 };
}
