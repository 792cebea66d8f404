import { describe, expect, it } from 'vitest';
import { FeatureDriftDetector } from '../../../../common/drift/feature-drift.ts';
import { criticalLattice } from '../../../../common/drift/ks-budget.ts';
import {
  DEFAULT_MULTISCALE_CONFIG,
  MultiScaleDriftDetector,
  resolveMultiScaleConfig,
  scaleAlpha,
  type MultiScaleDriftConfig,
} from '../../../../common/drift/multiscale-drift.ts';
import { SeedStream, seedReference, seedSd, type MutableRow } from '../../../../common/drift/synthetic.ts';
import { FEATURES, type Feature } from '../../../../common/schema/features.ts';
import { SortedSample, ks2sampSorted } from '../../../../common/stats/ks.ts';

// The champion's reference: seed 1, 5,000 rows (as in bench/drift.ts and the windows engine's tests).
const REFERENCE = seedReference(1, 5_000);
const ONSET = 5_000;

/** Samples until the first alarm of a fresh default detector on a seeded shifted stream (seed 3). */
function firstAlarm(feature: Feature, sd: number): { at: number; onset: number; features: string[] } | null {
  const detector = new MultiScaleDriftDetector(REFERENCE);
  const stream = new SeedStream({ seed: 3, shift: { feature, delta: sd * seedSd(feature), onset: ONSET } });
  for (let i = 0; i < ONSET + 4_000; i++) {
    const u = detector.update(stream.next());
    if (u.alarm)
      return { at: i, onset: u.alarm.onset.sampleIndex, features: u.alarm.features.map((f) => f.feature) };
  }
  return null;
}

describe('MultiScaleDriftDetector parameters', () => {
  it('has frozen, valid defaults: windows of 400 and 2,000 sliding by 50 and 250, 2.5e-7 false alarms per sample', () => {
    expect(DEFAULT_MULTISCALE_CONFIG).toMatchObject({
      groupBy: 'all',
      scales: [
        { windowSize: 400, hop: 50, share: 0.5 },
        { windowSize: 2_000, hop: 250, share: 0.5 },
      ],
      falseAlarmsPerSample: 2.5e-7,
      consecutive: 1,
      cooldownSamples: 5_000,
      adoptionSize: 5_000,
      settleSamples: 10_000,
    });
    expect(Object.isFrozen(DEFAULT_MULTISCALE_CONFIG)).toBe(true);
    expect(resolveMultiScaleConfig()).toEqual(DEFAULT_MULTISCALE_CONFIG);
  });

  it.each<[Partial<MultiScaleDriftConfig>, RegExp]>([
    [{ scales: [] }, /^scales must be an array of 1 to 8 scales$/],
    [
      { scales: [{ windowSize: 400, hop: 500, share: 1 }] },
      /^scales\[0\]\.hop must be an integer in \[1, 400\], got 500$/,
    ],
    [{ scales: [{ windowSize: 5, hop: 1, share: 1 }] }, /^scales\[0\]\.windowSize /],
    [{ scales: [{ windowSize: 400, hop: 50, share: 0.6 }] }, /^scales' shares must sum to 1, got 0.6$/],
    [{ scales: [{ windowSize: 400, hop: 50, share: 0 }] }, /^scales\[0\]\.share /],
    [{ falseAlarmsPerSample: 0 }, /^falseAlarmsPerSample must be in \(0, 0.01\], got 0$/],
    [{ falseAlarmsPerSample: 0.5 }, /^falseAlarmsPerSample /],
    [{ consecutive: 0 }, /^consecutive /],
    [{ cooldownSamples: -1 }, /^cooldownSamples /],
    [{ adoptionSize: 10 }, /^adoptionSize /],
    [{ groupBy: 'site' as never }, /^groupBy /],
    [{ windowSize: 500 } as never, /^unknown drift parameter windowSize$/],
  ])('rejects %j with a RangeError naming it', (config, message) => {
    expect(() => new MultiScaleDriftDetector(REFERENCE, config)).toThrow(RangeError);
    expect(() => new MultiScaleDriftDetector(REFERENCE, config)).toThrow(message);
  });

  it('tests each scale at budget · share · hop / 9 with its exact critical statistic', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const [short, long] = detector.criticalValues();
    expect(short?.alpha).toBeCloseTo((2.5e-7 * 0.5 * 50) / 9, 20);
    expect(long?.alpha).toBeCloseTo((2.5e-7 * 0.5 * 250) / 9, 20);
    for (const s of [short, long]) {
      const c = s?.critical[0];
      expect(c).toEqual(criticalLattice(5_000, s?.windowSize as number, s?.alpha as number));
      expect(c?.pvalue).toBeLessThanOrEqual(s?.alpha as number);
    }
    // D the windows need: 0.1411 (400 against 5,000), 0.0681 (2,000 against 5,000).
    expect(short?.critical[0]?.statistic).toBe(0.1411);
    expect(long?.critical[0]?.statistic).toBe(0.0681);
    // Expected false alarms per sample, averaged over the reference: Σ 9 · p(critical) / hop <= the budget.
    const perSample =
      (9 * (short?.critical[0]?.pvalue ?? 1)) / 50 + (9 * (long?.critical[0]?.pvalue ?? 1)) / 250;
    expect(perSample).toBeLessThanOrEqual(2.5e-7);
    expect(perSample).toBeGreaterThan(2.3e-7);
    expect(scaleAlpha({ falseAlarmsPerSample: 1e-6 }, { windowSize: 500, hop: 500, share: 1 })).toBeCloseTo(
      5.5556e-5,
      9,
    );
  });
});

