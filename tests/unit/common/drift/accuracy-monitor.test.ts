import { describe, expect, it } from 'vitest';
import {
  AccuracyMonitor,
  DEFAULT_ACCURACY_CONFIG,
  binomialCdf,
  binomialCriticalCount,
  type AccuracyMonitorConfig,
} from '../../../../common/drift/accuracy-monitor.ts';
import { EFFICIENCY_CLASSES, type Efficiency } from '../../../../common/schema/features.ts';
import { Rng } from '../../../../common/util/rng.ts';

describe('binomial tail', () => {
  it('matches scipy.stats.binom.cdf', () => {
    // scipy 1.17.1: binom.cdf(217, 250, 0.935) = 9.38540115672726e-05
    expect(binomialCdf(217, 250, 0.935) / 9.38540115672726e-5).toBeCloseTo(1, 10);
    expect(binomialCdf(5, 10, 0.5)).toBeCloseTo(0.623046875, 14);
    expect(binomialCdf(0, 10, 0.5)).toBeCloseTo(1 / 1024, 15);
    expect(binomialCdf(-1, 10, 0.5)).toBe(0);
    expect(binomialCdf(10, 10, 0.5)).toBe(1);
    // Deep tail of a large n stays finite and positive (no underflow of (1-p)^n in a product form).
    expect(binomialCdf(400, 500, 0.985)).toBeGreaterThan(0);
  });

  it('critical counts are the largest x with cdf <= alpha', () => {
    for (const [n, p] of [
      [100, 0.935],
      [250, 0.935],
      [250, 0.5],
    ] as const) {
      const c = binomialCriticalCount(n, p, 1e-4);
      expect(binomialCdf(c, n, p)).toBeLessThanOrEqual(1e-4);
      expect(binomialCdf(c + 1, n, p)).toBeGreaterThan(1e-4);
    }
    expect(binomialCriticalCount(250, 0.935, 1e-4)).toBe(217);
    expect(binomialCriticalCount(100, 0.935, 1e-4)).toBe(82);
  });
});

describe('AccuracyMonitor parameters', () => {
  it.each<[Partial<AccuracyMonitorConfig>, RegExp]>([
    [{ windowSize: 5 }, /^windowSize must be an integer/],
    [{ minLabels: 0 }, /^minLabels /],
    [{ minLabels: 300 }, /^minLabels must be an integer in \[1, 250\], got 300$/],
    [{ maxDrop: -0.1 }, /^maxDrop /],
    [{ maxDrop: 1 }, /^maxDrop /],
    [{ alpha: 0 }, /^alpha /],
    [{ maxPending: 0 }, /^maxPending /],
    [{ cooldownLabels: 1.5 }, /^cooldownLabels /],
    [{ window: 10 } as never, /^unknown accuracy monitor parameter window$/],
  ])('rejects %j with a RangeError naming it', (config, message) => {
    expect(() => new AccuracyMonitor(0.98, config)).toThrow(RangeError);
    expect(() => new AccuracyMonitor(0.98, config)).toThrow(message);
  });

  it('rejects a validation accuracy outside (0, 1]', () => {
    for (const v of [0, -0.5, 1.2, Number.NaN])
      expect(() => new AccuracyMonitor(v)).toThrow(/^validationAccuracy/);
    expect(() => new AccuracyMonitor(0.98).reset(2)).toThrow(RangeError);
  });

  it('documents its defaults', () => {
    expect(DEFAULT_ACCURACY_CONFIG).toEqual({
      windowSize: 250,
      minLabels: 100,
      maxDrop: 0.05,
      alpha: 1e-4,
      maxPending: 50_000,
      cooldownLabels: 1_000,
    });
  });
});

describe('AccuracyMonitor join of delayed labels', () => {
  it('joins labels with predictions on machineId + seq', () => {
    const m = new AccuracyMonitor(0.98);
    m.recordPrediction('m-1', 1, 'Low');
    m.recordPrediction('m-2', 1, 'High');
    m.recordPrediction('m-1', 2, 'Medium');
    expect(m.recordLabel('m-2', 1, 'High')).toMatchObject({ matched: true, correct: true, alarm: null });
    expect(m.recordLabel('m-1', 2, 'Low')).toMatchObject({ matched: true, correct: false });
    expect(m.recordLabel('m-1', 2, 'Low')).toMatchObject({ matched: false }); // already joined
    expect(m.recordLabel('m-3', 1, 'Low')).toMatchObject({ matched: false });
    const s = m.snapshot();
    expect(s).toMatchObject({ liveAccuracy: 0.5, labelled: 2, pending: 1, unmatchedLabels: 2, evicted: 0 });
    expect(s.predictedMix).toEqual({ Low: 1 / 3, Medium: 1 / 3, High: 1 / 3 });
    expect(s.labelMix).toEqual({ Low: 0.5, Medium: 0, High: 0.5 });
  });

  it('does not confuse machine ids that concatenate alike', () => {
    const m = new AccuracyMonitor(0.98);
    m.recordPrediction('m-1', 23, 'Low');
    m.recordPrediction('m-12', 3, 'High');
    expect(m.recordLabel('m-12', 3, 'High').correct).toBe(true);
    expect(m.recordLabel('m-1', 23, 'Low').correct).toBe(true);
  });

  it('bounds the pending buffer: evicts the oldest prediction and counts it', () => {
    const m = new AccuracyMonitor(0.98, { maxPending: 3 });
    for (let seq = 0; seq < 5; seq++) m.recordPrediction('m', seq, 'Low');
    expect(m.snapshot()).toMatchObject({ pending: 3, evicted: 2 });
    expect(m.recordLabel('m', 0, 'Low').matched).toBe(false);
    expect(m.recordLabel('m', 1, 'Low').matched).toBe(false);
    expect(m.recordLabel('m', 2, 'Low').matched).toBe(true);
    // A repeated prediction replaces the pending one (counted), it does not evict.
    m.recordPrediction('m', 3, 'High');
    expect(m.snapshot()).toMatchObject({ pending: 2, evicted: 2, duplicatePredictions: 1 });
    expect(m.recordLabel('m', 3, 'Low').correct).toBe(false);
  });

  it('reset(new validation accuracy) clears the window, the mix and the pending predictions', () => {
    const m = new AccuracyMonitor(0.98);
    m.recordPrediction('m', 1, 'Low');
    m.recordOutcome(true);
    m.reset(0.9);
    expect(m.snapshot()).toMatchObject({
      validationAccuracy: 0.9,
      liveAccuracy: null,
      labelled: 0,
      pending: 0,
    });
    expect(m.recordLabel('m', 1, 'Low').matched).toBe(false);
  });
});

