import { describe, expect, it } from 'vitest';
import {
  AccuracyCusum,
  DEFAULT_ACCURACY_CUSUM_CONFIG,
  validationMargin,
} from '../../../../common/drift/accuracy-cusum.ts';
import { Rng } from '../../../../common/util/rng.ts';

/**
 * Label index of the first alarm when accuracy drops from 0.996 to `after` at label 10,000 (seed 4), for a
 * champion validated at 0.9967 on `validationSamples` samples (unknown: the widest margin).
 */
function firstAlarm(after: number, validationSamples?: number): { at: number; onset: number } | null {
  const cusum = new AccuracyCusum(0.9967, {}, validationSamples);
  const rng = new Rng(4);
  for (let i = 0; i < 20_000; i++) {
    const a = cusum.record(rng.uniform(0, 1) < (i < 10_000 ? 0.996 : after), { sampleIndex: i });
    if (a) return { at: i, onset: a.onset.sampleIndex };
  }
  return null;
}

describe('AccuracyCusum (sequential test on the label stream)', () => {
  it('sets h = ln(CUSUMs / false alarms per label) and q0 from the tolerance', () => {
    const c = new AccuracyCusum(0.9967);
    expect(c.threshold).toBeCloseTo(Math.log(2 / 1e-8), 12);
    expect(c.nullErrorRate).toBeCloseTo(1 - (0.9967 - 0.015), 12);
    expect(() => new AccuracyCusum(0.99, { drops: [0.01] })).toThrow(RangeError);
    expect(() => new AccuracyCusum(0.99, { falseAlarmsPerLabel: 0 })).toThrow(RangeError);
  });

  it('raises nothing over 1,000,000 labels at the champion’s accuracy', () => {
    const c = new AccuracyCusum(0.9967);
    const rng = new Rng(3);
    let alarms = 0;
    for (let i = 0; i < 1_000_000; i++)
      if (c.record(rng.uniform(0, 1) >= 0.004, { sampleIndex: i })) alarms++;
    expect(alarms).toBe(0);
  });

  it.each([
    [0.88, 10_141],
    [0.943, 10_716],
    [0.96, 11_172],
  ])('finds a drop to %f at exactly label %i, dating the change at the onset', (after, at) => {
    expect(firstAlarm(after)).toEqual({ at, onset: 10_000 });
  });

  it.each([
    [0.88, 10_090],
    [0.943, 10_346],
    [0.96, 10_446],
  ])(
    'finds a drop to %f sooner when 8,000 validation samples vouch for the accuracy (at label %i)',
    (after, at) => {
      const found = firstAlarm(after, 8_000);
      expect(found).toEqual({ at, onset: 10_000 });
      expect(found!.at).toBeLessThan(firstAlarm(after)!.at);
    },
  );

  it('raises nothing over 1,000,000 labels at the accuracy 8,000 validation samples vouch for', () => {
    const c = new AccuracyCusum(0.9967, {}, 8_000);
    expect(c.margin).toBe(DEFAULT_ACCURACY_CUSUM_CONFIG.tolerance);
    const rng = new Rng(3);
    let alarms = 0;
    // Live accuracy 0.9935: 0.3 points under validation, half the margin.
    for (let i = 0; i < 1_000_000; i++)
      if (c.record(rng.uniform(0, 1) >= 0.0065, { sampleIndex: i })) alarms++;
    expect(alarms).toBe(0);
  });

  it('sizes the margin by the validation samples: the floor for many, the ceiling for few or unknown', () => {
    const c = DEFAULT_ACCURACY_CUSUM_CONFIG;
    expect(validationMargin(0.0033, 8_000, c)).toBe(c.tolerance);
    expect(validationMargin(0.0033, 100, c)).toBe(c.maxTolerance);
    expect(validationMargin(0.0033, undefined, c)).toBe(c.maxTolerance);
    expect(validationMargin(0.0033, 0, c)).toBe(c.maxTolerance);
    // Between the two: the Wilson upper bound at z = 3 minus the rate (e = 0.01, n = 2,000: 0.0192 − 0.01).
    expect(validationMargin(0.01, 2_000, c)).toBeCloseTo(0.009207181811, 10);
    // Monotone: fewer samples never give a smaller margin.
    let last = 0;
    for (const n of [100_000, 20_000, 5_000, 1_000, 300, 100, 30]) {
      const v = validationMargin(0.005, n, { tolerance: 0, maxTolerance: 0.2, confidenceZ: 3 });
      expect(v).toBeGreaterThanOrEqual(last);
      last = v;
    }
  });

  it('resets to a new champion with its own sample count', () => {
    const c = new AccuracyCusum(0.9967, {}, 8_000);
    c.reset(0.99, 94);
    expect(c.margin).toBe(DEFAULT_ACCURACY_CUSUM_CONFIG.maxTolerance);
    expect(c.nullErrorRate).toBeCloseTo(1 - (0.99 - 0.015), 12);
    expect(() => c.reset(0.99, 1.5)).toThrow(RangeError);
    expect(() => new AccuracyCusum(0.99, { maxTolerance: 0.001 })).toThrow(RangeError);
    expect(() => new AccuracyCusum(0.99, { confidenceZ: -1 })).toThrow(RangeError);
  });
});