describe('MultiScaleDriftDetector on seeded streams', () => {
  it.each<[Feature, number, number]>([
    ['temperatureC', 5_399, 5_000],
    ['vibrationHz', 5_349, 4_950],
    ['powerKw', 5_349, 4_950],
    ['networkLatencyMs', 5_349, 4_950],
    ['packetLossPct', 5_299, 4_900],
    ['defectRatePct', 5_249, 4_850],
    ['productionSpeedUph', 5_349, 4_950],
    ['maintenanceScore', 5_399, 5_000],
    ['errorRatePct', 5_399, 5_000],
  ])(
    'finds %s + 0.5 sd (onset 5,000) at exactly sample %i (<= 600 after the onset)',
    (feature, at, onset) => {
      const a = firstAlarm(feature, 0.5);
      expect(a).toEqual({ at, onset, features: [feature] });
      expect(at - ONSET).toBeLessThanOrEqual(600);
    },
  );

  it.each<[Feature, number]>([
    ['temperatureC', 6_999],
    ['vibrationHz', 5_999],
    ['defectRatePct', 5_599],
    ['productionSpeedUph', 6_749],
  ])(
    'finds %s + 0.25 sd at exactly sample %i (<= 3,000 after the onset, on the 2,000 window)',
    (feature, at) => {
      const a = firstAlarm(feature, 0.25);
      expect(a?.at).toBe(at);
      expect(a?.features).toEqual([feature]);
      expect((a?.at ?? Infinity) - ONSET).toBeLessThanOrEqual(3_000);
    },
  );

  it('raises no alarm on 100,000 stationary samples', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const stream = new SeedStream({ seed: 2 });
    let alarms = 0;
    for (let i = 0; i < 100_000; i++) if (detector.update(stream.next()).alarm) alarms++;
    expect(alarms).toBe(0);
    expect(detector.stats).toMatchObject({ samples: 100_000, alarms: 0 });
    // Tests: every 50 samples from 400 on, every 250 from 2,000 on.
    expect(detector.stats.windowsTested).toBe((100_000 - 400) / 50 + 1 + (100_000 - 2_000) / 250 + 1);
  });

  it('driftDetected is true only right after the alarming update; the cooldown keeps it quiet', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE, { cooldownSamples: 2_000 });
    const stream = new SeedStream({
      seed: 3,
      shift: { feature: 'powerKw', delta: seedSd('powerKw'), onset: 1_000 },
    });
    const alarms: number[] = [];
    for (let i = 0; i < 8_000; i++) {
      detector.update(stream.next());
      if (detector.driftDetected) {
        alarms.push(i);
        expect(detector.alarm?.kind).toBe('covariate');
      } else expect(detector.alarm).toBeNull();
    }
    expect(alarms).toEqual([1_199, 3_199, 5_199, 7_199]);
  });

  it('reports each feature on the scale tested now, statistic and exact p-value equal to ks2sampSorted', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const stream = new SeedStream({ seed: 5 });
    const rows: MutableRow[] = [];
    let last: ReturnType<MultiScaleDriftDetector['update']> | undefined;
    for (let i = 0; i < 4_000; i++) {
      const row = { ...stream.next() };
      rows.push(row);
      const u = detector.update(row);
      if (u.tested) last = u;
    }
    expect(last?.tested).toBe(true);
    if (!last?.tested) return;
    // At sample 4,000 both scales are due; each feature reports the one closer to rejecting.
    expect(last.window.to.sampleIndex).toBe(3_999);
    for (const s of last.window.features) {
      const w = s.windowSize as number;
      expect([400, 2_000]).toContain(w);
      const f = s.feature as Feature;
      const window = rows.slice(4_000 - w).map((r) => r[f]);
      const ks = ks2sampSorted(new SortedSample(REFERENCE.features[f]), window, { method: 'exact' });
      expect(s.statistic).toBeCloseTo(ks.statistic, 12);
      expect(s.pvalue).toBeCloseTo(ks.pvalue, 12);
      expect(s.drifted).toBe(false);
    }
  });

  it('keeps its sorted windows right across hops (incremental slide = full sort)', () => {
    const a = new MultiScaleDriftDetector(REFERENCE, { scales: [{ windowSize: 100, hop: 10, share: 1 }] });
    const stream = new SeedStream({ seed: 6 });
    const rows: MutableRow[] = [];
    for (let i = 0; i < 1_000; i++) {
      const row = { ...stream.next() };
      // Ties: a coarse feature repeats values, so the slide must remove the right copies.
      row.maintenanceScore = Math.round(row.maintenanceScore * 10) / 10;
      rows.push(row);
      const u = a.update(row);
      if (u.tested && i % 90 === 9) {
        const w = rows.slice(-100).map((r) => r.maintenanceScore);
        const ks = ks2sampSorted(new SortedSample(REFERENCE.features.maintenanceScore), w, {
          method: 'exact',
        });
        expect(u.window.features[7]?.statistic).toBeCloseTo(ks.statistic, 12);
      }
    }
  });

  it('skips rows with a non-finite feature', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const stream = new SeedStream({ seed: 2 });
    for (let i = 0; i < 500; i++) {
      const row = { ...stream.next() };
      if (i % 10 === 0) row.powerKw = Number.NaN;
      detector.update(row);
    }
    // 450 valid rows: the 400 window is full at the 400th and tested again at the 450th.
    expect(detector.stats).toMatchObject({ samples: 500, skipped: 50, windowsTested: 2 });
  });

  it('groupBy machine alarms in the drifted machine only', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE, { groupBy: 'machine' });
    const stream = new SeedStream({ seed: 7 });
    const groups: string[] = [];
    for (let i = 0; i < 12_000; i++) {
      const row = { ...stream.next() };
      const machine = i % 2 === 0 ? 'm-even' : 'm-odd';
      if (machine === 'm-odd' && i >= 4_000) row.errorRatePct += 0.5 * seedSd('errorRatePct');
      const u = detector.update(row, machine);
      if (u.alarm) groups.push(`${u.alarm.groupKey}@${i}`);
    }
    expect(groups).toEqual(['m-odd@4599']);
    expect(detector.groupKeys().sort()).toEqual(['m-even', 'm-odd']);
  });

  it('reset(reference) clears every group; the sample clock goes on', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const stream = new SeedStream({ seed: 2 });
    for (let i = 0; i < 1_000; i++) detector.update(stream.next());
    expect(detector.features()[0]?.statistic).not.toBeNull();
    detector.reset(seedReference(9, 3_000));
    expect(detector.features()).toEqual([]);
    expect(detector.referenceSizes).toEqual(FEATURES.map(() => 3_000));
    expect(detector.sampleIndex).toBe(1_000);
  });

  it('is the default engine of FeatureDriftDetector, alarm for alarm', () => {
    const facade = new FeatureDriftDetector(REFERENCE);
    expect(facade.multiscale).toBeInstanceOf(MultiScaleDriftDetector);
    const stream = new SeedStream({
      seed: 3,
      shift: { feature: 'powerKw', delta: 0.5 * seedSd('powerKw'), onset: ONSET },
    });
    let at = -1;
    for (let i = 0; i < ONSET + 1_000 && at < 0; i++) if (facade.update(stream.next()).alarm) at = i;
    expect(at).toBe(5_349);
    expect(new FeatureDriftDetector(REFERENCE, { detector: 'windows' }).multiscale).toBeNull();
  });
});

