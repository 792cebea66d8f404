import { describe, expect, it } from 'vitest';
import {
  adjustBenjaminiHochberg,
  benjaminiHochberg,
  bonferroni,
} from '../../../../common/drift/multiple-testing.ts';

describe('Bonferroni', () => {
  it('rejects p <= alpha/m and returns that threshold', () => {
    const p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2, 0.02, 0.9, 0.0055];
    const rejected = new Uint8Array(p.length);
    const t = bonferroni(p, 0.05, rejected);
    expect(t).toBeCloseTo(0.05 / 9, 15);
    expect([...rejected]).toEqual([0, 0, 0, 1, 0, 0, 0, 0, 1]);
  });
});

describe('Benjamini–Hochberg', () => {
  it('is a step-up procedure: rejects the k smallest for the largest k with p_(k) <= k·alpha/m, even past a failing rank', () => {
    // sorted: 0.001 (<= .01), 0.025 (> .02!), 0.028 (<= .03), 0.035 (<= .04), 0.9 (> .05) → k = 4
    const p = [0.035, 0.001, 0.9, 0.028, 0.025];
    const rejected = new Uint8Array(p.length);
    const t = benjaminiHochberg(p, 0.05, rejected);
    expect(t).toBeCloseTo(0.04, 15);
    expect([...rejected]).toEqual([1, 1, 0, 1, 1]);
    // Bonferroni on the same list rejects only the smallest.
    const b = new Uint8Array(p.length);
    bonferroni(p, 0.05, b);
    expect([...b]).toEqual([0, 1, 0, 0, 0]);
  });

  it('rejects the two smallest of nine hand-made p-values at alpha 0.05', () => {
    const p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2, 0.02, 0.9, 0.045];
    const rejected = new Uint8Array(p.length);
    const t = benjaminiHochberg(p, 0.05, rejected);
    expect(t).toBeCloseTo((2 * 0.05) / 9, 15);
    expect([...rejected]).toEqual([1, 0, 0, 1, 0, 0, 0, 0, 0]);
  });

  it('rejects nothing (threshold alpha/m) when even the smallest fails, everything when all pass', () => {
    const none = new Uint8Array(3);
    expect(benjaminiHochberg([0.2, 0.02, 0.5], 0.05, none)).toBeCloseTo(0.05 / 3, 15);
    expect([...none]).toEqual([0, 0, 0]);
    const all = new Uint8Array(3);
    expect(benjaminiHochberg([0.01, 0.04, 0.05], 0.05, all)).toBeCloseTo(0.05, 15);
    expect([...all]).toEqual([1, 1, 1]);
  });

  it('never rejects NaN and handles ties', () => {
    const r = new Uint8Array(4);
    benjaminiHochberg([Number.NaN, 0.01, 0.01, 0.01], 0.05, r);
    expect([...r]).toEqual([0, 1, 1, 1]);
  });

  it('adjusted p-values match scipy.stats.false_discovery_control / R p.adjust("BH")', () => {
    // scipy 1.17.1: false_discovery_control([0.035, 0.001, 0.9, 0.028, 0.025])
    expect(adjustBenjaminiHochberg([0.035, 0.001, 0.9, 0.028, 0.025])).toEqual(
      [0.04375, 0.005, 0.9, 0.04375, 0.04375].map((v) => expect.closeTo(v, 12)),
    );
    // false_discovery_control([0.01, 0.04, 0.03, 0.005, 0.5, 0.2, 0.02, 0.9, 0.045])
    expect(adjustBenjaminiHochberg([0.01, 0.04, 0.03, 0.005, 0.5, 0.2, 0.02, 0.9, 0.045])).toEqual(
      [0.045, 0.0675, 0.0675, 0.045, 0.5625, 0.2571428571428572, 0.06, 0.9, 0.0675].map((v) =>
        expect.closeTo(v, 12),
      ),
    );
  });

  it('q <= alpha exactly for the hypotheses the step-up rejects', () => {
    const p = [0.035, 0.001, 0.9, 0.028, 0.025, 0.0401, 0.3, 0.00001];
    for (const alpha of [0.01, 0.03, 0.05, 0.1]) {
      const r = new Uint8Array(p.length);
      benjaminiHochberg(p, alpha, r);
      expect([...r]).toEqual(adjustBenjaminiHochberg(p).map((q) => (q <= alpha ? 1 : 0)));
    }
  });
});
