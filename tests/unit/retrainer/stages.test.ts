import { describe, expect, it } from 'vitest';
import { makeRequest } from '../../../retrainer/src/testing/fakes.ts';
import { followUpRequestId, planStage } from '../../../retrainer/src/stages.ts';

const CONFIG = { minSamples: 2_000, maxSamples: 20_000, stage1MinSamples: 600 };

describe('planStage (two-stage concept retraining)', () => {
  it('a concept request trains on 600 first, then a stage-2 follow-up on 2,000 with its own id and the same correlation', () => {
    const request = makeRequest({ requestId: 'a'.repeat(32), correlationId: 'drift-x' });
    const plan = planStage(request, CONFIG);
    expect(plan).toMatchObject({ stage: 1, minSamples: 600 });
    expect(plan.followUp).toEqual({ ...request, requestId: followUpRequestId(request.requestId), stage: 2 });
    expect(followUpRequestId(request.requestId)).toMatch(/^[0-9a-f]{64}$/);
    expect(planStage(plan.followUp as typeof request, CONFIG)).toEqual({ stage: 2, minSamples: 2_000 });
  });

  it('one stage for covariate requests, for stage1MinSamples 0 or not below minSamples', () => {
    const covariate = makeRequest({
      kind: 'covariate',
      features: [{ feature: 'vibrationHz', statistic: 0.3, pvalue: 1e-9 }],
    });
    expect(planStage(covariate, CONFIG)).toEqual({ stage: undefined, minSamples: 2_000 });
    const concept = makeRequest();
    expect(planStage(concept, { ...CONFIG, stage1MinSamples: 0 })).toEqual({
      stage: undefined,
      minSamples: 2_000,
    });
    expect(planStage(concept, { ...CONFIG, stage1MinSamples: 2_000 }).followUp).toBeUndefined();
  });

  it('a re-request gets at least what it asks for, never fewer than minSamples, at most maxSamples', () => {
    expect(planStage(makeRequest({ stage: 2, minSamples: 4_000 }), CONFIG)).toEqual({
      stage: 2,
      minSamples: 4_000,
    });
    expect(planStage(makeRequest({ stage: 2, minSamples: 100 }), CONFIG).minSamples).toBe(2_000);
    expect(planStage(makeRequest({ stage: 2, minSamples: 90_000 }), CONFIG).minSamples).toBe(20_000);
    // A request naming minSamples is never split into stages.
    expect(planStage(makeRequest({ minSamples: 3_000 }), CONFIG)).toEqual({
      stage: undefined,
      minSamples: 3_000,
    });
  });
});
