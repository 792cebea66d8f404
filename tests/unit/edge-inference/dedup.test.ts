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

  it('a changed value leaves a stale copy in the window: it remembers one key fewer until that copy leaves', () => {
    const f = new RepeatFilter(100);
    for (let i = 0; i < 10_000; i++) f.telemetryRepeat('m', i % 50, i);
    expect(f.size).toBe(50); // every key's newest copy is among the last 100 insertions
    const g = new RepeatFilter(3);
    g.telemetryRepeat('m', 0, 0);
    g.telemetryRepeat('m', 0, 1); // the first copy goes stale
    g.telemetryRepeat('m', 1, 1);
    expect(g.size).toBe(2);
    g.telemetryRepeat('m', 2, 2); // the stale copy leaves the ring, no key is forgotten
    expect(g.size).toBe(3);
    expect(g.telemetryRepeat('m', 0, 1)).toBe(true);
  });

  it('forgets a machine id with its last entry and reuses its number', () => {
    const f = new RepeatFilter(4);
    for (let seq = 0; seq < 4; seq++) f.telemetryRepeat('old', seq, seq);
    expect(f.machines).toBe(1);
    for (let seq = 0; seq < 4; seq++) f.telemetryRepeat(`new-${seq % 2}`, seq, seq);
    expect(f.machines).toBe(2);
    expect(f.telemetryRepeat('old', 3, 3)).toBe(false);
    expect(f.telemetryRepeat('new-1', 3, 3)).toBe(true);
  });

  it('answers as a plain model (a key is remembered while its newest copy is among the last maxEntries insertions) on a seeded stream', () => {
    // Random keys over few machines and seqs, with repeats, changed values and both kinds: every answer, and the
    // size, equal the model's. Collisions and backward-shift deletions happen all the time at this bound.
    const max = 257;
    const f = new RepeatFilter(max);
    const ring: { key: string; value: string }[] = [];
    const newest = new Map<string, number>(); // key → index of its newest insertion in `ring`
    let state = 12345;
    const rand = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return (state >>> 8) % n;
    };
    for (let i = 0; i < 20_000; i++) {
      const machine = `m-${rand(7)}`;
      const seq = rand(300) + (rand(10) === 0 ? 2 ** 40 : 0);
      const label = rand(2) === 0;
      const value = label ? ['Low', 'Medium', 'High'][rand(3)]! : String(rand(3));
      const key = `${label ? 'l' : 't'}|${machine}|${seq}`;
      const at = newest.get(key);
      const remembered = at !== undefined && at >= ring.length - max && ring[at]!.value === value;
      const got = label ? f.labelRepeat(machine, seq, value) : f.telemetryRepeat(machine, seq, Number(value));
      expect(got, `message ${i}`).toBe(remembered);
      if (!remembered) {
        ring.push({ key, value });
        newest.set(key, ring.length - 1);
      }
      if (i % 1000 === 0) {
        let live = 0;
        for (const idx of newest.values()) if (idx >= ring.length - max) live++;
        expect(f.size).toBe(live);
      }
    }
  });

  it('at its bound, each new key evicts exactly one key, the oldest', () => {
    const f = new RepeatFilter(1_000);
    for (let i = 0; i < 5_000; i++) f.telemetryRepeat('m', i, i);
    expect(f.size).toBe(1_000);
    expect(f.telemetryRepeat('m', 4_000, 4_000)).toBe(true);
    expect(f.telemetryRepeat('m', 3_999, 3_999)).toBe(false);
  });
});
