import { describe, expect, it } from 'vitest';
import { ArtifactError } from '../../../../common/errors.ts';
import {
  DEFAULT_DRIFT_CONFIG,
  FeatureDriftDetector,
  resolveDriftConfig,
  type DriftUpdate,
  type FeatureDriftConfig,
} from '../../../../common/drift/feature-drift.ts';
import { SeedStream, seedReference, seedSd } from '../../../../common/drift/synthetic.ts';
import { latticeStatistic } from '../../../../common/stats/ks-exact.ts';
import { SortedSample, ks2sampSorted } from '../../../../common/stats/ks.ts';
import type { Telemetry } from '../../../../common/schema/telemetry.ts';
import { makeReference, makeTelemetry } from '../../../../edge-inference/src/testing/fakes.ts';
import { FEATURES, type Feature } from '../../../../common/schema/features.ts';
import { Rng } from '../../../../common/util/rng.ts';

// One reference (the champion's training sample) for the whole file: seed 1, 5,000 rows.
const REFERENCE = seedReference(1, 5_000);
const ONSET = 20_250;

function shifted(feature: Feature, seed = 3, onset = ONSET): SeedStream {
  return new SeedStream({ seed, shift: { feature, delta: 0.5 * seedSd(feature), onset } });
}

/** Runs `n` samples; returns the indices of the alarms and the detector. */
function alarmsOf(
  stream: SeedStream,
  n: number,
  config: Partial<FeatureDriftConfig> = {},
  machine: (i: number) => string = () => 'm-1',
): { at: number[]; detector: FeatureDriftDetector; updates: DriftUpdate[] } {
  const detector = new FeatureDriftDetector(REFERENCE, config);
  const at: number[] = [];
  const updates: DriftUpdate[] = [];
  for (let i = 0; i < n; i++) {
    const u = detector.update(stream.next(), machine(i));
    if (u.alarm) {
      at.push(i);
      updates.push(u);
      expect(detector.driftDetected).toBe(true);
    }
  }
  return { at, detector, updates };
}

describe('FeatureDriftDetector parameters', () => {
  it('exposes validated frozen defaults', () => {
    expect(DEFAULT_DRIFT_CONFIG).toMatchObject({
      windowSize: 500,
      windowMode: 'tumbling',
      alpha: 1e-3,
      consecutive: 2,
      persistence: 'same-feature',
      correction: 'bonferroni',
      cooldownSamples: 5_000,
      groupBy: 'all',
    });
    expect(Object.isFrozen(DEFAULT_DRIFT_CONFIG)).toBe(true);
    expect(resolveDriftConfig()).toEqual(DEFAULT_DRIFT_CONFIG);
  });

  it.each<[Partial<FeatureDriftConfig>, RegExp]>([
    [{ windowSize: 5 }, /^windowSize must be an integer in \[10, 100000\], got 5$/],
    [{ windowSize: 100.5 }, /windowSize/],
    [{ hop: 0 }, /^hop must be an integer in \[1, 100000\], got 0$/],
    [{ windowMode: 'hopping', hop: 501 }, /^hop must be an integer in \[1, 500\], got 501$/],
    [{ windowMode: 'hopping', windowSize: 100, hop: 250 }, /^hop /],
    [{ alpha: 0 }, /^alpha must be in \(0, 1\), got 0$/],
    [{ alpha: 1 }, /^alpha /],
    [{ alpha: Number.NaN }, /^alpha /],
    [{ consecutive: 0 }, /^consecutive /],
    [{ cooldownSamples: -1 }, /^cooldownSamples /],
    [{ maxGroups: 0 }, /^maxGroups /],
    [{ correction: 'holm' as never }, /^correction must be one of bonferroni, benjamini-hochberg, got holm$/],
    [{ windowMode: 'sliding' as never }, /^windowMode /],
    [{ groupBy: 'site' as never }, /^groupBy /],
    [{ persistence: 'sometimes' as never }, /^persistence /],
    [{ method: 'fast' as never }, /^method /],
    [{ windowSise: 500 } as never, /^unknown drift parameter windowSise$/],
  ])('rejects %j with a RangeError naming it', (config, message) => {
    expect(() => new FeatureDriftDetector(REFERENCE, config)).toThrow(RangeError);
    expect(() => new FeatureDriftDetector(REFERENCE, config)).toThrow(message);
  });

  it('ignores undefined overrides (unset env vars)', () => {
    expect(new FeatureDriftDetector(REFERENCE, { windowSize: undefined }).config.windowSize).toBe(500);
  });

  it('rejects a reference without values, empty or non-finite, with an ArtifactError', () => {
    const missing = { ...REFERENCE, features: { ...REFERENCE.features, powerKw: undefined } } as never;
    expect(() => new FeatureDriftDetector(missing)).toThrow(ArtifactError);
    expect(() => new FeatureDriftDetector(missing)).toThrow(/powerKw/);
    const empty = { ...REFERENCE, features: { ...REFERENCE.features, errorRatePct: [] } };
    expect(() => new FeatureDriftDetector(empty)).toThrow(/errorRatePct is empty/);
    const nan = { ...REFERENCE, features: { ...REFERENCE.features, vibrationHz: [1, Number.NaN] } };
    expect(() => new FeatureDriftDetector(nan)).toThrow(/vibrationHz has a non-finite value at 1/);
  });
});

