import { describe, expect, it } from 'vitest';
import { LabelJoin } from '../../../edge-inference/src/label-join.ts';

describe('LabelJoin', () => {
  it('joins a label with its record on machineId + seq (hit), once', () => {
    const outcomes: string[] = [];
    const j = new LabelJoin<string>({ maxPending: 10, onOutcome: (o) => outcomes.push(o) });
    j.put('m1', 1, 'a');
    j.put('m2', 1, 'b');
    expect(j.take('m2', 1)).toBe('b');
    expect(j.take('m1', 1)).toBe('a');
    expect(j.take('m1', 1)).toBeUndefined();
    expect(j.stats).toEqual({ hits: 2, misses: 1, evictions: 0, pending: 0, early: 0, earlyJoined: 0 });
    expect(outcomes).toEqual(['hit', 'hit', 'miss']);
  });

  it('counts a label for an unknown record as a miss', () => {
    const j = new LabelJoin<string>({ maxPending: 10 });
    j.put('m1', 1, 'a');
    expect(j.take('m1', 2)).toBeUndefined();
    expect(j.take('m9', 1)).toBeUndefined();
    expect(j.stats).toMatchObject({ hits: 0, misses: 2, pending: 1 });
  });

  it('evicts the oldest records beyond the bound', () => {
    const outcomes: string[] = [];
    const j = new LabelJoin<number>({ maxPending: 3, onOutcome: (o) => outcomes.push(o) });
    for (let seq = 0; seq < 5; seq++) j.put('m', seq, seq);
    expect(j.stats).toMatchObject({ evictions: 2, pending: 3 });
    expect(j.take('m', 0)).toBeUndefined(); // evicted → miss
    expect(j.take('m', 1)).toBeUndefined();
    expect(j.take('m', 2)).toBe(2);
    expect(j.take('m', 4)).toBe(4);
    expect(outcomes.filter((o) => o === 'evicted')).toHaveLength(2);
  });

  it('does not confuse machine ids that share a prefix', () => {
    const j = new LabelJoin<string>({ maxPending: 10 });
    j.put('m1', 11, 'a');
    j.put('m11', 1, 'b');
    expect(j.take('m1', 11)).toBe('a');
    expect(j.take('m11', 1)).toBe('b');
  });

  describe('a label that arrives before its reading (maxEarly > 0)', () => {
    it('is held, and joins when the reading is put (a hit, counted as early-joined)', () => {
      const outcomes: string[] = [];
      const j = new LabelJoin<string, string>({
        maxPending: 10,
        maxEarly: 10,
        onOutcome: (o) => outcomes.push(o),
      });
      expect(j.lookup('m1', 1, 'High')).toBeUndefined();
      expect(j.stats).toMatchObject({ hits: 0, misses: 0, early: 1 });
      expect(j.put('m1', 2, 'reading-2')).toBeUndefined();
      expect(j.put('m1', 1, 'reading-1')).toBe('High');
      expect(j.stats).toEqual({ hits: 1, misses: 0, evictions: 0, pending: 2, early: 0, earlyJoined: 1 });
      expect(outcomes).toEqual(['early', 'hit']);
      // The reading stays until the caller has used it (the worker deletes it once predicted).
      expect(j.peek('m1', 1)).toBe('reading-1');
    });

    it('is a miss at once with maxEarly 0 (the default), or without a label to hold', () => {
      const j = new LabelJoin<string, string>({ maxPending: 10 });
      expect(j.lookup('m1', 1, 'High')).toBeUndefined();
      expect(j.put('m1', 1, 'reading')).toBeUndefined();
      const k = new LabelJoin<string, string>({ maxPending: 10, maxEarly: 10 });
      expect(k.lookup('m1', 1)).toBeUndefined();
      expect(j.stats).toMatchObject({ misses: 1, early: 0 });
      expect(k.stats).toMatchObject({ misses: 1, early: 0 });
    });

    it('counts the oldest held label as a miss beyond maxEarly', () => {
      const outcomes: string[] = [];
      const j = new LabelJoin<string, number>({
        maxPending: 10,
        maxEarly: 2,
        onOutcome: (o) => outcomes.push(o),
      });
      for (let seq = 0; seq < 3; seq++) j.lookup('m', seq, seq);
      expect(j.stats).toMatchObject({ misses: 1, early: 2 });
      expect(j.put('m', 0, 'r0')).toBeUndefined(); // pushed out: it no longer joins
      expect(j.put('m', 2, 'r2')).toBe(2);
      expect(outcomes).toEqual(['early', 'early', 'early', 'miss', 'hit']);
    });

    it('counts a held label as a miss once older than earlyMaxAgeMs', () => {
      let now = 1_000;
      const j = new LabelJoin<string, string>({
        maxPending: 10,
        maxEarly: 10,
        earlyMaxAgeMs: 500,
        now: () => now,
      });
      j.lookup('m', 1, 'Low');
      now += 400;
      j.lookup('m', 2, 'Low');
      expect(j.stats).toMatchObject({ misses: 0, early: 2 });
      now += 100; // seq 1 is 500 ms old
      expect(j.stats).toMatchObject({ misses: 1, early: 1 });
      expect(j.put('m', 1, 'r1')).toBeUndefined();
      expect(j.put('m', 2, 'r2')).toBe('Low');
      expect(j.stats).toMatchObject({ hits: 1, misses: 1, early: 0, earlyJoined: 1 });
    });

    it('validates its bounds', () => {
      expect(() => new LabelJoin({ maxPending: 1, maxEarly: -1 })).toThrow(/maxEarly/);
      expect(() => new LabelJoin({ maxPending: 1, maxEarly: 1.5 })).toThrow(/maxEarly/);
      expect(() => new LabelJoin({ maxPending: 1, earlyMaxAgeMs: 0 })).toThrow(/earlyMaxAgeMs/);
    });
  });
});
