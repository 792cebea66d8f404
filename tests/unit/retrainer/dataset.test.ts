import { describe, expect, it } from 'vitest';
import type {
  LabelledSample,
  LabelledSampleStore,
  SampleWindowQuery,
} from '../../../common/samples/types.ts';
import { matchesWindow } from '../../../common/samples/types.ts';
import {
  NotEnoughDataError,
  buildDataset,
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