describe('FeatureDriftDetector on seeded streams', () => {
  it('raises no alarm on 200,000 stationary samples of the seed profile', () => {
    const { at, detector } = alarmsOf(new SeedStream({ seed: 2 }), 200_000);
    expect(at).toEqual([]);
    expect(detector.stats).toMatchObject({ samples: 200_000, windowsTested: 400, alarms: 0 });
    // The exact p-value cache must be doing its job.
    expect(detector.stats.pvalueCacheHits).toBeGreaterThan(3_000);
  });

  it('detects temperatureC + 0.5 sd (onset 20,250) at sample 21,499, naming the feature and the onset window', () => {
    const { at, updates } = alarmsOf(shifted('temperatureC'), 22_000);
    expect(at).toEqual([21_499]);
    const alarm = updates[0]?.alarm;
    expect(alarm).toMatchObject({
      kind: 'covariate',
      groupKey: 'all',
      at: { sampleIndex: 21_499 },
      onset: { sampleIndex: 20_500 },
      liveAccuracy: null,
    });
    expect(alarm?.features.map((f) => f.feature)).toEqual(['temperatureC']);
    expect(alarm?.features[0]?.pvalue).toBeLessThan(1e-3 / 9);
    expect(alarm!.at.sampleIndex - ONSET).toBeLessThanOrEqual(2_000);
  });

  it.each<[Feature, number]>([
    ['temperatureC', 21_499],
    ['vibrationHz', 20_999],
    ['powerKw', 21_499],
    ['networkLatencyMs', 21_499],
    ['packetLossPct', 21_499],
    ['defectRatePct', 20_999],
    ['productionSpeedUph', 20_999],
    ['maintenanceScore', 20_999],
    ['errorRatePct', 21_499],
  ])('detects %s + 0.5 sd at exactly sample %i (within 2,000 of the onset)', (feature, expected) => {
    const { at, updates } = alarmsOf(shifted(feature), 22_500);
    expect(at).toEqual([expected]);
    expect(updates[0]?.alarm?.features[0]?.feature).toBe(feature);
  });

  it('keeps quiet for cooldownSamples after an alarm, then alarms again while the drift lasts', () => {
    const { at } = alarmsOf(shifted('temperatureC'), 45_000);
    expect(at).toEqual([21_499, 26_499, 31_499, 36_499, 41_499]);
    const none = alarmsOf(shifted('temperatureC'), 45_000, { cooldownSamples: 20_000 });
    expect(none.at).toEqual([21_499, 41_499]);
  });

  it('hopping windows test every hop samples and detect sooner', () => {
    const detector = new FeatureDriftDetector(REFERENCE, { windowMode: 'hopping', hop: 100 });
    const stream = shifted('temperatureC');
    const tested: number[] = [];
    const alarms: number[] = [];
    for (let i = 0; i < 20_800; i++) {
      const u = detector.update(stream.next());
      if (u.tested && i < 1_000) tested.push(i);
      if (u.tested && u.window.from.sampleIndex !== i - 499)
        throw new Error(`window at ${i} starts at ${u.window.from.sampleIndex}`);
      if (u.alarm) alarms.push(i);
    }
    expect(tested).toEqual([499, 599, 699, 799, 899, 999]);
    expect(alarms).toEqual([20_699]);
  });

  it('works with Benjamini–Hochberg and any-feature persistence', () => {
    const { at } = alarmsOf(shifted('temperatureC'), 22_000, {
      persistence: 'any-feature',
      correction: 'benjamini-hochberg',
    });
    expect(at).toEqual([21_499]);
    const quiet = alarmsOf(new SeedStream({ seed: 2 }), 50_000, {
      persistence: 'any-feature',
      correction: 'benjamini-hochberg',
    });
    expect(quiet.at).toEqual([]);
  });

  it('reports per-feature statistic, p-value, threshold and drifted flag equal to ks2sampSorted on the same data', () => {
    const detector = new FeatureDriftDetector(REFERENCE);
    const stream = shifted('powerKw', 9, 2_000);
    const window: number[][] = FEATURES.map(() => []);
    let checked = 0;
    for (let i = 0; i < 5_000; i++) {
      const row = stream.next();
      FEATURES.forEach((f, k) => window[k]!.push(row[f]));
      const u = detector.update(row);
      if (!u.tested) continue;
      for (const [k, f] of FEATURES.entries()) {
        const r = ks2sampSorted(new SortedSample(REFERENCE.features[f]), window[k]!);
        const s = u.window.features[k]!;
        expect(s.feature).toBe(f);
        expect(s.statistic).toBe(r.statistic);
        expect(s.pvalue).toBe(r.pvalue);
        expect(s.threshold).toBeCloseTo(1e-3 / 9, 15);
        expect(s.drifted).toBe(r.pvalue <= 1e-3 / 9);
        expect(s.criticalStatistic).toBeGreaterThan(0.09);
        expect(s.criticalStatistic).toBeLessThan(0.12);
        window[k] = [];
        checked++;
      }
    }
    expect(checked).toBe(90);
    expect(detector.features().find((s) => s.feature === 'powerKw')).toMatchObject({ drifted: true });
    expect(detector.featureSummary().find((s) => s.feature === 'powerKw')).toMatchObject({ drifted: true });
    expect(detector.featureSummary().filter((s) => s.drifted)).toHaveLength(1);
  });

  it('driftDetected is true only right after the alarming update', () => {
    const detector = new FeatureDriftDetector(REFERENCE);
    const stream = shifted('temperatureC');
    for (let i = 0; i < 21_499; i++) detector.update(stream.next());
    expect(detector.driftDetected).toBe(false);
    detector.update(stream.next());
    expect(detector.driftDetected).toBe(true);
    expect(detector.alarm?.at.sampleIndex).toBe(21_499);
    detector.update(stream.next());
    expect(detector.driftDetected).toBe(false);
    expect(detector.stats.alarms).toBe(1);
  });

  it('skips rows with a non-finite feature without breaking the window', () => {
    const detector = new FeatureDriftDetector(REFERENCE, { windowSize: 10 });
    const stream = new SeedStream({ seed: 4 });
    for (let i = 0; i < 9; i++) expect(detector.update(stream.next()).tested).toBe(false);
    expect(detector.update({ ...stream.next(), powerKw: Number.NaN }).tested).toBe(false);
    expect(detector.update(stream.next()).tested).toBe(true);
    expect(detector.stats).toMatchObject({ samples: 11, skipped: 1, windowsTested: 1 });
  });

  it('carries telemetry ts and seq into the window bounds', () => {
    const detector = new FeatureDriftDetector(REFERENCE, { windowSize: 10 });
    const stream = new SeedStream({ seed: 4 });
    let last: DriftUpdate = { tested: false, alarm: null };
    for (let i = 0; i < 10; i++) last = detector.update({ ...stream.next(), ts: 1_000 + i, seq: 50 + i });
    expect(last.tested).toBe(true);
    if (last.tested)
      expect(last.window).toMatchObject({
        windowIndex: 1,
        from: { sampleIndex: 0, ts: 1_000, seq: 50 },
        to: { sampleIndex: 9, ts: 1_009, seq: 59 },
      });
  });
});

