import { describe, expect, it } from 'vitest';
import { HealingTracker, type PhaseSpan } from '../../../../common/eval/healing.ts';

const phases: PhaseSpan[] = [
  { name: 'baseline', start: 0, end: 5000, changesAnything: false },
  { name: 'drift', start: 5000, end: 20000, changesAnything: true },
];

describe('HealingTracker', () => {
  it('measures the pre-drift level, per-phase accuracy and samples to heal', () => {
    const t = new HealingTracker(phases, { window: 1000, tolerance: 0.02 });
    // Baseline: 99 % correct (every 100th wrong).
    for (let i = 0; i < 5000; i++) t.record(i, i % 100 !== 0);
    // Drift: 80 % correct for 3,000 samples, then 99 % again (a new champion).
    for (let i = 5000; i < 20000; i++) t.record(i, i < 8000 ? i % 5 !== 0 : i % 100 !== 0);
    const [base, drift] = t.summary();
    expect(t.preDriftAccuracy).toBeCloseTo(0.99, 10);
    expect(base?.accuracy).toBeCloseTo(0.99, 10);
    expect(base?.samplesToHeal).toBeNull();
    // Healed once the last 1,000 contain at most 30 errors: with 600 drift errors in the first
    // 3,000, the window must slide past nearly all of them.
    const healed = drift?.samplesToHeal ?? -1;
    expect(healed).toBeGreaterThan(3000);
    expect(healed).toBeLessThanOrEqual(4000);
    expect(drift?.minRollingAccuracy).toBeCloseTo(0.8, 2);
  });

  it('never counts a window of pre-drift samples as healed, so a harmless drift heals at the window size', () => {
    const t = new HealingTracker(phases, { window: 1000 });
    for (let i = 0; i < 20000; i++) t.record(i, true);
    expect(t.summary()[1]?.samplesToHeal).toBe(1000);
  });

  it('reports null when the phase ends before healing', () => {
    const t = new HealingTracker(phases, { window: 1000 });
    for (let i = 0; i < 5000; i++) t.record(i, true);
    for (let i = 5000; i < 20000; i++) t.record(i, i % 2 === 0);
    expect(t.summary()[1]?.samplesToHeal).toBeNull();
  });

  it('computes seconds to heal from marked phase start times', () => {
    const t = new HealingTracker(phases, { window: 1000 });
    t.markPhaseStart(1, 10_000);
    for (let i = 0; i < 5000; i++) t.record(i, true, i);
    for (let i = 5000; i < 20000; i++) t.record(i, true, 10_000 + (i - 5000) * 2);
    // Healed at the 1,000th drift label: sample 5,999 at time 10,000 + 999·2.
    expect(t.summary()[1]?.secondsToHeal).toBeCloseTo(1.998, 6);
  });

  it('validates its parameters', () => {
    expect(() => new HealingTracker(phases, { window: 0 })).toThrow(/window/);
    expect(() => new HealingTracker(phases, { tolerance: 1 })).toThrow(/tolerance/);
  });
});
