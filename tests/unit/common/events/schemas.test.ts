import { describe, expect, it } from 'vitest';
import {
  EVENT_TYPES,
  modelEventSchema,
  parseEvent,
  parseModelEvent,
  parseRetrainRequest,
  retrainRequestSchema,
  type ModelEvent,
  type RetrainRequest,
} from '../../../../common/events/schemas.ts';

const T0 = 1_700_000_000_000;
const ID = 'a'.repeat(64);

function request(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: RetrainRequest = {
    type: 'retrain-request',
    requestId: ID,
    correlationId: 'drift-aaaaaaaaaaaaaaaa',
    modelName: 'driftline-efficiency',
    championVersion: '3',
    kind: 'covariate',
    requestedAt: T0,
    sampleIndex: 21_499,
    features: [
      { feature: 'temperatureC', statistic: 0.17, pvalue: 1e-9 },
      { feature: 'powerKw', statistic: 0.11, pvalue: 1e-5 },
    ],
    window: { fromTs: T0 - 10_000, toTs: T0, sampleFrom: 20_500, sampleTo: 21_499 },
    liveAccuracy: 0.97,
    validationAccuracy: 0.985,
    groupKey: 'all',
  };
  return { ...base, ...overrides };
}

const metrics = { samples: 2_000, accuracy: 0.98, macroF1: 0.95, logLoss: 0.07 };
const promoted: ModelEvent = {
  type: 'model-promoted',
  modelName: 'driftline-efficiency',
  version: '4',
  previousVersion: '3',
  correlationId: 'drift-aaaaaaaaaaaaaaaa',
  requestId: ID,
  reason: 'candidate macro-F1 0.95 >= champion 0.81 on the drift window',
  metrics,
  previousMetrics: { samples: 2_000, accuracy: 0.85, macroF1: 0.81 },
  at: T0 + 60_000,
};
const rejected: ModelEvent = {
  type: 'model-rejected',
  modelName: 'driftline-efficiency',
  version: 'candidate-7',
  championVersion: '3',
  correlationId: 'c-1',
  requestId: ID,
  reason: 'candidate worse than champion',
  metrics,
  at: T0,
};
const rolledBack: ModelEvent = {
  type: 'model-rolled-back',
  modelName: 'driftline-efficiency',
  version: '3',
  fromVersion: '4',
  correlationId: 'ops-1',
  requestId: null,
  reason: 'operator rollback',
  at: T0,
};