describe('latticeStatistic (the cached exact path)', () => {
  it('equals round(D · lcm) of ks2sampSorted, with heavy ties and unequal sizes', () => {
    const rng = new Rng(31);
    for (const [n1, n2, levels] of [
      [5_000, 500, 1e9],
      [5_000, 300, 20],
      [997, 500, 7],
      [40, 40, 3],
    ] as const) {
      const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
      const lcm = (n1 / gcd(n1, n2)) * n2;
      const ref = new SortedSample(Array.from({ length: n1 }, () => Math.floor(rng.next() * levels)));
      for (let k = 0; k < 20; k++) {
        const shift = k % 2 === 0 ? 0 : 0.3 * levels;
        const win = new SortedSample(
          Array.from({ length: n2 }, () => Math.floor(rng.next() * levels + shift)),
        );
        const r = ks2sampSorted(ref, win, { method: 'exact' });
        expect(latticeStatistic(ref.values, win.values, lcm / n1, lcm / n2)).toBe(
          Math.round(r.statistic * lcm),
        );
      }
    }
  });

  it('the detector on tied data reports what ks2sampSorted reports', () => {
    const tied = {
      ...REFERENCE,
      features: Object.fromEntries(
        FEATURES.map((f) => [f, REFERENCE.features[f].map((v) => Math.round(v))]),
      ) as typeof REFERENCE.features,
    };
    const detector = new FeatureDriftDetector(tied, { windowSize: 200 });
    const stream = new SeedStream({ seed: 13 });
    const window: number[][] = FEATURES.map(() => []);
    for (let i = 0; i < 2_000; i++) {
      const row = { ...stream.next() };
      for (const [k, f] of FEATURES.entries()) {
        row[f] = Math.round(row[f] + (i > 1_000 ? 1 : 0));
        window[k]!.push(row[f]);
      }
      const u = detector.update(row);
      if (!u.tested) continue;
      for (const [k, f] of FEATURES.entries()) {
        const r = ks2sampSorted(new SortedSample(tied.features[f]), window[k]!);
        expect([u.window.features[k]!.statistic, u.window.features[k]!.pvalue]).toEqual([
          r.statistic,
          r.pvalue,
        ]);
        window[k] = [];
      }
    }
  });
});

