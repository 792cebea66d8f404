import { describe, expect, it } from 'vitest';
import { RepeatFilter } from '../../../edge-inference/src/dedup.ts';

describe('RepeatFilter', () => {
  it('recognises a reading taken in before with the same ts, and a label with the same class', () => {
    const f = new RepeatFilter(10);
    expect(f.telemetryRepeat('m-1', 1, 100)).toBe(false);
    expect(f.telemetryRepeat('m-1', 1, 100)).toBe(true);
    expect(f.telemetryRepeat('m-2', 1, 100)).toBe(false);
    expect(f.labelRepeat('m-1', 1, 'High')).toBe(false);
    expect(f.labelRepeat('m-1', 1, 'High')).toBe(true);
    expect(f.labelRepeat('m-1', 1, 'Low')).toBe(false);
  });

  it('takes in the same seq with another ts (a restarted counter) and remembers the new one', () => {
    const f = new RepeatFilter(10);
    f.telemetryRepeat('m-1', 7, 100);
    expect(f.telemetryRepeat('m-1', 7, 200)).toBe(false);
    expect(f.telemetryRepeat('m-1', 7, 200)).toBe(true);
    expect(f.telemetryRepeat('m-1', 7, 100)).toBe(false);
    expect(f.size).toBe(1);
  });

  it('keeps at most maxEntries keys and forgets the oldest first', () => {
    const f = new RepeatFilter(3);
    for (let seq = 0; seq < 5; seq++) f.telemetryRepeat('m', seq, seq);
    expect(f.size).toBe(3);
    expect(f.telemetryRepeat('m', 4, 4)).toBe(true);
    expect(f.telemetryRepeat('m', 2, 2)).toBe(true);
    expect(f.telemetryRepeat('m', 1, 1)).toBe(false); // forgotten: taken in again
  });

  it('a re-inserted key counts as the newest: the keys inserted before it are evicted first', () => {
    const f = new RepeatFilter(3);
    f.telemetryRepeat('m', 0, 0);
    f.telemetryRepeat('m', 1, 1);
    f.telemetryRepeat('m', 2, 2);
    f.telemetryRepeat('m', 0, 99); // seq 0 again with another ts: now the newest
    f.telemetryRepeat('m', 3, 3); // evicts seq 1, the oldest
    expect(f.telemetryRepeat('m', 0, 99)).toBe(true);
    expect(f.telemetryRepeat('m', 2, 2)).toBe(true);
    expect(f.telemetryRepeat('m', 1, 1)).toBe(false);
  });

  it('bounds its eviction queue when the same keys are re-inserted over and over without evictions', () => {
    const f = new RepeatFilter(100);
    for (let i = 0; i < 10_000; i++) f.telemetryRepeat('m', i % 50, i);
    expect(f.size).toBe(50);
    const order = (f as unknown as { order: unknown[]; head: number }).order;
    expect(order.length).toBeLessThanOrEqual(2 * 100 + 1024 + 1);
  });

  it('at its bound, each new key evicts exactly one key, the oldest', () => {
    const f = new RepeatFilter(1_000);
    for (let i = 0; i < 5_000; i++) f.telemetryRepeat('m', i, i);
    expect(f.size).toBe(1_000);
    expect(f.telemetryRepeat('m', 4_000, 4_000)).toBe(true);
    expect(f.telemetryRepeat('m', 3_999, 3_999)).toBe(false);
  });
});