describe('retrain request schema', () => {
  it('accepts a full request and a minimal concept one', () => {
    expect(parseRetrainRequest(request())).toEqual({ ok: true, value: request() });
    const concept = request({
      kind: 'concept',
      features: [],
      sampleIndex: undefined,
      liveAccuracy: 0.8,
      window: { fromTs: T0, toTs: T0 },
    });
    const r = parseRetrainRequest(concept);
    expect(r.ok).toBe(true);
  });

  it('accepts null accuracies (no labels yet, unknown validation)', () => {
    expect(parseRetrainRequest(request({ liveAccuracy: null, validationAccuracy: null })).ok).toBe(true);
  });

  it('strips unknown keys', () => {
    const r = parseRetrainRequest(request({ extra: 1 }));
    expect(r.ok && 'extra' in r.value).toBe(false);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a request id that is not hex', { requestId: 'not-a-hash' }, /requestId/],
    ['an unknown kind', { kind: 'label' }, /kind/],
    [
      'a covariate request without features',
      { features: [] },
      /features: a covariate retrain request names at least one feature/,
    ],
    [
      'a repeated feature',
      {
        features: [
          { feature: 'powerKw', statistic: 0.1, pvalue: 0 },
          { feature: 'powerKw', statistic: 0.2, pvalue: 0 },
        ],
      },
      /features must not repeat/,
    ],
    [
      'an unknown feature',
      { features: [{ feature: 'humidity', statistic: 0.1, pvalue: 0 }] },
      /features\.0\.feature/,
    ],
    ['a p-value above 1', { features: [{ feature: 'powerKw', statistic: 0.1, pvalue: 1.5 }] }, /pvalue/],
    [
      'an inverted window',
      { window: { fromTs: T0, toTs: T0 - 1 } },
      /window\.fromTs: window\.fromTs must not be after window\.toTs/,
    ],
    [
      'an inverted sample range',
      { window: { fromTs: T0, toTs: T0, sampleFrom: 5, sampleTo: 4 } },
      /sampleFrom/,
    ],
    ['a fractional ts', { requestedAt: 1.5 }, /requestedAt/],
    ['an accuracy above 1', { liveAccuracy: 1.01 }, /liveAccuracy/],
    ['a control character in the model name', { modelName: 'a\nb' }, /modelName/],
    ['a missing groupKey', { groupKey: undefined }, /groupKey/],
  ])('rejects %s with a readable reason', (_name, overrides, reason) => {
    const r = parseRetrainRequest(request(overrides));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});

describe('model events', () => {
  it('accepts promoted, rejected and rolled-back events and narrows on type', () => {
    for (const e of [promoted, rejected, rolledBack]) {
      const r = parseModelEvent(e);
      expect(r).toEqual({ ok: true, value: e });
    }
    const r = parseModelEvent({
      ...promoted,
      previousVersion: null,
      requestId: null,
      previousMetrics: undefined,
    });
    expect(r.ok).toBe(true);
    if (r.ok && r.value.type === 'model-promoted') expect(r.value.previousVersion).toBeNull();
  });

  it('rejects an event missing what its type requires', () => {
    expect(modelEventSchema.safeParse({ ...promoted, metrics: undefined }).success).toBe(false);
    expect(modelEventSchema.safeParse({ ...rejected, championVersion: undefined }).success).toBe(false);
    expect(modelEventSchema.safeParse({ ...rolledBack, fromVersion: undefined }).success).toBe(false);
    expect(parseModelEvent({ ...promoted, metrics: { ...metrics, accuracy: 2 } })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/metrics\.accuracy/),
    });
  });
});

describe('parseEvent', () => {
  it('dispatches on type', () => {
    expect(EVENT_TYPES).toEqual(['retrain-request', 'model-promoted', 'model-rejected', 'model-rolled-back']);
    expect(parseEvent(request())).toMatchObject({ ok: true, value: { type: 'retrain-request' } });
    expect(parseEvent(promoted)).toMatchObject({ ok: true, value: { type: 'model-promoted' } });
    expect(parseEvent(rolledBack)).toMatchObject({ ok: true, value: { type: 'model-rolled-back' } });
  });

  it.each<[string, unknown, RegExp]>([
    ['null', null, /JSON object/],
    ['an array', [request()], /JSON object/],
    ['a string', 'retrain-request', /JSON object/],
    ['a missing type', { ...request(), type: undefined }, /unknown event type undefined/],
    ['an unknown type', { type: 'model-deleted' }, /unknown event type "model-deleted"/],
    ['a non-string type', { type: 7 }, /unknown event type number/],
  ])('rejects %s', (_name, value, reason) => {
    const r = parseEvent(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('never throws, even on hostile objects', () => {
    const throwingType = Object.defineProperty({}, 'type', {
      get() {
        throw new Error('boom');
      },
      enumerable: true,
    });
    expect(parseEvent(throwingType).ok).toBe(false);
    const throwingField = Object.defineProperty({ ...request() }, 'modelName', {
      get() {
        throw new Error('boom');
      },
      enumerable: true,
    });
    const r = parseEvent(throwingField);
    expect(r).toMatchObject({ ok: false, reason: expect.stringContaining('boom') });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(parseEvent(proxy).ok).toBe(false);
    expect(parseEvent({ ...request(), requestedAt: 10n }).ok).toBe(false);
  });

  it('round-trips through JSON (what the bus does)', () => {
    for (const e of [request(), promoted, rejected, rolledBack]) {
      const r = parseEvent(JSON.parse(JSON.stringify(e)));
      expect(r.ok).toBe(true);
    }
    expect(retrainRequestSchema.parse(JSON.parse(JSON.stringify(request())))).toEqual(request());
  });
});