describe('FeatureDriftDetector reset and groups', () => {
  it('reset(reference) clears windows, streaks and cooldown; the sample clock goes on', () => {
    const detector = new FeatureDriftDetector(REFERENCE);
    const stream = shifted('temperatureC');
    for (let i = 0; i < 21_000; i++) detector.update(stream.next());
    // One rejecting window so far (20,500–20,999): one more would alarm.
    expect(detector.features().find((s) => s.feature === 'temperatureC')?.streak).toBe(1);
    for (let i = 0; i < 300; i++) detector.update(stream.next());
    detector.reset(seedReference(11, 5_000));
    expect(detector.groupKeys()).toEqual([]);
    expect(detector.features()).toEqual([]);
    expect(detector.sampleIndex).toBe(21_300);
    // The new window starts empty: 499 more rows test nothing, the 500th does.
    const fresh = new SeedStream({ seed: 12 });
    for (let i = 0; i < 499; i++) expect(detector.update(fresh.next()).tested).toBe(false);
    const u = detector.update(fresh.next());
    expect(u.tested).toBe(true);
    if (u.tested)
      expect(u.window).toMatchObject({
        windowIndex: 1,
        from: { sampleIndex: 21_300 },
        to: { sampleIndex: 21_799 },
      });
    expect(detector.features().every((s) => s.streak === 0)).toBe(true);
  });

  it('groupBy machine keeps one window per machine', () => {
    const detector = new FeatureDriftDetector(REFERENCE, { groupBy: 'machine', windowSize: 100 });
    const stream = new SeedStream({ seed: 5 });
    for (let i = 0; i < 99; i++) expect(detector.update(stream.next(), 'm-a').tested).toBe(false);
    for (let i = 0; i < 99; i++) expect(detector.update(stream.next(), 'm-b').tested).toBe(false);
    const a = detector.update(stream.next(), 'm-a');
    expect(a.tested && a.window.groupKey).toBe('m-a');
    expect(detector.groupKeys().sort()).toEqual(['m-a', 'm-b']);
    const b = detector.update(stream.next(), 'm-b');
    expect(b.tested && b.window.from.sampleIndex).toBe(99);
    // groupBy all ignores the machine id.
    const all = new FeatureDriftDetector(REFERENCE, { windowSize: 100 });
    for (let i = 0; i < 99; i++) all.update(stream.next(), i % 2 ? 'm-a' : 'm-b');
    expect(all.update(stream.next(), 'm-c').tested).toBe(true);
    expect(all.groupKeys()).toEqual(['all']);
  });

  it('groupBy machine alarms in the drifted machine only', () => {
    // Even samples from m-even, odd from m-odd; only m-odd's rows are shifted (onset at its own 10,000th row).
    const detector = new FeatureDriftDetector(REFERENCE, { groupBy: 'machine' });
    const even = new SeedStream({ seed: 6 });
    const odd = shifted('errorRatePct', 7, 10_000);
    const alarms: string[] = [];
    for (let i = 0; i < 26_000; i++) {
      const machine = i % 2 === 0 ? 'm-even' : 'm-odd';
      const u = detector.update((machine === 'm-even' ? even : odd).next(), machine);
      if (u.alarm) alarms.push(`${u.alarm.groupKey}@${i}`);
    }
    expect(alarms).toEqual(['m-odd@21999']);
    expect(detector.features('m-even').some((s) => s.drifted)).toBe(false);
    expect(detector.features('m-odd').find((s) => s.feature === 'errorRatePct')?.drifted).toBe(true);
  });

  it('drops the least recently updated group beyond maxGroups', () => {
    const detector = new FeatureDriftDetector(REFERENCE, {
      groupBy: 'machine',
      windowSize: 10,
      maxGroups: 2,
    });
    const stream = new SeedStream({ seed: 8 });
    detector.update(stream.next(), 'a');
    detector.update(stream.next(), 'b');
    detector.update(stream.next(), 'a');
    detector.update(stream.next(), 'c');
    expect(detector.groupKeys().sort()).toEqual(['a', 'c']);
    expect(detector.stats.groupsEvicted).toBe(1);
  });
});

