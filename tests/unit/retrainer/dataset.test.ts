import { describe, expect, it } from 'vitest';
import type {
  LabelledSample,
  LabelledSampleStore,
  SampleWindowQuery,
} from '../../../common/samples/types.ts';
import { matchesWindow } from '../../../common/samples/types.ts';
import type { Efficiency } from '../../../common/schema/features.ts';
import {
  NotEnoughDataError,
  REPLAY_MIN_POOL,
  REPLAY_MIN_PREDICTED,
  binomialUpperTail,
  buildDataset,
  replayableClasses,
  splitRecent,
  type DatasetOptions,
} from '../../../retrainer/src/dataset.ts';
import { makeSamples, seedLabel } from '../../../retrainer/src/testing/fakes.ts';

/** An in-memory store over a fixed list (the file store has its own tests). */
function memoryStore(samples: LabelledSample[]): LabelledSampleStore & { queries: SampleWindowQuery[] } {
  const queries: SampleWindowQuery[] = [];
  return {
    kind: 'memory',
    queries,
    append: async (s) => void samples.push(...s),
    readWindow: async (q = {}) => {
      queries.push(q);
      const hit = samples.filter((s) => matchesWindow(s, q));
      return q.limit !== undefined ? hit.slice(-q.limit) : hit;
    },
    stats: async () => ({ samples: samples.length, segments: 1, bytes: 0, skippedLines: 0 }),
    close: async () => undefined,
  };
}

const OPTIONS: DatasetOptions = {
  minSamples: 500,
  maxSamples: 20_000,
  oldDataShare: 0.2,
  oldDataShareConcept: 0,
  holdoutShare: 0.15,
  validationShare: 0.15,
  seed: 3,
};
const T0 = 1_700_000_000_000;
const key = (s: {
  row: { productionSpeedUph: number; errorRatePct: number; temperatureC: number };
}): string => `${s.row.productionSpeedUph}|${s.row.errorRatePct}|${s.row.temperatureC}`;

describe('dataset', () => {
  it('splits 70/15/15, per class, reproducibly and independent of arrival order', () => {
    const recent = makeSamples(2000);
    const a = splitRecent(recent, OPTIONS);
    expect(a.holdout.length).toBeGreaterThanOrEqual(297);
    expect(a.holdout.length).toBeLessThanOrEqual(303);
    expect(a.validation.length).toBeGreaterThanOrEqual(297);
    expect(a.validation.length).toBeLessThanOrEqual(303);
    expect(a.train.length + a.validation.length + a.holdout.length).toBe(2000);
    // Stratified: the rare class keeps its share in the holdout.
    const share = (xs: LabelledSample[], c: string): number =>
      xs.filter((s) => s.label === c).length / xs.length;
    expect(Math.abs(share(a.holdout, 'Medium') - share(recent, 'Medium'))).toBeLessThan(0.01);
    expect(a.holdout.some((s) => s.label === 'High')).toBe(true);
    // No sample is in two parts.
    const ids = new Set([...a.train, ...a.validation, ...a.holdout].map((s) => s.seq));
    expect(ids.size).toBe(2000);
    const b = splitRecent([...recent].reverse(), OPTIONS);
    expect(b.holdout.map((s) => s.seq)).toEqual(a.holdout.map((s) => s.seq));
    const c = splitRecent(recent, { ...OPTIONS, seed: 4 });
    expect(c.holdout.map((s) => s.seq)).not.toEqual(a.holdout.map((s) => s.seq));
  });

  it('draws holdout and validation only from the recent window; older data goes to training only (covariate drift)', async () => {
    const old = makeSamples(3000, { startIndex: 0, seed: 1 });
    const recent = makeSamples(2000, { startIndex: 3000, seed: 2 });
    const store = memoryStore([...old, ...recent]);
    const fromTs = T0 + 3000 * 1000;
    const ds = await buildDataset(
      store,
      { window: { fromTs, toTs: T0 + 5000 * 1000 }, kind: 'covariate' },
      OPTIONS,
    );
    const recentKeys = new Set(recent.map(key));
    const oldKeys = new Set(old.map(key));
    expect(ds.holdout.every((r) => recentKeys.has(key(r)))).toBe(true);
    expect(ds.validation.every((r) => recentKeys.has(key(r)))).toBe(true);
    const oldInTrain = ds.train.filter((r) => oldKeys.has(key(r))).length;
    expect(oldInTrain).toBe(ds.provenance.oldSamples);
    expect(oldInTrain / ds.train.length).toBeCloseTo(0.2, 2);
    expect(ds.provenance).toMatchObject({
      samples: 2000,
      fromTs,
      toTs: T0 + 4999 * 1000,
      fromSample: 3000,
      toSample: 4999,
    });
    expect(store.queries[1]).toMatchObject({ toTs: fromTs - 1 });
  });

  it('uses no old data after concept drift by default (old samples carry the old labels)', async () => {
    const old = makeSamples(3000, { startIndex: 0, seed: 1 });
    const recent = makeSamples(2000, { startIndex: 3000, seed: 2, label: (r) => seedLabel(r, 150) });
    const store = memoryStore([...old, ...recent]);
    const ds = await buildDataset(
      store,
      { window: { fromTs: T0 + 3000 * 1000, toTs: T0 + 5000 * 1000 }, kind: 'concept' },
      OPTIONS,
    );
    expect(ds.provenance.oldSamples).toBe(0);
    expect(store.queries).toHaveLength(1);
    expect(ds.train.length + ds.validation.length + ds.holdout.length).toBe(2000);
  });

  it('trains on the validation part too and reports the holdout as validation (stage 1: trainOnValidation)', async () => {
    const store = memoryStore(makeSamples(1000, { label: (r) => seedLabel(r, 150) }));
    const req = { window: { fromTs: T0 }, kind: 'concept' as const };
    const kept = await buildDataset(store, req, OPTIONS);
    const folded = await buildDataset(store, req, { ...OPTIONS, trainOnValidation: true });
    // The same split: the holdout is unchanged, the validation part joined the training part.
    expect(folded.holdout).toEqual(kept.holdout);
    expect(folded.validation).toEqual(kept.holdout);
    expect(new Set(folded.train.map(key))).toEqual(new Set([...kept.train, ...kept.validation].map(key)));
    // Training never sees the holdout.
    const held = new Set(kept.holdout.map(key));
    expect(folded.train.some((r) => held.has(key(r)))).toBe(false);
  });

  it('throws a retriable not-enough-data error below the minimum, and can extend the window to the latest data', async () => {
    const store = memoryStore(makeSamples(1200));
    const req = { window: { fromTs: T0, toTs: T0 + 399 * 1000 }, kind: 'concept' as const };
    const err = await buildDataset(store, req, OPTIONS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotEnoughDataError);
    expect(err).toMatchObject({ retriable: true, available: 400, required: 500 });
    const ds = await buildDataset(store, { ...req, extendToLatest: true }, OPTIONS);
    expect(ds.provenance.samples).toBe(1200);
  });

  it('keeps only the newest maxSamples of the window', async () => {
    const store = memoryStore(makeSamples(3000));
    const ds = await buildDataset(
      store,
      { window: { fromTs: T0 }, kind: 'concept' },
      { ...OPTIONS, maxSamples: 1000 },
    );
    expect(ds.provenance).toMatchObject({ samples: 1000, fromSample: 2000, toSample: 2999 });
  });

  it('selects by sample index when the window is given that way', async () => {
    const store = memoryStore(makeSamples(3000));
    const ds = await buildDataset(
      store,
      { window: { fromSample: 1000, toSample: 2499 }, kind: 'covariate' },
      OPTIONS,
    );
    expect(ds.provenance).toMatchObject({ samples: 1500, fromSample: 1000, toSample: 2499 });
    expect(store.queries[1]).toMatchObject({ toSample: 999 });
  });
});

