import { describe, expect, it } from 'vitest';
import { DriftEpisodeManager, retrainRequestId } from '../../../../common/drift/episode.ts';
import { FeatureDriftDetector } from '../../../../common/drift/feature-drift.ts';
import { SeedStream, seedReference, seedSd } from '../../../../common/drift/synthetic.ts';
import type { DriftAlarm } from '../../../../common/drift/types.ts';
import { parseRetrainRequest } from '../../../../common/events/schemas.ts';

const T0 = 1_700_000_000_000;

function alarm(at: number, overrides: Partial<DriftAlarm> = {}): DriftAlarm {
  return {
    kind: 'covariate',
    groupKey: 'all',
    at: { sampleIndex: at, ts: T0 + at },
    onset: { sampleIndex: at - 1_000, ts: T0 + at - 1_000 },
    features: [{ feature: 'temperatureC', statistic: 0.17, pvalue: 1e-9 }],
    liveAccuracy: null,
    ...overrides,
  };
}

function manager(ttl = 100_000): DriftEpisodeManager {
  return new DriftEpisodeManager(
    {
      modelName: 'driftline-efficiency',
      championVersion: '3',
      validationAccuracy: 0.985,
      episodeTtlSamples: ttl,
    },
    { now: () => T0 + 99 },
  );
}

describe('retrainRequestId', () => {
  it('is a deterministic sha256 of model, champion version and episode start', () => {
    const id = retrainRequestId('driftline-efficiency', '3', { sampleIndex: 20_500, ts: T0 });
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(retrainRequestId('driftline-efficiency', '3', { sampleIndex: 20_500, ts: T0 })).toBe(id);
    expect(retrainRequestId('driftline-efficiency', '4', { sampleIndex: 20_500, ts: T0 })).not.toBe(id);
    expect(retrainRequestId('driftline-efficiency', '3', { sampleIndex: 20_501, ts: T0 })).not.toBe(id);
    expect(retrainRequestId('driftline-efficiency', '3', { sampleIndex: 20_500, ts: T0 + 1 })).not.toBe(id);
    // No concatenation ambiguity between name and version.
    expect(retrainRequestId('a1', '2', { sampleIndex: 0, ts: 0 })).not.toBe(
      retrainRequestId('a', '12', { sampleIndex: 0, ts: 0 }),
    );
  });
});

