import { describe, expect, it } from 'vitest';
import { evaluate, formatMetrics, LOG_LOSS_EPS } from '../../../../common/model/evaluation.ts';
import type { Efficiency } from '../../../../common/schema/features.ts';

// Six samples scored by hand:
//   actual  probabilities (Low, Medium, High)  predicted
//   Low     0.8 0.1 0.1                        Low     ✓
//   Low     0.4 0.1 0.5                        High    ✗
//   Medium  0.2 0.7 0.1                        Medium  ✓
//   High    0.1 0.2 0.7                        High    ✓
//   High    0.1 0.6 0.3                        Medium  ✗
//   Medium  0.0 1.0 0.0                        Medium  ✓ (p = 1 is clipped to 1 − 1e-7)
const labels: Efficiency[] = ['Low', 'Low', 'Medium', 'High', 'High', 'Medium'];
const probs = [
  [0.8, 0.1, 0.1],
  [0.4, 0.1, 0.5],
  [0.2, 0.7, 0.1],
  [0.1, 0.2, 0.7],
  [0.1, 0.6, 0.3],
  [0.0, 1.0, 0.0],
];

describe('evaluate', () => {
  it('matches hand-computed accuracy, confusion, recall, F1, macro-F1 and log loss', () => {
    const m = evaluate(probs, labels);
    expect(m.samples).toBe(6);
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
    expect(m.confusion).toEqual([
      [1, 0, 1],
      [0, 2, 0],
      [0, 1, 1],
    ]);
    // Low: tp 1, fn 1, fp 0 → recall 1/2, F1 2/3. Medium: tp 2, fn 0, fp 1 → recall 1, F1 4/5.
    // High: tp 1, fn 1, fp 1 → recall 1/2, F1 2/4.
    expect(m.perClassRecall).toEqual({ Low: 0.5, Medium: 1, High: 0.5 });
    expect(m.perClassF1.Low).toBeCloseTo(2 / 3, 12);
    expect(m.perClassF1.Medium).toBeCloseTo(0.8, 12);
    expect(m.perClassF1.High).toBeCloseTo(0.5, 12);
    expect(m.macroF1).toBeCloseTo(0.6555555555555556, 12);
    // −(ln .8 + ln .4 + ln .7 + ln .7 + ln .3 + ln(1 − 1e-7)) / 6
    expect(m.logLoss).toBeCloseTo(0.5094595125652951, 9);
  });

  it('accepts flattened Float32Array probabilities and class indices', () => {
    const flat = Float32Array.from(probs.flat());
    const m = evaluate(flat, [0, 0, 1, 2, 2, 1]);
    const ref = evaluate(probs, labels);
    expect(m.confusion).toEqual(ref.confusion);
    expect(m.accuracy).toBe(ref.accuracy);
    expect(m.logLoss).toBeCloseTo(ref.logLoss, 6);
  });

  it('clips a zero probability of the true class to 1e-7', () => {
    const m = evaluate([[0, 1, 0]], ['Low']);
    expect(m.logLoss).toBeCloseTo(-Math.log(LOG_LOSS_EPS), 9);
    expect(m.logLoss).toBeCloseTo(16.11809565095832, 9);
  });

  it('leaves classes absent from labels and predictions out of macro-F1', () => {
    const m = evaluate(
      [
        [0.9, 0.1, 0],
        [0.2, 0.8, 0],
      ],
      ['Low', 'Medium'],
    );
    expect(m.accuracy).toBe(1);
    expect(m.perClassF1.High).toBe(1);
    expect(m.perClassRecall.High).toBe(1);
    expect(m.macroF1).toBe(1);
    // A class predicted but never true counts (F1 0) and has recall 1 by convention.
    const n = evaluate(
      [
        [0.9, 0.1, 0],
        [0.1, 0.1, 0.8],
      ],
      ['Low', 'Low'],
    );
    expect(n.perClassF1.High).toBe(0);
    expect(n.perClassF1.Low).toBeCloseTo(2 / 3, 12);
    expect(n.macroF1).toBeCloseTo(1 / 3, 12);
  });

  it('breaks ties towards the first class and handles an empty set', () => {
    expect(evaluate([[0.4, 0.4, 0.2]], ['Low']).accuracy).toBe(1);
    const empty = evaluate([], []);
    expect(empty).toMatchObject({ samples: 0, accuracy: 0, macroF1: 0, logLoss: 0 });
  });

  it('rejects mismatched lengths and unknown classes', () => {
    expect(() => evaluate([[0.1, 0.2, 0.7]], ['Low', 'High'])).toThrow(RangeError);
    expect(() => evaluate(new Float32Array(5), ['Low', 'High'])).toThrow(/5 probabilities/);
    expect(() => evaluate([[0.1, 0.2, 0.7]], ['Great' as Efficiency])).toThrow(/unknown efficiency class/);
  });

  it('formats one readable line', () => {
    expect(formatMetrics(evaluate(probs, labels))).toMatch(
      /^accuracy 66\.67%, macro-F1 0\.6556, log loss 0\.5095 on 6 samples \(recall: Low 50\.00%, Medium 100\.00%, High 50\.00%\)$/,
    );
  });
});
