import { describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../../../../common/bus/in-process.ts';
import { BUS_TOPICS, type BusMessage } from '../../../../common/bus/types.ts';
import { TransportError } from '../../../../common/errors.ts';
import { silentLogger } from '../../../../common/logging/logger.ts';

describe('InProcessBus', () => {
  it('delivers in order to each group, once per group', async () => {
    const bus = new InProcessBus();
    const a: unknown[] = [];
    const b: unknown[] = [];
    await bus.subscribe('t', { group: 'a' }, async (m) => void a.push(m.value));
    await bus.subscribe('t', { group: 'b' }, async (m) => void b.push(m.value));
    for (let i = 0; i < 5; i++) await bus.publish('t', 'k', { i });
    await bus.idle();
    expect(a).toEqual([0, 1, 2, 3, 4].map((i) => ({ i })));
    expect(b).toEqual(a);
    await bus.close();
  });

  it('splits a group between its members without duplicates', async () => {
    const bus = new InProcessBus();
    const seen: number[] = [];
    const handler = async (m: BusMessage): Promise<void> => void seen.push((m.value as { i: number }).i);
    await bus.subscribe('t', { group: 'g' }, handler);
    await bus.subscribe('t', { group: 'g' }, handler);
    for (let i = 0; i < 10; i++) await bus.publish('t', String(i), { i });
    await bus.idle();
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('replays retained messages to a group that subscribes late', async () => {
    const bus = new InProcessBus();
    await bus.publish('t', 'k', 1);
    const got: unknown[] = [];
    await bus.subscribe('t', { group: 'late' }, async (m) => void got.push(m.value));
    await bus.idle();
    expect(got).toEqual([1]);
  });

  it('redelivers on a retriable error and dead-letters on any other', async () => {
    const bus = new InProcessBus({ redeliveryDelayMs: 1 });
    let attempts = 0;
    await bus.subscribe('t', { group: 'g' }, async (m) => {
      if (m.value === 'flaky' && attempts++ < 2) throw new TransportError('try again');
      if (m.value === 'poison') throw new Error('cannot parse');
    });
    const dead: unknown[] = [];
    await bus.subscribe(BUS_TOPICS.deadLetter, { group: 'dlq' }, async (m) => void dead.push(m.value));
    await bus.publish('t', 'k', 'flaky');
    await bus.publish('t', 'k', 'poison');
    await bus.publish('t', 'k', 'fine');
    await bus.idle();
    expect(attempts).toBe(3);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ topic: 't', value: 'poison', reason: 'Error: cannot parse' });
  });

  it('copies values so publishers cannot mutate what consumers see', async () => {
    const bus = new InProcessBus();
    const value = { n: 1 };
    let got: unknown;
    await bus.subscribe('t', { group: 'g' }, async (m) => {
      got = m.value;
    });
    await bus.publish('t', 'k', value);
    value.n = 2;
    await bus.idle();
    expect(got).toEqual({ n: 1 });
  });

  it('gives every group and every redelivery its own copy of the value', async () => {
    const bus = new InProcessBus({ redeliveryDelayMs: 1 });
    const seenByB: unknown[] = [];
    const attemptsOfA: unknown[] = [];
    await bus.subscribe('t', { group: 'a' }, async (m) => {
      const v = m.value as { n: number };
      attemptsOfA.push({ ...v });
      v.n += 100; // a handler that mutates what it got, then fails once
      if (attemptsOfA.length === 1) throw new TransportError('try again');
    });
    await bus.subscribe('t', { group: 'b' }, async (m) => void seenByB.push(m.value));
    await bus.publish('t', 'k', { n: 1 });
    await bus.idle();
    expect(attemptsOfA).toEqual([{ n: 1 }, { n: 1 }]);
    expect(seenByB).toEqual([{ n: 1 }]);
    expect(bus.retained('t').map((m) => m.value)).toEqual([{ n: 1 }]);
  });

  it('refuses a value that has no JSON form, and keeps nothing of it', async () => {
    const bus = new InProcessBus();
    await expect(bus.publish('t', 'k', undefined)).rejects.toThrow(
      /t is not JSON-serialisable \(undefined\)/,
    );
    await expect(bus.publish('t', 'k', () => 1)).rejects.toThrow(/not JSON-serialisable \(function\)/);
    await expect(bus.publish('t', 'k', { n: 1n })).rejects.toThrow(TypeError);
    expect(bus.retained('t')).toEqual([]);
    await bus.publish('t', 'k', null);
    expect(bus.retained('t').map((m) => [m.value, m.offset])).toEqual([[null, '0']]);
  });

  it('keeps the last `retention` messages with their offsets, across many trims', async () => {
    const bus = new InProcessBus({ retention: 4 });
    const live: string[] = [];
    await bus.subscribe('t', { group: 'live' }, async (m) => void live.push(m.offset));
    for (let i = 0; i < 23; i++) {
      await bus.idle(); // the live group keeps up: it sees every message
      await bus.publish('t', 'k', i);
      const kept = bus.retained('t');
      expect(kept.map((m) => m.value)).toEqual(
        Array.from({ length: Math.min(4, i + 1) }, (_, j) => i - Math.min(3, i) + j),
      );
      expect(kept.map((m) => Number(m.offset))).toEqual(kept.map((m) => m.value));
    }
    await bus.idle();
    expect(live).toEqual(Array.from({ length: 23 }, (_, i) => String(i)));
    // A group that subscribes now replays what is retained; one from the end gets only what comes next.
    const late: unknown[] = [];
    const fromEnd: unknown[] = [];
    await bus.subscribe('t', { group: 'late' }, async (m) => void late.push(m.value));
    await bus.subscribe('t', { group: 'end', fromBeginning: false }, async (m) => void fromEnd.push(m.value));
    await bus.publish('t', 'k', 23);
    await bus.idle();
    expect(late).toEqual([19, 20, 21, 22, 23]);
    expect(fromEnd).toEqual([23]);
  });

  it('a group that fell behind the retention goes on from the oldest message retained, and says so', async () => {
    const logger = silentLogger();
    const warn = vi.spyOn(logger, 'warn');
    const bus = new InProcessBus({ retention: 3, logger });
    const got: unknown[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    await bus.subscribe('t', { group: 'slow' }, async (m) => {
      if (m.value === 0) await gate;
      got.push(m.value);
    });
    for (let i = 0; i < 10; i++) await bus.publish('t', 'k', i);
    release();
    await bus.idle();
    expect(got).toEqual([0, 7, 8, 9]);
    expect(warn).toHaveBeenCalledWith('bus group fell behind the retention: messages skipped', {
      topic: 't',
      group: 'slow',
      skipped: 6,
      retention: 3,
    });
  });
});