describe('selective replay after concept drift', () => {
  /** Old samples labelled by the seed rule, recent ones by a rule whose speed thresholds moved down 150 UPH;
   * every sample carries the drifted champion's prediction (the seed rule). */
  function driftedStore(options: { predictedBy?: string } = {}) {
    const withPrediction = (s: LabelledSample): LabelledSample => ({
      ...s,
      prediction: seedLabel(s.row),
      modelVersion: options.predictedBy ?? '1',
    });
    const old = makeSamples(3000, { startIndex: 0, seed: 1 }).map(withPrediction);
    const recent = makeSamples(2000, {
      startIndex: 3000,
      seed: 2,
      label: (r) => seedLabel(r, 150),
    }).map(withPrediction);
    return { old, recent, store: memoryStore([...old, ...recent]) };
  }
  const window = { fromTs: T0 + 3000 * 1000, toTs: T0 + 5000 * 1000 };
  const REPLAY: DatasetOptions = { ...OPTIONS, conceptReplay: 1, conceptRecentWeight: 2 };

  it('replays the older samples of the classes the change did not shrink, weighted below the recent ones', async () => {
    const { old, recent, store } = driftedStore();
    const ds = await buildDataset(store, { window, kind: 'concept', championVersion: '1' }, REPLAY);
    // High grew (its old region is still High); Medium and Low lost part of theirs.
    expect(ds.provenance.replayedClasses).toEqual(['High']);
    const oldKeys = new Set(old.map(key));
    const recentKeys = new Set(recent.map(key));
    const replayed = ds.train.filter((r) => oldKeys.has(key(r)));
    const fresh = ds.train.filter((r) => recentKeys.has(key(r)));
    expect(replayed.length).toBeGreaterThan(0);
    expect(replayed.every((r) => r.label === 'High')).toBe(true);
    expect(ds.provenance.oldSamples).toBe(replayed.length);
    // Every replayed sample is correct under the new rule.
    expect(replayed.every((r) => seedLabel(r.row, 150) === 'High')).toBe(true);
    // The pool is the newest `conceptReplay` x (recent training rows) before the window.
    expect(store.queries[1]).toMatchObject({ toTs: window.fromTs - 1, limit: fresh.length });
    // A recent row weighs twice a replayed one; the mean weight is 1.
    const w = (r: { weight?: number }): number => r.weight ?? Number.NaN;
    expect(w(fresh[0]!) / w(replayed[0]!)).toBeCloseTo(2, 10);
    expect(ds.train.reduce((s, r) => s + w(r), 0) / ds.train.length).toBeCloseTo(1, 10);
    // Holdout and validation stay recent only; the drift reference excludes the replayed rows.
    expect(ds.holdout.every((r) => recentKeys.has(key(r)))).toBe(true);
    expect(ds.validation.every((r) => recentKeys.has(key(r)))).toBe(true);
    expect(ds.reference).toHaveLength(fresh.length);
    expect(ds.reference?.every((r) => recentKeys.has(key(r)))).toBe(true);
  });

  it('replays nothing after covariate drift, without the drifted champion, or without its predictions', async () => {
    const { store } = driftedStore();
    const covariate = await buildDataset(
      store,
      { window, kind: 'covariate' },
      { ...REPLAY, oldDataShare: 0 },
    );
    expect(covariate.provenance).toMatchObject({ oldSamples: 0 });
    expect(covariate.provenance.replayedClasses).toBeUndefined();
    const noChampion = await buildDataset(store, { window, kind: 'concept' }, REPLAY);
    expect(noChampion.provenance.oldSamples).toBe(0);
    expect(noChampion.train.every((r) => r.weight === undefined)).toBe(true);
    expect(noChampion.reference).toBeUndefined();
    const otherModel = await buildDataset(
      driftedStore({ predictedBy: '7' }).store,
      { window, kind: 'concept', championVersion: '1' },
      REPLAY,
    );
    expect(otherModel.provenance.replayedClasses).toEqual([]);
    expect(otherModel.provenance.oldSamples).toBe(0);
    const off = await buildDataset(store, { window, kind: 'concept', championVersion: '1' }, OPTIONS);
    expect(off.provenance.oldSamples).toBe(0);
  });
});