describe('windowValues (what the edge status histograms show)', () => {
  it('the detector exposes exactly the window it tested (tumbling and hopping, per machine)', () => {
    for (const config of [
      { windowSize: 20, windowMode: 'tumbling', groupBy: 'all' },
      { windowSize: 20, windowMode: 'hopping', hop: 7, groupBy: 'all' },
      { windowSize: 20, windowMode: 'tumbling', groupBy: 'machine' },
    ] as const) {
      const detector = new FeatureDriftDetector(makeReference(), config);
      // No full window yet: nothing to show.
      expect(detector.windowValues(config.groupBy === 'all' ? 'all' : 'm0', 'temperatureC')).toBeUndefined();
      const seen = new Map<string, Telemetry[]>();
      let tested = 0;
      for (let seq = 0; seq < 200; seq++) {
        const t = makeTelemetry(`m${seq % 3}`, seq);
        const key = config.groupBy === 'all' ? 'all' : t.machineId;
        const rows = seen.get(key) ?? [];
        rows.push(t);
        seen.set(key, rows);
        const u = detector.update(t, t.machineId);
        if (!u.tested) continue;
        tested++;
        const window = (seen.get(u.window.groupKey) ?? []).slice(-20);
        FEATURES.forEach((f) => {
          const got = Array.from(detector.windowValues(u.window.groupKey, f) ?? []).sort((a, b) => a - b);
          expect(got).toEqual(window.map((r) => r[f]).sort((a, b) => a - b));
        });
      }
      expect(tested).toBeGreaterThan(3);
    }
  });
});
