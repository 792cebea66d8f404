import { describe, expect, it } from 'vitest';
import { sharedHistogram } from '../../../edge-inference/src/histogram.ts';

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

describe('sharedHistogram', () => {
  it('sharedHistogram: shared edges over min..max of both samples, counts that sum to the sizes', () => {
    const ref = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const cur = [5, 10, 10, 12];
    const h = sharedHistogram(ref, cur, 4);
    expect(h.edges).toEqual([0, 3, 6, 9, 12]);
    expect(h.reference).toEqual([3, 3, 3, 1]);
    expect(h.current).toEqual([0, 1, 0, 3]); // 12 is in the last (closed) bin
    expect(sum(h.reference)).toBe(ref.length);
    expect(sum(h.current)).toBe(cur.length);
    const flat = sharedHistogram([2, 2], [2], 20);
    expect(flat.edges).toHaveLength(21);
    expect(flat.edges[0]).toBe(1.5);
    expect(flat.edges[20]).toBe(2.5);
    expect(sum(flat.reference) + sum(flat.current)).toBe(3);
    expect(() => sharedHistogram(ref, cur, 101)).toThrow(RangeError);
  });
});
