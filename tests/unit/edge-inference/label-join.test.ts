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
    expect(j.stats).toEqual({ hits: 2, misses: 1, evictions: 0, pending: 0 });
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
});