describe('replayableClasses', () => {
  const sample = (
    i: number,
    label: Efficiency,
    prediction: Efficiency,
    modelVersion = '1',
  ): LabelledSample => ({
    ...makeSamples(1, { startIndex: i })[0]!,
    label,
    prediction,
    modelVersion,
  });
  /** `n` samples the champion predicted as `predicted`, `wrong` of them labelled `other`. */
  const predicted = (
    start: number,
    n: number,
    p: Efficiency,
    wrong: number,
    other: Efficiency,
  ): LabelledSample[] => Array.from({ length: n }, (_, i) => sample(start + i, i < wrong ? other : p, p));
  const before = [
    ...predicted(0, 600, 'Low', 1, 'Medium'),
    ...predicted(600, 200, 'Medium', 4, 'Low'),
    ...predicted(800, 40, 'High', 2, 'Medium'),
  ];

  it('keeps a class whose error rate did not rise and drops one whose did', () => {
    const recent = [
      ...predicted(10_000, 400, 'Low', 40, 'Medium'), // 10 % of the old Low region is Medium now
      ...predicted(11_000, 120, 'Medium', 3, 'Low'), // 2.5 % against 2.5 % before: unchanged
      ...predicted(12_000, 20, 'High', 1, 'Medium'), // 5 % against 5 %: unchanged
    ];
    expect(replayableClasses(recent, before, '1')).toEqual(['Medium', 'High']);
  });

  it('needs evidence: a class predicted fewer than REPLAY_MIN_PREDICTED times, or a pool without predictions', () => {
    const recent = [
      ...predicted(10_000, 400, 'Low', 0, 'Low'),
      ...predicted(11_000, REPLAY_MIN_PREDICTED - 1, 'High', 0, 'High'),
    ];
    expect(replayableClasses(recent, before, '1')).toEqual(['Low']);
    // Predictions of another version say nothing about the drifted champion.
    expect(replayableClasses(recent, before, '2')).toEqual([]);
    expect(replayableClasses(recent, before.slice(0, REPLAY_MIN_POOL - 1), '1')).toEqual([]);
  });

  it('binomialUpperTail is the exact upper tail', () => {
    const direct = (n: number, k: number, p: number): number => {
      let sum = 0;
      for (let i = k; i <= n; i++) {
        let c = 1;
        for (let j = 0; j < i; j++) c = (c * (n - j)) / (j + 1);
        sum += c * p ** i * (1 - p) ** (n - i);
      }
      return sum;
    };
    expect(binomialUpperTail(10, 0, 0.1)).toBe(1);
    expect(binomialUpperTail(10, 11, 0.1)).toBe(0);
    for (const [n, k, p] of [
      [10, 1, 0.1],
      [120, 3, 0.025],
      [400, 40, 0.003],
      [20, 5, 0.05],
    ] as const)
      expect(binomialUpperTail(n, k, p)).toBeCloseTo(direct(n, k, p), 12);
  });
});