/** Feeds `n` outcomes correct with probability accuracy(i); returns the alarm indices. */
function feed(m: AccuracyMonitor, seed: number, n: number, accuracy: (i: number) => number): number[] {
  const rng = new Rng(seed);
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    if (m.recordOutcome(rng.next() < accuracy(i), { sampleIndex: i, ts: 1_700_000_000_000 + i })) at.push(i);
  }
  return at;
}

describe('AccuracyMonitor concept alarm', () => {
  it('never fires over 1,000,000 labelled samples at the validation accuracy (0.985), nor 2 points below it', () => {
    expect(feed(new AccuracyMonitor(0.985), 21, 1_000_000, () => 0.985)).toEqual([]);
    expect(feed(new AccuracyMonitor(0.99), 22, 1_000_000, () => 0.97)).toEqual([]);
  });

  it('fires 205 labels after accuracy falls from 0.985 to 0.8 (seeded), then once per cooldown', () => {
    const m = new AccuracyMonitor(0.985);
    const at = feed(m, 22, 12_000, (i) => (i >= 10_000 ? 0.8 : 0.985));
    expect(at).toEqual([10_205, 11_206]);
    const s = m.snapshot();
    expect(s.alarms).toBe(2);
  });

  it('the alarm carries the live accuracy and the labelled window (onset = oldest outcome of the window)', () => {
    const m = new AccuracyMonitor(0.985);
    const rng = new Rng(22);
    for (let i = 0; i < 10_205; i++)
      m.recordOutcome(rng.next() < (i >= 10_000 ? 0.8 : 0.985), { sampleIndex: i, ts: 1_000 + i });
    expect(m.driftDetected).toBe(false);
    const alarm = m.recordOutcome(rng.next() < 0.8, { sampleIndex: 10_205, ts: 1_000 + 10_205 });
    expect(m.driftDetected).toBe(true);
    expect(alarm).toMatchObject({
      kind: 'concept',
      groupKey: 'all',
      features: [],
      at: { sampleIndex: 10_205, ts: 11_205 },
      onset: { sampleIndex: 9_956, ts: 10_956 },
    });
    expect(alarm?.liveAccuracy).toBeCloseTo(0.868, 10);
    // The window restarts empty after an alarm.
    expect(m.snapshot()).toMatchObject({ labelled: 0, cooldownLeft: 1_000 });
  });

  it('needs minLabels before testing, even when every outcome is wrong', () => {
    const m = new AccuracyMonitor(0.985, { minLabels: 50, cooldownLabels: 0 });
    const at = feed(m, 1, 60, () => 0);
    expect(at[0]).toBe(49);
  });

  it('works through the join: predictions then delayed labels', () => {
    const m = new AccuracyMonitor(0.985);
    const rng = new Rng(5);
    const alarms: number[] = [];
    const truth: Efficiency[] = [];
    for (let seq = 0; seq < 3_000; seq++) {
      const actual = EFFICIENCY_CLASSES[rng.int(3)] as Efficiency;
      const accuracy = seq >= 2_000 ? 0.8 : 0.985;
      const predicted =
        rng.next() < accuracy
          ? actual
          : (EFFICIENCY_CLASSES[(EFFICIENCY_CLASSES.indexOf(actual) + 1) % 3] as Efficiency);
      truth.push(actual);
      m.recordPrediction('m-7', seq, predicted, { sampleIndex: seq, ts: seq });
      // Labels arrive 40 predictions late.
      if (seq >= 40) {
        const r = m.recordLabel('m-7', seq - 40, truth[seq - 40] as Efficiency);
        expect(r.matched).toBe(true);
        if (r.alarm) alarms.push(r.alarm.at.sampleIndex);
      }
    }
    expect(alarms.length).toBeGreaterThan(0);
    expect(alarms[0]).toBeGreaterThan(2_000);
    expect(alarms[0]).toBeLessThan(2_300);
  });

  it('cannot alarm when validation accuracy is at or below maxDrop', () => {
    const m = new AccuracyMonitor(0.05, { maxDrop: 0.05 });
    expect(feed(m, 3, 2_000, () => 0)).toEqual([]);
  });
});
