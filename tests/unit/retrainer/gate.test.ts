import { describe, expect, it } from 'vitest';
import type { EvalMetrics } from '../../../common/model/types.ts';
import { DEFAULT_GATE, decidePromotion } from '../../../retrainer/src/gate.ts';

function m(accuracy: number, macroF1 = accuracy, samples = 600): EvalMetrics {
  return {
    samples,
    accuracy,
    macroF1,
    perClassRecall: { Low: accuracy, Medium: accuracy, High: accuracy },
    perClassF1: { Low: macroF1, Medium: macroF1, High: macroF1 },
    logLoss: 1 - accuracy,
    confusion: [],
  };
}

describe('promotion gate', () => {
  it('promotes a challenger that is clearly better and above the floor', () => {
    const d = decidePromotion(m(0.72), m(0.95));
    expect(d.promote).toBe(true);
    expect(d.causes).toEqual([]);
    expect(d.accuracyGain).toBeCloseTo(0.23);
    expect(d.reason).toMatch(/beats champion 72\.00% by \+23\.00 pp/);
  });

  it('rejects a worse challenger with the reason', () => {
    const d = decidePromotion(m(0.95), m(0.93));
    expect(d.promote).toBe(false);
    expect(d.causes).toContain('not-better');
    expect(d.reason).toMatch(/challenger accuracy 93\.00% vs champion 95\.00% \(-2\.00 pp\): not better/);
  });

  it('rejects a challenger under the absolute floor even when it beats the champion', () => {
    const d = decidePromotion(m(0.6), m(0.85));
    expect(d.promote).toBe(false);
    expect(d.causes[0]).toBe('below-floor');
    expect(d.reason).toMatch(/below the floor 90\.00%/);
  });

  it('rejects a gain within the margin', () => {
    const d = decidePromotion(m(0.95), m(0.953));
    expect(d.promote).toBe(false);
    expect(d.causes).toEqual(['within-margin']);
    expect(d.reason).toMatch(/within the margin of \+0\.50 pp/);
    expect(decidePromotion(m(0.95), m(0.953), { ...DEFAULT_GATE, minGain: 0.001 }).promote).toBe(true);
  });

  it('rejects equal accuracy as not better', () => {
    expect(decidePromotion(m(0.95), m(0.95)).causes).toEqual(['not-better']);
  });

  it('rejects a challenger that buys accuracy with a macro-F1 drop beyond the tolerance', () => {
    const d = decidePromotion(m(0.93, 0.9), m(0.95, 0.8));
    expect(d.promote).toBe(false);
    expect(d.causes).toEqual(['macro-f1-drop']);
    expect(d.reason).toMatch(/macro-F1 drops from 0\.9000 to 0\.8000/);
    expect(decidePromotion(m(0.93, 0.9), m(0.95, 0.895)).promote).toBe(true);
  });

  it('lists every failed rule', () => {
    const d = decidePromotion(m(0.88, 0.8), m(0.87, 0.6));
    expect(d.causes).toEqual(['below-floor', 'not-better', 'macro-f1-drop']);
  });

  it('without a champion only the floor applies', () => {
    expect(decidePromotion(undefined, m(0.91)).promote).toBe(true);
    expect(decidePromotion(undefined, m(0.89)).causes).toEqual(['below-floor']);
  });

  it('refuses metrics from different holdouts or empty ones', () => {
    expect(decidePromotion(m(0.7, 0.7, 500), m(0.95, 0.95, 600)).causes).toEqual(['invalid-metrics']);
    expect(decidePromotion(m(0.7), m(Number.NaN)).causes).toEqual(['invalid-metrics']);
    expect(decidePromotion(undefined, m(0.95, 0.95, 0)).promote).toBe(false);
  });
});