describe('DriftEpisodeManager', () => {
  it('validates its parameters', () => {
    expect(() => new DriftEpisodeManager({ modelName: '', championVersion: '1' })).toThrow(/^modelName /);
    expect(() => new DriftEpisodeManager({ modelName: 'm', championVersion: '' })).toThrow(
      /^championVersion /,
    );
    expect(
      () => new DriftEpisodeManager({ modelName: 'm', championVersion: '1', episodeTtlSamples: 0 }),
    ).toThrow(/^episodeTtlSamples /);
    expect(
      () => new DriftEpisodeManager({ modelName: 'm', championVersion: '1', validationAccuracy: 1.5 }),
    ).toThrow(/^validationAccuracy /);
  });

  it('turns many alarms of one episode into one schema-valid request', () => {
    const m = manager();
    const first = m.onAlarm(alarm(21_499));
    expect(first).not.toBeNull();
    const request = first!;
    expect(parseRetrainRequest(request)).toEqual({ ok: true, value: request });
    expect(request).toMatchObject({
      type: 'retrain-request',
      requestId: retrainRequestId('driftline-efficiency', '3', { sampleIndex: 20_499, ts: T0 + 20_499 }),
      modelName: 'driftline-efficiency',
      championVersion: '3',
      kind: 'covariate',
      requestedAt: T0 + 99,
      sampleIndex: 21_499,
      window: { fromTs: T0 + 20_499, toTs: T0 + 21_499, sampleFrom: 20_499, sampleTo: 21_499 },
      validationAccuracy: 0.985,
      liveAccuracy: null,
      groupKey: 'all',
    });
    expect(request.correlationId).toBe(`drift-${request.requestId.slice(0, 16)}`);
    expect(request.window.fromSeq).toBeUndefined(); // seqs of the 'all' group mean nothing

    // A storm: covariate alarms from other groups, a concept alarm: all attach, nothing is emitted.
    for (let i = 1; i <= 50; i++)
      expect(m.onAlarm(alarm(21_499 + i * 500, { groupKey: `m-${i % 5}` }))).toBeNull();
    expect(m.onAlarm(alarm(50_000, { kind: 'concept', features: [], liveAccuracy: 0.8 }))).toBeNull();
    expect(m.stats).toEqual({
      episodes: 1,
      requests: 1,
      attachedAlarms: 51,
      expired: 0,
      closedByChampion: 0,
      closedByReference: 0,
    });
    expect(m.episode()).toMatchObject({
      requestId: request.requestId,
      attachedAlarms: 51,
      kinds: ['covariate', 'concept'],
      groups: ['all', 'm-1', 'm-2', 'm-3', 'm-4', 'm-0'],
    });
  });

  it('a new champion closes the episode; the next alarm asks again, against the new version', () => {
    const m = manager();
    const a = m.onAlarm(alarm(21_499));
    expect(m.onAlarm(alarm(22_000))).toBeNull();
    m.championLoaded('4', 0.99);
    expect(m.episode()).toBeNull();
    const b = m.onAlarm(alarm(30_000));
    expect(b).toMatchObject({ championVersion: '4', validationAccuracy: 0.99 });
    expect(b?.requestId).not.toBe(a?.requestId);
    expect(m.stats).toMatchObject({ episodes: 2, requests: 2, closedByChampion: 1 });
  });

  it('an episode expires episodeTtlSamples after it opened (a retraining that never produced a champion is asked for again)', () => {
    const m = manager(10_000);
    expect(m.onAlarm(alarm(21_499))).not.toBeNull();
    expect(m.onAlarm(alarm(31_498))).toBeNull();
    expect(m.episode(31_498)).not.toBeNull();
    expect(m.episode(31_499)).toBeNull();
    expect(m.onAlarm(alarm(31_499))).not.toBeNull();
    expect(m.stats).toMatchObject({ episodes: 2, requests: 2, expired: 1, attachedAlarms: 1 });
  });

  it('puts seqs into the window for a per-machine group, and a concept alarm carries the live accuracy', () => {
    const m = manager();
    const r = m.onAlarm(
      alarm(5_000, {
        groupKey: 'm-7',
        at: { sampleIndex: 5_000, ts: T0 + 5_000, seq: 2_500 },
        onset: { sampleIndex: 4_000, ts: T0 + 4_000, seq: 2_000 },
      }),
    );
    expect(r?.window).toEqual({
      fromTs: T0 + 4_000,
      toTs: T0 + 5_000,
      fromSeq: 2_000,
      toSeq: 2_500,
      sampleFrom: 4_000,
      sampleTo: 5_000,
    });
    const c = manager().onAlarm(alarm(5_000, { kind: 'concept', features: [], liveAccuracy: 0.8 }));
    expect(c).toMatchObject({ kind: 'concept', features: [], liveAccuracy: 0.8 });
  });

  it('fills a covariate request’s live accuracy from the accuracy monitor when asked to', () => {
    const m = new DriftEpisodeManager(
      { modelName: 'm', championVersion: '1' },
      { liveAccuracy: () => 0.97, correlationId: () => 'corr-1' },
    );
    expect(m.onAlarm(alarm(9_000))).toMatchObject({
      liveAccuracy: 0.97,
      correlationId: 'corr-1',
      validationAccuracy: null,
    });
  });

  it('end to end: a persistent 0.5 sd shift alarms every cooldown, and the episode emits exactly one request', () => {
    const detector = new FeatureDriftDetector(seedReference(1, 5_000), { detector: 'windows' });
    const stream = new SeedStream({
      seed: 3,
      shift: { feature: 'temperatureC', delta: 0.5 * seedSd('temperatureC'), onset: 20_250 },
    });
    const m = manager();
    const requests = [];
    for (let i = 0; i < 45_000; i++) {
      const u = detector.update({ ...stream.next(), ts: T0 + i * 10 });
      if (u.alarm) {
        const r = m.onAlarm(u.alarm, detector.sampleIndex);
        if (r) requests.push(r);
      }
    }
    expect(detector.stats.alarms).toBe(5);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      sampleIndex: 21_499,
      window: { sampleFrom: 20_500, sampleTo: 21_499, fromTs: T0 + 205_000, toTs: T0 + 214_990 },
      features: [{ feature: 'temperatureC' }],
    });
  });
});

describe('DriftEpisodeManager.reRequest (a rejected concept retrain asks again with more data)', () => {
  it('repeats the open episode’s request for more samples: new id, same correlation id and window start', () => {
    const m = manager();
    const first = m.onAlarm(alarm(1_200, { kind: 'concept', features: [] }), 1_200);
    expect(first).not.toBeNull();
    expect(m.reRequestCount).toBe(0);
    const again = m.reRequest(3_500, 4_000);
    expect(again).toMatchObject({
      kind: 'concept',
      correlationId: first?.correlationId,
      sampleIndex: 3_500,
      stage: 2,
      minSamples: 4_000,
      window: { sampleFrom: first?.window.sampleFrom, sampleTo: 3_500 },
    });
    expect(again?.requestId).not.toBe(first?.requestId);
    expect(parseRetrainRequest(again).ok).toBe(true);
    const third = m.reRequest(6_000, 8_000);
    expect(third?.requestId).not.toBe(again?.requestId);
    expect(m.reRequestCount).toBe(2);
    expect(m.stats.requests).toBe(3);
    expect(m.stats.episodes).toBe(1);
  });

  it('asks nothing without an open episode, and a new champion ends it', () => {
    const m = manager();
    expect(m.reRequest(100, 4_000)).toBeNull();
    m.onAlarm(alarm(1_200, { kind: 'concept', features: [] }), 1_200);
    m.championLoaded('2', 0.97);
    expect(m.reRequest(3_500, 4_000)).toBeNull();
    expect(m.reRequestCount).toBe(0);
  });
});
