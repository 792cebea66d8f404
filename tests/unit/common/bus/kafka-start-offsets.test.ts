import { describe, expect, it } from 'vitest';
import { startSeeks } from '../../../../common/bus/kafka-start-offsets.ts';

describe('startSeeks', () => {
  const pinned = new Map([
    [0, '10'],
    [1, '0'],
    [2, '7'],
  ]);

  it('seeks each assigned partition that was pinned and is still uncommitted, to its pinned end', () => {
    expect(startSeeks(pinned, [0, 1, 2], new Set([0, 1, 2]))).toEqual([
      { partition: 0, offset: '10' },
      { partition: 1, offset: '0' },
      { partition: 2, offset: '7' },
    ]);
  });

  it('leaves a partition another member committed in the meantime, and partitions not assigned here', () => {
    expect(startSeeks(pinned, [1, 2], new Set([0, 1]))).toEqual([{ partition: 1, offset: '0' }]);
  });

  it('does not seek a partition it had no pin for (it had a commit when the subscription started)', () => {
    expect(startSeeks(new Map([[0, '3']]), [0, 1], new Set([0, 1]))).toEqual([{ partition: 0, offset: '3' }]);
  });
});