describe('MultiScaleDriftDetector adopting a new reference (acceptShift)', () => {
  /** Seed 4, vibration +1 sd from 5,000; `extra` adds more from a later sample. */
  function run(
    detector: FeatureDriftDetector,
    n: number,
    shift: (i: number, row: MutableRow) => void,
    acceptAt: number,
  ): {
    alarms: number[];
    updates: { at: number; reason: string; from: number; to: number; first: string }[];
  } {
    const stream = new SeedStream({ seed: 4 });
    const alarms: number[] = [];
    const updates: { at: number; reason: string; from: number; to: number; first: string }[] = [];
    for (let i = 0; i < n; i++) {
      const row = { ...stream.next() };
      shift(i, row);
      const u = detector.update(row);
      if (u.alarm) alarms.push(i);
      const r = u.referenceUpdate;
      if (r)
        updates.push({
          at: i,
          reason: r.reason,
          from: r.from.sampleIndex,
          to: r.to.sampleIndex,
          first: r.features[0]?.feature ?? '',
        });
      if (i === acceptAt) expect(detector.acceptShift()).toEqual(['all']);
    }
    return { alarms, updates };
  }

  it('adopts 5,000 post-alarm rows, stays quiet in the new distribution, and finds a second shift within 600', () => {
    const detector = new FeatureDriftDetector(REFERENCE);
    const sdV = seedSd('vibrationHz');
    const { alarms, updates } = run(
      detector,
      60_000,
      (i, row) => {
        if (i >= 5_000) row.vibrationHz += sdV;
        if (i >= 35_000) row.powerKw += 0.5 * seedSd('powerKw');
      },
      7_000,
    );
    // The shift alarms at 5,199; accepted at 7,000; the rows after the alarm (5,200 on) become the reference.
    expect(updates).toEqual([
      { at: 10_199, reason: 'accepted', from: 5_200, to: 10_199, first: 'vibrationHz' },
    ]);
    // Nothing between the adoption and the second shift (25,000 samples in the new distribution);
    // the second shift (powerKw + 0.5 sd at 35,000) alarms 349 samples later, then every cooldown.
    expect(alarms).toEqual([5_199, 35_349, 40_349, 45_349, 50_349, 55_349]);
  });

  it('a different change while settling alarms at once: a feature the adopted shift did not move', () => {
    // As above, but the second shift (powerKw + 0.5 sd) starts at 15,000: inside the settle window that
    // the adoption at 10,199 opened (until 20,199). It used to become a 'continuing' reference update.
    const detector = new FeatureDriftDetector(REFERENCE);
    const sdV = seedSd('vibrationHz');
    const checks: { at: number; reason: string; feature: string | null }[] = [];
    const stream = new SeedStream({ seed: 4 });
    const alarms: number[] = [];
    const updates: [number, string][] = [];
    for (let i = 0; i < 21_000; i++) {
      const row = { ...stream.next() };
      if (i >= 5_000) row.vibrationHz += sdV;
      if (i >= 15_000) row.powerKw += 0.5 * seedSd('powerKw');
      const u = detector.update(row);
      if (u.alarm) alarms.push(i);
      if (u.referenceUpdate) updates.push([i, u.referenceUpdate.reason]);
      const c = detector.multiscale?.settleCheck;
      if (c) checks.push({ at: c.at, reason: c.reason, feature: c.feature });
      if (i === 7_000) detector.acceptShift();
    }
    expect(updates).toEqual([[10_199, 'accepted']]);
    expect(checks).toEqual([{ at: 15_299, reason: 'feature-did-not-move', feature: 'powerKw' }]);
    // Found 299 samples after it starts (the 600 goal), as a normal alarm; then every cooldown.
    expect(alarms).toEqual([5_199, 15_299, 20_299]);
    expect(detector.settleState()).toBe('normal');
  });

  it('a different change while settling alarms: the shift turns back, or moves one feature of two', () => {
    const sdV = seedSd('vibrationHz');
    const sdT = seedSd('temperatureC');
    const back = run(
      new FeatureDriftDetector(REFERENCE),
      16_000,
      (i, row) => {
        if (i >= 5_000 && i < 15_000) row.vibrationHz += sdV; // the worn bearing replaced at 15,000
      },
      7_000,
    );
    expect(back.updates.map((u) => u.at)).toEqual([10_199]);
    expect(back.alarms).toEqual([5_199, 15_149]);
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const stream = new SeedStream({ seed: 4 });
    const alarms: number[] = [];
    let check = null as MultiScaleDriftDetector['settleCheck'];
    for (let i = 0; i < 16_000; i++) {
      const row = { ...stream.next() };
      // Vibration +1 sd and temperature +0.5 sd together, then temperature alone another +0.5 sd.
      if (i >= 5_000) {
        row.vibrationHz += sdV;
        row.temperatureC += 0.5 * sdT;
      }
      if (i >= 15_000) row.temperatureC += 0.5 * sdT;
      const u = detector.update(row);
      if (u.alarm) alarms.push(i);
      check = detector.settleCheck ?? check;
      if (i === 7_000) detector.acceptShift();
    }
    // A ramp would have moved vibration about as far again (r = 0.93); it stayed put.
    expect(alarms).toEqual([5_199, 15_399]);
    expect(check?.reason).toBe('size');
    expect(check?.feature).toBe('vibrationHz');
    expect(check?.ratio).toBeCloseTo(0.93, 2);
  });

  it('reports old and new reference summaries and their KS test', () => {
    const detector = new MultiScaleDriftDetector(REFERENCE);
    const stream = new SeedStream({ seed: 4 });
    let update = null as ReturnType<MultiScaleDriftDetector['update']>['referenceUpdate'] | null;
    for (let i = 0; i < 12_000 && !update; i++) {
      const row = { ...stream.next() };
      if (i >= 5_000) row.vibrationHz += 1.4;
      const u = detector.update(row);
      if (u.alarm) detector.acceptShift();
      update = u.referenceUpdate ?? null;
    }
    expect(update?.samples).toBe(5_000);
    const v = update?.features[0];
    expect(v?.feature).toBe('vibrationHz');
    expect((v?.new.mean ?? 0) - (v?.old.mean ?? 0)).toBeCloseTo(1.4, 1);
    expect(v?.pvalue).toBeLessThan(1e-100);
    expect(v?.old.samples).toBe(5_000);
    // The other features did not move.
    for (const f of update?.features.slice(1) ?? []) expect(f.pvalue).toBeGreaterThan(1e-3);
    expect(detector.settleState()).toBe('settling');
  });

  it('a ramp that goes on while settling updates the reference again instead of alarming', () => {
    const detector = new FeatureDriftDetector(REFERENCE);
    const sdV = seedSd('vibrationHz');
    const { alarms, updates } = run(
      detector,
      50_000,
      (i, row) => {
        // +1.5 sd ramped in over 20,000 samples from 5,000, then a second step of +0.5 sd at 45,000.
        if (i >= 5_000) row.vibrationHz += Math.min(1, (i - 5_000) / 20_000) * 1.5 * sdV;
        if (i >= 45_000) row.vibrationHz += 0.5 * sdV;
      },
      7_000,
    );
    expect(updates.map((u) => [u.at, u.reason])).toEqual([
      [9_750, 'accepted'],
      [16_750, 'continuing'],
      [23_750, 'continuing'],
      [30_750, 'continuing'],
    ]);
    // Settled at 40,750; the second step alarms 350 samples after it.
    expect(alarms).toEqual([45_350]);
  });
});
