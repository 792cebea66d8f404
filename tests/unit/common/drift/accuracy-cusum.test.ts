import { describe, expect, it } from 'vitest';
import { AccuracyCusum } from '../../../../common/drift/accuracy-cusum.ts';
import { Rng } from '../../../../common/util/rng.ts';

/** Label index of the first alarm when accuracy drops from 0.996 to `after` at label 10,000 (seed 4). */
function firstAlarm(after: number): { at: number; onset: number } | null {
  const cusum = new AccuracyCusum(0.9967);
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
});
